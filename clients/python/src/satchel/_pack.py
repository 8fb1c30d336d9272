"""Directories up: ``pack`` turns a directory into the layer the ORAS CLI
makes of one, so ``oras pull`` (and ``satchel._unpack``) unpacks the same
tree: a tar+gzip file whose entries are named under the layer's title
(``dir``, ``dir/a.txt``, ...), in the order of a walk that visits each
directory's names sorted, with modes and modification times kept, owners
cleared (uid and gid 0, no user or group names), symbolic links stored as
links and anything else (sockets, devices, FIFOs) refused with
INVALID_ARGUMENT. The layer is annotated ``io.deis.oras.content.unpack:
true``, with the tar's own sha256 digest under
``io.deis.oras.content.digest``.

The archive is written to a temporary file, not kept in memory; the caller
removes it (``PackedDirectory.remove``) once the push is over.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Mapping, Optional

import grpc

from satchel._unpack import TAR_DIGEST_ANNOTATION, UNPACK_ANNOTATION
from satchel.errors import SatchelError

DIRECTORY_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
"""The layer media type of a packed directory when none is given."""

_CHUNK = 1 << 20


@dataclass(frozen=True)
class PackedDirectory:
    """A packed directory: the archive, and what its layer says of it."""

    path: Path
    digest: str
    """The archive's sha256 digest, and its size."""
    size: int
    annotations: Mapping[str, str]

    def remove(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


class _Hashing:
    """A writer that hashes and counts what passes through it."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.inner.write(data)
        self.hash.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self.inner.flush()

    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


def pack(directory: Path, title: str) -> PackedDirectory:
    """Packs ``directory`` (followed if it is a link: the caller named it)
    as a layer titled ``title``, already checked."""
    fd, name = tempfile.mkstemp(prefix=".satchel-pack-", suffix=".tar.gz")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            layer = _Hashing(out)
            # mtime 0 and no file name: the same tree packs to the same bytes.
            with gzip.GzipFile(filename="", mode="wb", fileobj=layer, compresslevel=6, mtime=0) as gz:  # type: ignore[arg-type]
                tar_stream = _Hashing(gz)
                with tarfile.open(fileobj=tar_stream, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[arg-type]
                    _add(tar, directory, title)
    except BaseException:
        os.unlink(path)
        raise
    return PackedDirectory(
        path,
        layer.digest(),
        layer.size,
        {TAR_DIGEST_ANNOTATION: tar_stream.digest(), UNPACK_ANNOTATION: "true"},
    )


def _add(tar: tarfile.TarFile, top: Path, title: str) -> None:
    """Adds the directory ``top`` under the entry name ``title``, and what it
    holds, depth first, each directory's names sorted; links inside are not
    followed. A stack, not recursion: a deep tree is no problem."""
    stack = [(top, title, os.stat(top))]
    while stack:
        path, name, st = stack.pop()
        info = tarfile.TarInfo(name)
        info.mode = st.st_mode & 0o7777
        info.mtime = int(st.st_mtime)
        # TarInfo's owner is uid/gid 0 and no names, as the ORAS CLI writes it.
        if stat.S_ISDIR(st.st_mode):
            info.type = tarfile.DIRTYPE
            _append(tar, info)
            children = sorted(os.listdir(path))
            for child in children:
                try:
                    child.encode("utf-8")
                except UnicodeEncodeError:
                    raise SatchelError(
                        grpc.StatusCode.INVALID_ARGUMENT, f"cannot pack {path}: a name in it is not UTF-8"
                    ) from None
            for child in reversed(children):
                stack.append((path / child, f"{name}/{child}", os.lstat(path / child)))
        elif stat.S_ISREG(st.st_mode):
            info.type = tarfile.REGTYPE
            info.size = st.st_size
            with open(path, "rb") as f:
                _append(tar, info, f)
        elif stat.S_ISLNK(st.st_mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(path)
            _append(tar, info)
        else:
            what = "a socket" if stat.S_ISSOCK(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device"
            raise SatchelError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"cannot pack {top}: {name!r} is {what}, not a file, directory or link",
            )


def _append(tar: tarfile.TarFile, info: tarfile.TarInfo, data: Optional[BinaryIO] = None) -> None:
    tar.addfile(info, data)
    # The writer keeps every member added; a large tree's add up.
    tar.members.clear()

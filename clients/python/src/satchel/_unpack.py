"""Directories down: a layer the ORAS CLI marks ``io.deis.oras.content.unpack``
is a tar+gzip of a directory named by its title; ``unpack`` turns the
verified archive back into that directory (the rules of
clients/conformance/archives.json, shared by every Satchel client).

Every entry must lie under the title (``dir`` or ``dir/...``; a leading
``./`` and a trailing ``/`` are dropped), and what follows it must be a safe
relative path (``satchel.titles.check_title``). Regular files, directories,
symbolic links and hard links are made; anything else (devices, FIFOs) is
refused. A symbolic link's target must be relative and may climb (``../``)
only at its start and no higher than the tree's top, so it resolves inside
the tree whatever the links it passes through; a hard link names an earlier
regular file of the archive. Everything is made through ``satchel._files``,
which never follows a link, so an entry cannot write through a link an
earlier entry made. Files keep their mode bits (``& 0o777``, less the umask)
and modification time. The archive may not unpack to more than ``Limits``
allow.

The tree is built under a hidden name beside the final one and takes it only
when every entry is in place and the archive's own digest (the
``io.deis.oras.content.digest`` annotation: the uncompressed tar stream's,
to its end; an algorithm other than sha256 and sha512 is not checked)
matches; on any failure it is removed. Unsafe entries are INVALID_ARGUMENT,
a wrong digest or a broken archive DATA_LOSS, an archive past the limits
RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import gzip
import hashlib
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, Mapping, Optional

import grpc

from satchel._files import OutputDir, PartialFile, TreePlacement
from satchel.errors import SatchelError
from satchel.titles import check_title

UNPACK_ANNOTATION = "io.deis.oras.content.unpack"
"""The layer annotation that asks for unpacking (value ``true``)."""

TAR_DIGEST_ANNOTATION = "io.deis.oras.content.digest"
"""The layer annotation holding the uncompressed tar's digest."""

_SPECIAL_MAX_BYTES = 1 << 20
"""The largest PAX or GNU long-name header read (tarfile holds one whole)."""

_CHUNK = 1 << 20

_FILE_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
_SPECIAL_TYPES = (
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
)

_KINDS = {
    tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device",
    tarfile.FIFOTYPE: "a FIFO",
    tarfile.GNUTYPE_SPARSE: "a sparse file",
}


@dataclass(frozen=True)
class Limits:
    """How much one archive may unpack to."""

    max_bytes: int = 64 << 30
    """Bytes of the uncompressed tar stream, headers included."""
    max_entries: int = 1_000_000


def is_directory(annotations: Mapping[str, str]) -> bool:
    """Whether a layer with these annotations is a directory to unpack."""
    return annotations.get(UNPACK_ANNOTATION) == "true"


def _shown(text: str) -> str:
    # repr() escapes control characters, so a hostile name cannot drive a
    # terminal through the message.
    return repr(text if len(text) <= 200 else text[:200] + "...")


def _unsafe(title: str, why: str) -> SatchelError:
    return SatchelError(grpc.StatusCode.INVALID_ARGUMENT, f"refusing the directory {_shown(title)}: {why}")


def _data_loss(title: str, why: str) -> SatchelError:
    return SatchelError(grpc.StatusCode.DATA_LOSS, f"cannot unpack the directory {_shown(title)}: {why}")


def _exhausted(title: str, why: str) -> SatchelError:
    return SatchelError(grpc.StatusCode.RESOURCE_EXHAUSTED, f"cannot unpack the directory {_shown(title)}: {why}")


def unpack(
    archive: BinaryIO, out: OutputDir, title: str, annotations: Mapping[str, str], limits: Limits = Limits()
) -> Path:
    """Unpacks the gzip-compressed tar ``archive`` (already checked against
    its layer digest) into the directory ``title`` (already checked) inside
    ``out``, as the module documentation says; returns the directory's path.
    """
    expected = annotations.get(TAR_DIGEST_ANNOTATION)
    placement = TreePlacement(out, title.split("/"))
    try:
        stream = _Stream(gzip.GzipFile(fileobj=archive, mode="rb"), _hasher(expected), limits.max_bytes, title)
        _Tree(placement.tree, title, limits).fill(stream)
        # The digest covers the whole stream, the end-of-archive blocks too.
        stream.drain()
        if expected and stream.hash is not None:
            got = f"{stream.hash.name}:{stream.hash.hexdigest()}"
            if got != expected:
                raise _data_loss(title, f"the archive's content digest is {got}, its layer says {expected}")
        return placement.commit()
    except BaseException:
        placement.discard()
        raise


def _hasher(digest: Optional[str]) -> Optional[Any]:
    """The hash the content digest names; None for none, or for an algorithm
    this client does not know, which is then not checked (as the ORAS CLI
    skips a digest it cannot parse)."""
    algorithm, sep, _ = (digest or "").partition(":")
    if sep and algorithm in ("sha256", "sha512"):
        return hashlib.new(algorithm)
    return None


class _Stream:
    """The uncompressed tar stream, as tarfile reads it: counted against the
    limit and hashed. A broken gzip stream is DATA_LOSS, raised through
    tarfile (which passes on what it does not know)."""

    def __init__(self, gz: gzip.GzipFile, hash: Optional[Any], limit: int, title: str):
        self.gz, self.hash, self.limit, self.title = gz, hash, limit, title
        self.read_bytes = 0

    def read(self, size: int = _CHUNK) -> bytes:
        try:
            data = self.gz.read(size if size >= 0 else _CHUNK)
        except (OSError, EOFError, zlib.error) as e:
            raise _data_loss(self.title, f"the archive is broken: {e}") from None
        self.read_bytes += len(data)
        if self.read_bytes > self.limit:
            raise _exhausted(self.title, f"it unpacks to more than {self.limit} bytes")
        if self.hash is not None:
            self.hash.update(data)
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass


class _HeaderRefused(Exception):
    """A header ``_Header`` will not read, with the code and why."""

    def __init__(self, code: grpc.StatusCode, why: str):
        super().__init__(why)
        self.code, self.why = code, why


class _Header(tarfile.TarInfo):
    """tarfile's header, stricter: a damaged header (bad checksum or number,
    cut short) is a broken archive, where tarfile would take it for the end
    of one after the first entry; and a PAX or long-name header, which
    tarfile reads whole into memory, may not be over 1 MiB."""

    @classmethod
    def fromtarfile(cls, tar: tarfile.TarFile) -> "_Header":
        try:
            return super().fromtarfile(tar)  # type: ignore[return-value]
        except (tarfile.InvalidHeaderError, tarfile.TruncatedHeaderError, tarfile.SubsequentHeaderError) as e:
            raise _HeaderRefused(grpc.StatusCode.DATA_LOSS, f"the archive is broken: {e}") from None

    @classmethod
    def frombuf(cls, buf: bytes, encoding: str, errors: str) -> "_Header":
        header = super().frombuf(buf, encoding, errors)
        if header.type in _SPECIAL_TYPES and header.size > _SPECIAL_MAX_BYTES:
            raise _HeaderRefused(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"it has a {header.size}-byte extended header; at most {_SPECIAL_MAX_BYTES} are read",
            )
        return header


class _Tree:
    """The tree being unpacked, and what each entry made (for the hard links
    that follow: True for a regular file)."""

    def __init__(self, tree: OutputDir, title: str, limits: Limits):
        self.dir, self.title, self.limits = tree, title, limits
        self.files: dict[str, bool] = {}
        self.declared = 0

    def fill(self, stream: _Stream) -> None:
        """Makes every entry of the tar ``stream``, in order."""
        try:
            # Stream mode ("r|"): one pass, members in order, nothing seeked.
            tar = tarfile.open(
                fileobj=stream,  # type: ignore[arg-type]
                mode="r|",
                tarinfo=_Header,
                encoding="utf-8",
                errors="surrogateescape",
            )
            with tar:
                entries = 0
                while (member := tar.next()) is not None:
                    # Stream mode keeps every member read; a million add up.
                    tar.members.clear()
                    entries += 1
                    if entries > self.limits.max_entries:
                        raise _exhausted(self.title, f"more than {self.limits.max_entries} entries")
                    self._put(tar, member)
        except tarfile.TarError as e:
            raise _data_loss(self.title, f"the archive is broken: {e}") from None
        except _HeaderRefused as e:
            raise SatchelError(e.code, f"cannot unpack the directory {_shown(self.title)}: {e.why}") from None
        except SatchelError as e:
            if e.code == grpc.StatusCode.FAILED_PRECONDITION:
                # satchel._files refusing a link or a file in the way, which
                # inside the new tree only the archive's own entries can make.
                raise _unsafe(self.title, e.details) from None
            raise

    def _put(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        rel = self._relative(member.name)
        parts = rel.split("/") if rel else []
        if not rel and member.type != tarfile.DIRTYPE:
            raise _unsafe(self.title, "its top is not a directory")
        if member.type == tarfile.DIRTYPE:
            self.dir.make_dirs(parts)
            self.files[rel] = False
        elif member.type in _FILE_TYPES:
            self._file(tar, member, parts)
            self.files[rel] = True
        elif member.type == tarfile.SYMTYPE:
            _check_link_target(self.title, rel, member.linkname)
            self.dir.symlink(parts, member.linkname)
            self.files[rel] = False
        elif member.type == tarfile.LNKTYPE:
            existing = self._relative(member.linkname)
            if not self.files.get(existing, False):
                raise _unsafe(
                    self.title,
                    f"the hard link {_shown(rel)} names {_shown(existing)}, not an earlier file of the archive",
                )
            self.dir.hard_link(existing.split("/"), parts)
            self.files[rel] = True
        else:
            what = _KINDS.get(member.type, f"a {member.type!r} entry")
            raise _unsafe(self.title, f"{_shown(rel)} is {what}, not a file, directory or link")

    def _file(self, tar: tarfile.TarFile, member: tarfile.TarInfo, parts: list[str]) -> None:
        self.declared += member.size
        if self.declared > self.limits.max_bytes:
            raise _exhausted(self.title, f"it unpacks to more than {self.limits.max_bytes} bytes")
        partial = PartialFile(self.dir, parts, member.mode & 0o777)
        try:
            source: Optional[IO[bytes]] = tar.extractfile(member)
            assert source is not None  # a regular file's entry
            while data := source.read(_CHUNK):
                partial.write(data)
            partial.set_mtime(member.mtime)
            partial.commit()
        except BaseException:
            partial.discard()
            raise

    def _relative(self, name: str) -> str:
        """The part of entry name ``name`` under the title (empty for the
        top itself), checked as a title."""
        name = name.rstrip("/")
        while name.startswith("./"):
            name = name[2:]
        if name == self.title:
            return ""
        if not name.startswith(self.title + "/"):
            raise _unsafe(self.title, f"the entry {_shown(name)} lies outside it")
        rel = name[len(self.title) + 1 :]
        try:
            check_title(rel)
        except SatchelError as e:
            raise _unsafe(self.title, e.details) from None
        return rel


def _check_link_target(title: str, rel: str, target: str) -> None:
    """A symbolic link at ``rel`` may point only inside the tree: relative,
    with ``..`` parts only at its start and no more of them than ``rel`` has
    directories above it, and otherwise only plain names."""

    def refuse(why: str) -> SatchelError:
        return _unsafe(title, f"the link {_shown(rel)} points {why}: {_shown(target)}")

    if not target or target.startswith("/"):
        raise refuse("to an absolute or empty path")
    try:
        target.encode("utf-8")
    except UnicodeEncodeError:
        raise refuse("to a name that is not UTF-8") from None
    parts = target.rstrip("/").split("/")
    climbs = 0
    while climbs < len(parts) and parts[climbs] == "..":
        climbs += 1
    if climbs > rel.count("/"):
        raise refuse("outside the directory")
    for part in parts[climbs:]:
        if part in ("", ".", "..") or "\0" in part:
            raise refuse("through '.', '..' or an empty part after its start")

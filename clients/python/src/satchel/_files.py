"""Writing pulled files without following links the pull did not create.

The output directory is opened once (the caller named it, so a link there is
followed). Below it every component is opened with ``O_NOFOLLOW |
O_DIRECTORY`` relative to its parent's descriptor and created when missing,
so a symlink planted anywhere on the way is refused rather than followed. A
file is written under an unpredictable name created with ``O_EXCL |
O_NOFOLLOW`` in its final directory and renamed onto the final name inside
that same directory: a link at the final name is replaced, not written
through.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

import grpc

from satchel.errors import SatchelError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PARTIAL_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _precondition(path: str, why: str) -> SatchelError:
    return SatchelError(grpc.StatusCode.FAILED_PRECONDITION, f"cannot write {path!r}: {why}")


class OutputDir:
    """The directory a pull writes into, held open by descriptor."""

    def __init__(self, path: Path):
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        os.close(self.fd)

    def directory(self, parts: list[str]) -> int:
        """A new descriptor of the directory ``parts`` under this one, made
        where missing; refuses a component that is a link or not a
        directory with FAILED_PRECONDITION."""
        fd = os.dup(self.fd)
        try:
            for i, part in enumerate(parts):
                where = "/".join(parts[: i + 1])
                try:
                    child = _open_dir(fd, part, where)
                except FileNotFoundError:
                    try:
                        os.mkdir(part, 0o777, dir_fd=fd)
                    except FileExistsError:
                        pass  # made meanwhile: opened (and checked) below
                    child = _open_dir(fd, part, where)
                os.close(fd)
                fd = child
            return fd
        except BaseException:
            os.close(fd)
            raise


def _open_dir(parent: int, name: str, where: str) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        raise
    except OSError as e:
        # Linux reports a link under O_NOFOLLOW|O_DIRECTORY as ENOTDIR or ELOOP.
        try:
            is_link = stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
        except OSError:
            is_link = False
        if is_link:
            raise _precondition(where, "it is a symbolic link; a pull does not follow links") from None
        if isinstance(e, NotADirectoryError):
            raise _precondition(where, "it is not a directory") from None
        raise


class PartialFile:
    """A pulled file being written under a random hidden name in its final
    directory; ``commit`` renames it into place, ``discard`` removes it."""

    def __init__(self, out: OutputDir, parts: list[str]):
        self.name = "/".join(parts)
        self.final = parts[-1]
        self.path = out.path.joinpath(*parts)
        self.dir_fd = out.directory(parts[:-1])
        self.tmp = f".satchel-{secrets.token_hex(16)}.partial"
        try:
            self._refuse_directory()
            fd = os.open(self.tmp, _PARTIAL_FLAGS, 0o666, dir_fd=self.dir_fd)
        except BaseException:
            os.close(self.dir_fd)
            raise
        self.file = os.fdopen(fd, "wb")

    def _refuse_directory(self) -> None:
        try:
            mode = os.stat(self.final, dir_fd=self.dir_fd, follow_symlinks=False).st_mode
        except FileNotFoundError:
            return
        if stat.S_ISDIR(mode):
            raise _precondition(self.name, "a directory stands at that name")

    def write(self, data: bytes) -> None:
        self.file.write(data)

    def commit(self) -> None:
        """Moves the finished file to its final name (replacing a file or a
        link there, never writing through it)."""
        self.file.close()
        try:
            self._refuse_directory()
            os.rename(self.tmp, self.final, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
        except IsADirectoryError:
            self.discard()
            raise _precondition(self.name, "a directory stands at that name") from None
        except BaseException:
            self.discard()
            raise
        os.close(self.dir_fd)
        self.dir_fd = -1

    def discard(self) -> None:
        if self.dir_fd < 0:
            return
        self.file.close()
        try:
            os.unlink(self.tmp, dir_fd=self.dir_fd)
        except FileNotFoundError:
            pass
        os.close(self.dir_fd)
        self.dir_fd = -1

"""Writing pulled files without following links the pull did not create.

The output directory is opened once (the caller named it, so a link there is
followed). Below it every component is opened with ``O_NOFOLLOW |
O_DIRECTORY`` relative to its parent's descriptor and created when missing,
so a symlink planted anywhere on the way is refused rather than followed. A
file is written under an unpredictable name created with ``O_EXCL |
O_NOFOLLOW`` in its final directory and renamed onto the final name inside
that same directory: a link at the final name is replaced, not written
through.

A directory layer (``satchel._unpack``) is built the same way: a
``TreePlacement`` makes a hidden directory beside the final name, the tree
is made inside it through the same walk (``OutputDir.make_dirs``,
``symlink``, ``hard_link``, ``PartialFile``), and ``commit`` gives it the
final name with ``renameat2(RENAME_NOREPLACE)``, or, when something stands
there, swaps the two with ``RENAME_EXCHANGE`` and removes the old one, so
the name never shows a partial tree. Where renameat2 is missing (not Linux,
an old libc or kernel, a file system without the flags), what stands there
is first renamed aside: the name is then briefly missing, but still never
shows a partial tree.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import secrets
import stat
from pathlib import Path
from typing import BinaryIO, Callable, Optional

import grpc

from satchel.errors import SatchelError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PARTIAL_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2


def _precondition(path: str, why: str) -> SatchelError:
    return SatchelError(grpc.StatusCode.FAILED_PRECONDITION, f"cannot write {path!r}: {why}")


def _temp_name() -> str:
    return f".satchel-{secrets.token_hex(16)}.partial"


class OutputDir:
    """The directory a pull writes into, held open by descriptor (``fd``, when
    given, is already open: a tree being built, see ``TreePlacement``)."""

    def __init__(self, path: Path, fd: Optional[int] = None):
        if fd is None:
            path.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.path = path
        self.fd = fd

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

    def make_dirs(self, parts: list[str]) -> None:
        """Makes the directory ``parts`` and those on the way, as
        ``directory`` walks them; no parts is this directory."""
        if parts:
            os.close(self.directory(parts))

    def symlink(self, parts: list[str], target: str) -> None:
        """Makes a symbolic link ``parts`` to ``target`` (checked by the
        caller), replacing a file or link there."""
        dir_fd = self.directory(parts[:-1])
        try:
            tmp = _temp_name()
            os.symlink(target, tmp, dir_fd=dir_fd)
            _move_into_place(dir_fd, tmp, parts[-1], "/".join(parts))
        finally:
            os.close(dir_fd)

    def hard_link(self, existing: list[str], parts: list[str]) -> None:
        """Makes ``parts`` a hard link to the regular file ``existing``, both
        under this directory; anything else at ``existing`` (a link) is
        FAILED_PRECONDITION."""
        from_fd = self.directory(existing[:-1])
        try:
            mode = os.stat(existing[-1], dir_fd=from_fd, follow_symlinks=False).st_mode
            if not stat.S_ISREG(mode):
                raise _precondition("/".join(existing), "not a regular file to link to")
            to_fd = self.directory(parts[:-1])
            try:
                tmp = _temp_name()
                os.link(existing[-1], tmp, src_dir_fd=from_fd, dst_dir_fd=to_fd, follow_symlinks=False)
                _move_into_place(to_fd, tmp, parts[-1], "/".join(parts))
            finally:
                os.close(to_fd)
        finally:
            os.close(from_fd)


def _move_into_place(dir_fd: int, tmp: str, final: str, name: str) -> None:
    """Renames ``tmp`` over ``final`` inside ``dir_fd``; on failure removes it."""
    try:
        os.rename(tmp, final, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException as e:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        if isinstance(e, IsADirectoryError):
            raise _precondition(name, "a directory stands at that name") from None
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
    directory; ``commit`` renames it into place, ``discard`` removes it. A
    directory's archive (``scratch``) is never renamed: it is read back
    (``reopen``) to unpack it, then discarded, so a directory at its name is
    no obstacle. A new file gets ``mode`` less the umask."""

    def __init__(self, out: OutputDir, parts: list[str], mode: int = 0o666, scratch: bool = False):
        self.name = "/".join(parts)
        self.final = parts[-1]
        self.path = out.path.joinpath(*parts)
        self.dir_fd = out.directory(parts[:-1])
        self.tmp = _temp_name()
        try:
            if not scratch:
                self._refuse_directory()
            fd = os.open(self.tmp, _PARTIAL_FLAGS, 0o600 if scratch else mode & 0o777, dir_fd=self.dir_fd)
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

    def set_mtime(self, mtime: float) -> None:
        """Sets the file's modification (and access) time, if it can."""
        self.file.flush()
        try:
            os.utime(self.file.fileno(), (mtime, mtime))
        except (OSError, OverflowError, ValueError):
            pass

    def reopen(self) -> BinaryIO:
        """The finished file, opened again for reading."""
        self.file.close()
        fd = os.open(self.tmp, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.dir_fd)
        return os.fdopen(fd, "rb")

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


class TreePlacement:
    """A directory tree built under a random hidden name in its final
    directory: ``tree`` is where to build it; ``commit`` gives it the final
    name (see the module documentation), ``discard`` removes it."""

    def __init__(self, out: OutputDir, parts: list[str]):
        self.final = parts[-1]
        self.path = out.path.joinpath(*parts)
        self.dir_fd = out.directory(parts[:-1])
        self.tmp = _temp_name()
        try:
            os.mkdir(self.tmp, 0o777, dir_fd=self.dir_fd)
            try:
                fd = os.open(self.tmp, _DIR_FLAGS, dir_fd=self.dir_fd)
            except BaseException:
                os.rmdir(self.tmp, dir_fd=self.dir_fd)
                raise
        except BaseException:
            os.close(self.dir_fd)
            raise
        self.tree = OutputDir(self.path, fd)

    def commit(self) -> Path:
        """Gives the tree its final name; whatever stood there is removed.
        On failure the tree keeps its hidden name, for ``discard``."""
        os.close(self.tree.fd)
        self.tree.fd = -1
        old = _place_tree(self.dir_fd, self.tmp, self.final)
        if old is not None:
            _remove_tree(self.dir_fd, old)
        os.close(self.dir_fd)
        self.dir_fd = -1
        return self.path

    def discard(self) -> None:
        if self.dir_fd < 0:
            return
        if self.tree.fd >= 0:
            os.close(self.tree.fd)
            self.tree.fd = -1
        _remove_tree(self.dir_fd, self.tmp)
        os.close(self.dir_fd)
        self.dir_fd = -1


@functools.lru_cache(maxsize=None)
def _renameat2() -> Optional[Callable[..., int]]:
    """libc's renameat2, if it has one."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def _rename2(fn: Callable[..., int], dir_fd: int, old: str, new: str, flags: int) -> None:
    if fn(dir_fd, os.fsencode(old), dir_fd, os.fsencode(new), flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), new)


def _place_tree(dir_fd: int, tmp: str, final: str) -> Optional[str]:
    """Renames the tree ``tmp`` to ``final`` inside ``dir_fd``; returns the
    name that what stood at ``final`` now has, if anything stood there."""
    fn = _renameat2()
    if fn is not None:
        try:
            try:
                _rename2(fn, dir_fd, tmp, final, _RENAME_NOREPLACE)
                return None
            except FileExistsError:
                _rename2(fn, dir_fd, tmp, final, _RENAME_EXCHANGE)
                return tmp
        except OSError as e:
            # No renameat2 in the kernel, or the flags not in the file system.
            if e.errno not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
                raise
    aside: Optional[str] = _temp_name()
    try:
        os.rename(final, aside, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except FileNotFoundError:
        aside = None
    try:
        os.rename(tmp, final, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        if aside is not None:
            os.rename(aside, final, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        raise
    return aside


def _remove_tree(dir_fd: int, name: str) -> None:
    """Removes ``name`` inside ``dir_fd`` and, if it is a directory, all it
    holds, never following a link, as far as it can. Each step walks down
    from ``dir_fd`` again (no descriptor held per level, no recursion), so
    a deep tree needs neither."""
    path = [name]
    try:
        while path:
            parent = _walk(dir_fd, path[:-1])
            try:
                mode = os.stat(path[-1], dir_fd=parent, follow_symlinks=False).st_mode
                if not stat.S_ISDIR(mode):
                    os.unlink(path[-1], dir_fd=parent)
                    path.pop()
                    continue
                fd = os.open(path[-1], _DIR_FLAGS, dir_fd=parent)
                try:
                    subdir = _empty_but_a_subdirectory(fd)
                finally:
                    os.close(fd)
                if subdir is None:
                    os.rmdir(path[-1], dir_fd=parent)
                    path.pop()
                else:
                    path.append(subdir)
            finally:
                os.close(parent)
    except OSError:
        pass


def _walk(dir_fd: int, parts: list[str]) -> int:
    """A new descriptor of the existing directory ``parts`` under ``dir_fd``,
    never through a link."""
    fd = os.dup(dir_fd)
    for part in parts:
        try:
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
        finally:
            os.close(fd)
        fd = child
    return fd


def _empty_but_a_subdirectory(fd: int) -> Optional[str]:
    """Removes what the directory ``fd`` holds up to its first
    subdirectory, whose name it returns (None once it is empty)."""
    with os.scandir(fd) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                return entry.name
            os.unlink(entry.name, dir_fd=fd)
    return None

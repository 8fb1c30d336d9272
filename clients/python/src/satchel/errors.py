"""The exceptions of this package, and how a gRPC failure becomes one."""

from __future__ import annotations

import errno
import os
import time
from typing import Optional, Union

import grpc


class SatchelError(Exception):
    """A failed call. ``code`` is the gRPC status code (the daemon's, or one
    this client chose for a failure it found itself), ``details`` the
    message."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class MissingFileError(SatchelError, FileNotFoundError):
    """A file given to push or attach is not there, or neither a regular
    file nor a directory: the caller's argument is wrong, so the code is
    INVALID_ARGUMENT (never NOT_FOUND, which means something the registry
    lacks), as in every Satchel client. Still a ``FileNotFoundError``, with
    ``filename`` set."""

    def __init__(self, path: Union[str, os.PathLike], why: str = "no such file"):
        SatchelError.__init__(self, grpc.StatusCode.INVALID_ARGUMENT, f"{os.fspath(path)}: {why}")
        self.errno = errno.ENOENT
        self.strerror = why
        self.filename = os.fspath(path)

    def __str__(self) -> str:
        # SatchelError's "CODE: details", not OSError's "[Errno 2] ...".
        return self.args[0]


def rpc_error(e: grpc.RpcError, deadline: Optional[float] = None) -> SatchelError:
    """The SatchelError for a failed gRPC call; ``deadline`` (monotonic) is
    when the call's own deadline was to pass, if it had one."""
    # Call errors carry code() and details(); a bare RpcError does not.
    code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
    details = e.details() if hasattr(e, "details") else str(e)
    # satcheld (tonic) ends a call whose deadline it saw pass with
    # CANCELLED "Timeout expired", often just before grpc's own timer fires:
    # that is the deadline, not a cancel.
    expired = deadline is not None and (details == "Timeout expired" or time.monotonic() >= deadline)
    if code == grpc.StatusCode.CANCELLED and expired:
        code = grpc.StatusCode.DEADLINE_EXCEEDED
    return SatchelError(code, details or "")

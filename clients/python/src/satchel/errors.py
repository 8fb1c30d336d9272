"""The one exception type of this package."""

from __future__ import annotations

import grpc


class SatchelError(Exception):
    """A failed call. ``code`` is the gRPC status code (the daemon's, or one
    this client chose for a failure it found itself), ``details`` the
    message."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details

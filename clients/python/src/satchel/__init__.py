"""Python client for satcheld, the Satchel daemon: push, attach, discover,
pull and resolve OCI artifacts over gRPC.

    from satchel import Client

    with Client() as c:  # $SATCHEL_ADDR, else the daemon's default socket
        c.attach("registry.example/app:v1", ["sbom.json"],
                 artifact_type="application/vnd.cyclonedx+json")

``satchel.titles`` holds the file name rules a pull applies
(``check_title``, ``check_titles``). The generated stubs are in ``satchel.v1`` (``satchel_pb2``,
``satchel_pb2_grpc``) for calls the wrapper does not cover.
"""

from satchel.client import (
    RECEIVE_LIMIT_BYTES,
    SERVER_INFO_DEFAULTS,
    Client,
    default_addr,
)
from satchel.errors import MissingFileError, SatchelError
from satchel.results import (
    Descriptor,
    PulledFile,
    PullResult,
    PushResult,
    Referrer,
    ServerInfo,
    Signature,
    Verification,
    VerifyResult,
    WatchEvent,
)
from satchel.titles import check_title, check_titles

__all__ = [
    "RECEIVE_LIMIT_BYTES",
    "SERVER_INFO_DEFAULTS",
    "Client",
    "Descriptor",
    "MissingFileError",
    "PulledFile",
    "PullResult",
    "PushResult",
    "Referrer",
    "SatchelError",
    "ServerInfo",
    "Signature",
    "Verification",
    "VerifyResult",
    "WatchEvent",
    "check_title",
    "check_titles",
    "default_addr",
]

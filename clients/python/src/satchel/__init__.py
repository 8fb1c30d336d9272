"""Python client for satcheld, the Satchel daemon: push, attach, discover,
pull and resolve OCI artifacts over gRPC.

    from satchel import Client

    with Client("unix:///run/user/1000/satchel/satcheld.sock") as c:
        c.attach("registry.example/app:v1", ["sbom.json"],
                 artifact_type="application/vnd.cyclonedx+json")

``satchel.titles`` holds the file name rules a pull applies
(``check_title``, ``check_titles``). The generated stubs are in ``satchel.v1`` (``satchel_pb2``,
``satchel_pb2_grpc``) for calls the wrapper does not cover.
"""

from satchel.client import (
    HASH_FIRST_BELOW,
    Client,
    Descriptor,
    PulledFile,
    PullResult,
    PushResult,
    Referrer,
    SatchelError,
    default_addr,
)
from satchel.titles import check_title, check_titles

__all__ = [
    "HASH_FIRST_BELOW",
    "Client",
    "Descriptor",
    "PulledFile",
    "PullResult",
    "PushResult",
    "Referrer",
    "SatchelError",
    "check_title",
    "check_titles",
    "default_addr",
]

"""The pull's state machine: what the client makes of the daemon's Pull
answer, a stream of ``PullResponse`` messages.

``pull_stream`` consumes any iterable of them: the gRPC call in
``Client.pull``, or a recorded stream in the tests (the shared cases in
clients/conformance/pull_streams.json). It checks the protocol (a manifest
first, then for each file a header, its bytes and a FileDone: else
INTERNAL), every title before the first byte is written (INVALID_ARGUMENT),
and each file's size and digest as written (DATA_LOSS). The output
directory is made when the first file starts, not before; a file takes its
final name only once checked, and any failure removes the file in progress.
A directory layer (``satchel._unpack``) is received the same way, into a
hidden archive file beside its name, and once checked unpacked from it; the
archive is removed either way.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Iterable, Optional

import grpc

from satchel._files import OutputDir, PartialFile
from satchel._unpack import is_directory, unpack
from satchel.errors import SatchelError, rpc_error
from satchel.results import Descriptor, PulledFile, PullResult, Signature
from satchel.titles import check_title, check_titles, manifest_layers
from satchel.v1 import satchel_pb2 as pb

ProgressCallback = Callable[[str, int, int], None]
"""Called with (file name, bytes done, bytes in all or 0 when unknown)."""


def _broken(why: str) -> SatchelError:
    """The daemon's stream broke the protocol."""
    return SatchelError(grpc.StatusCode.INTERNAL, why)


class _Receiving:
    """A pulled file on its way: written to a PartialFile, hashed as it
    grows, checked against its layer and the daemon's FileDone."""

    def __init__(self, out: OutputDir, name: str, descriptor: Descriptor):
        algorithm = descriptor.digest.partition(":")[0]
        if algorithm not in ("sha256", "sha512"):
            raise SatchelError(grpc.StatusCode.FAILED_PRECONDITION, f"{name!r}: unsupported digest {descriptor.digest}")
        self.name = name
        self.descriptor = descriptor
        self.hash = hashlib.new(algorithm)
        self.size = 0
        self.out = out
        self.directory = is_directory(descriptor.annotations)
        self.file = PartialFile(out, name.split("/"), scratch=self.directory)

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.hash.update(data)
        self.size += len(data)

    def commit(self, digest: str) -> PulledFile:
        got = f"{self.hash.name}:{self.hash.hexdigest()}"
        want = self.descriptor
        if digest != want.digest or got != want.digest or self.size != want.size:
            self.file.discard()
            raise SatchelError(
                grpc.StatusCode.DATA_LOSS,
                f"{self.name!r}: expected {want.digest} ({want.size} bytes), "
                f"received {got} ({self.size} bytes), the daemon verified {digest or 'nothing'}",
            )
        if not self.directory:
            self.file.commit()
            return PulledFile(self.file.path, want)
        # The archive checked out: the directory is made from it, and the
        # archive removed.
        try:
            with self.file.reopen() as archive:
                return PulledFile(unpack(archive, self.out, self.name, want.annotations), want)
        finally:
            self.file.discard()


def _expected_files(manifest: pb.PulledManifest) -> dict[str, str]:
    """The files the pulled manifest names, title to layer digest, after
    checking its content against its digest and every title against the
    rules and each other (before anything is written)."""
    want = manifest.manifest.digest
    algorithm = want.partition(":")[0]
    if algorithm not in ("sha256", "sha512"):
        raise SatchelError(grpc.StatusCode.FAILED_PRECONDITION, f"manifest: unsupported digest {want}")
    got = f"{algorithm}:{hashlib.new(algorithm, manifest.content).hexdigest()}"
    if got != want:
        raise SatchelError(grpc.StatusCode.DATA_LOSS, f"manifest content is {got}, not {want}")
    layers = manifest_layers(manifest.content)
    check_titles(title for title, _ in layers)
    return dict(layers)


class _PullState:
    """Where a pull is: the manifest, the files still to come, the file in
    progress and the files written."""

    def __init__(self, root: Path, on_progress: Optional[ProgressCallback], verifying: bool = False):
        self.root = root
        # Keys were sent: a manifest the daemon did not say it verified (one
        # older than Verify ignores the keys) is refused before any write.
        self.verifying = verifying
        self.on_progress = on_progress
        self.manifest: Optional[pb.PulledManifest] = None
        self.expected: dict[str, str] = {}
        self.out: Optional[OutputDir] = None
        self.current: Optional[_Receiving] = None
        self.written: list[PulledFile] = []

    def take(self, message: pb.PullResponse) -> None:
        kind = message.WhichOneof("payload")
        if kind == "manifest":
            if self.manifest is not None:
                raise _broken("the daemon sent a second manifest")
            if self.verifying and not message.manifest.HasField("signature"):
                raise SatchelError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    "the daemon did not verify the artifact although keys were given "
                    "(a satcheld older than Verify?); nothing was written",
                )
            self.manifest = message.manifest
            self.expected = _expected_files(self.manifest)
        elif kind == "file":
            if self.manifest is None:
                raise _broken("a file started before the manifest")
            if self.current is not None:
                raise _broken("a file started before the last one ended")
            self.current = self._start_file(message.file)
        elif kind == "chunk":
            if self.current is None:
                raise _broken("file bytes arrived outside a file")
            self.current.write(message.chunk)
        elif kind == "done":
            if self.current is None:
                raise _broken("a file ended that never started")
            done, self.current = self.current, None
            self.written.append(done.commit(message.done.digest))
        elif kind == "progress" and self.on_progress is not None:
            p = message.progress
            self.on_progress(p.name, p.done, p.total)

    def _start_file(self, header: pb.FileHeader) -> _Receiving:
        """Opens the file a FileHeader announces, if the manifest named it
        and it has not been written yet; the output directory is made now,
        when the first file starts."""
        if self.out is None:
            self.out = OutputDir(self.root)
        check_title(header.name)
        digest = self.expected.pop(header.name, None)
        if digest is None:
            raise _broken(f"the daemon sent {header.name!r}, which the manifest names not or only once")
        if header.layer.digest != digest:
            raise _broken(f"{header.name!r}: the daemon sent {header.layer.digest}, the manifest names {digest}")
        return _Receiving(self.out, header.name, Descriptor._from_pb(header.layer))

    def finish(self) -> PullResult:
        """The result, once the stream ended without an error."""
        if self.current is not None:
            raise _broken(f"the daemon ended the pull inside {self.current.name!r}")
        if self.manifest is None:
            raise _broken("the daemon sent no manifest")
        m = self.manifest
        signature = Signature._from_pb(m.signature) if m.HasField("signature") else None
        return PullResult(Descriptor._from_pb(m.manifest), m.reference, tuple(self.written), signature)

    def close(self) -> None:
        """Removes the file in progress, if any, and lets the directory go."""
        if self.current is not None:
            self.current.file.discard()
            self.current = None
        if self.out is not None:
            self.out.close()


def pull_stream(
    responses: Iterable[pb.PullResponse],
    root: Path,
    on_progress: Optional[ProgressCallback] = None,
    deadline: Optional[float] = None,
    verifying: bool = False,
) -> PullResult:
    """Writes the files a Pull answer carries under ``root``. ``responses``
    is any iterable of PullResponse; a ``grpc.RpcError`` it raises is the
    daemon's status (mapped to a SatchelError, ``deadline`` being when the
    call's own deadline was to pass). If it has a ``cancel()`` (a gRPC call),
    that is called however the pull ends. With ``verifying`` (the request
    sent keys), an answer the daemon did not verify is refused."""
    state = _PullState(root, on_progress, verifying)
    try:
        for message in responses:
            state.take(message)
        return state.finish()
    except grpc.RpcError as e:
        raise rpc_error(e, deadline) from None
    finally:
        cancel = getattr(responses, "cancel", None)
        if cancel is not None:
            cancel()
        state.close()

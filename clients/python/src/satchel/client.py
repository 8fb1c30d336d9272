"""A thin, typed wrapper over the generated ``satchel.v1`` stubs.

Files go up in 1 MiB chunks read from disk as gRPC asks for them, and come
down in 1 MiB chunks written to a temporary file that takes its final name
only once the daemon has verified the layer's digest (and this module has
checked it again). No method holds a whole file in memory.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Optional, Sequence, Union

import grpc

from satchel._files import OutputDir, PartialFile
from satchel.errors import SatchelError
from satchel.titles import check_title, check_titles, manifest_layers
from satchel.v1 import satchel_pb2 as pb
from satchel.v1 import satchel_pb2_grpc as pb_grpc

CHUNK = 1 << 20
"""The largest chunk one message carries (the API's limit)."""

DEFAULT_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar"

MAX_MESSAGE = 16 << 20
"""The largest message this client accepts."""

HASH_FIRST_BELOW = 256 << 20
"""Files smaller than this are hashed before they are sent, as the satchel
CLI does: with a digest the daemon can skip a blob the registry already has.
Larger files stream at once and the daemon hashes them on the way."""

FileArg = Union[
    str,
    os.PathLike,
    "tuple[Union[str, os.PathLike], str]",
    "tuple[Union[str, os.PathLike], str, str]",
]
"""A file to push: a path, ``(path, media_type)`` or ``(path, media_type,
name)``; ``name`` is the layer's title (default: the file's name) and may be
a relative ``/``-separated path (see ``satchel.titles``)."""

ProgressCallback = Callable[[str, int, int], None]
"""Called with (file name, bytes done, bytes in all or 0 when unknown)."""


@dataclass(frozen=True)
class Descriptor:
    """Content by media type, digest and size, as in the OCI image spec."""

    media_type: str
    digest: str
    size: int
    artifact_type: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def _from_pb(cls, d: pb.Descriptor) -> "Descriptor":
        return cls(d.media_type, d.digest, d.size, d.artifact_type, dict(d.annotations))


@dataclass(frozen=True)
class Referrer(Descriptor):
    """A manifest that refers to a subject, with its own referrers when
    discover was asked for depth > 1."""

    referrers: Sequence["Referrer"] = ()

    @classmethod
    def _from_referrer(cls, r: pb.Referrer) -> "Referrer":
        d = r.manifest
        return cls(
            d.media_type,
            d.digest,
            d.size,
            d.artifact_type,
            dict(d.annotations),
            tuple(cls._from_referrer(x) for x in r.referrers),
        )


@dataclass(frozen=True)
class PushResult:
    """A pushed or attached artifact."""

    manifest: Descriptor
    reference: str
    """The manifest's canonical reference by digest."""
    layers: Sequence[Descriptor]
    tags: Sequence[str]
    subject: Optional[Descriptor]
    warnings: Sequence[str]
    blobs_skipped: int
    """Layers the target already had, so their bytes were checked but not
    uploaded (only files sent with a digest can be skipped)."""

    @classmethod
    def _from_pb(cls, r: pb.PushResult) -> "PushResult":
        return cls(
            Descriptor._from_pb(r.manifest),
            r.reference,
            tuple(Descriptor._from_pb(d) for d in r.layers),
            tuple(r.tags),
            Descriptor._from_pb(r.subject) if r.HasField("subject") else None,
            tuple(r.warnings),
            r.blobs_skipped,
        )


@dataclass(frozen=True)
class PulledFile:
    """A file written by pull: where it is and the layer it came from."""

    path: Path
    descriptor: Descriptor


@dataclass(frozen=True)
class PullResult:
    """A pulled artifact: its manifest and the files written."""

    manifest: Descriptor
    reference: str
    files: Sequence[PulledFile]


class Client:
    """A connection to satcheld.

    ``addr`` is ``unix:///path/to/satcheld.sock`` or ``host:port``; without
    it, ``$SATCHEL_ADDR`` or the daemon's default socket. ``token`` is sent as
    a bearer token to daemons started with ``--auth-token-file`` (give
    ``credentials`` too: a token is only sent over TLS). ``timeout`` is the
    default deadline of every call in seconds (``None``: none); each method's
    own ``timeout=`` overrides it. A call past its deadline raises
    ``SatchelError`` with DEADLINE_EXCEEDED.
    """

    def __init__(
        self,
        addr: Optional[str] = None,
        *,
        credentials: Optional[grpc.ChannelCredentials] = None,
        token: Optional[str] = None,
        timeout: Optional[float] = None,
    ):
        self.timeout = timeout
        addr = addr or os.environ.get("SATCHEL_ADDR") or default_addr()
        # A pulled manifest may be 4 MiB plus its descriptor: allow more than
        # gRPC's default 4 MiB per message.
        options = [("grpc.max_receive_message_length", MAX_MESSAGE)]
        if addr.startswith("unix:"):
            # grpc-core sends a Unix socket's path as :authority, which the
            # daemon's HTTP/2 server refuses as malformed; name a host instead.
            options.append(("grpc.default_authority", "localhost"))
        elif addr.startswith("http://"):
            addr = addr[len("http://"):]
        if credentials is not None:
            if token is not None:
                credentials = grpc.composite_channel_credentials(
                    credentials, grpc.access_token_call_credentials(token)
                )
            self._channel = grpc.secure_channel(addr, credentials, options)
        else:
            if token is not None:
                raise ValueError("a token is only sent over TLS: give credentials too")
            self._channel = grpc.insecure_channel(addr, options)
        self._stub = pb_grpc.SatchelServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def push(
        self,
        reference: str,
        files: Iterable[FileArg],
        *,
        artifact_type: str = "",
        annotations: Optional[Mapping[str, str]] = None,
        plain_http: bool = False,
        tags: Sequence[str] = (),
        on_progress: Optional[ProgressCallback] = None,
        hash_first: Optional[bool] = None,
        timeout: Optional[float] = None,
    ) -> PushResult:
        """Pushes files as an artifact to ``reference`` (a tag, or a bare
        repository for ``latest``), like ``satchel push``.

        ``hash_first`` decides which files are hashed before they are sent:
        ``None`` those under ``HASH_FIRST_BELOW``, ``True`` all, ``False``
        none. Hashing reads a file twice but lets the daemon skip a blob the
        registry already has (see ``PushResult.blobs_skipped``)."""
        specs, paths = _file_specs(files, hash_first)
        header = pb.PushHeader(
            target=_target(reference, plain_http),
            artifact=_artifact(artifact_type, annotations, specs, tags),
        )
        requests = _Requests(pb.PushRequest(header=header), paths, lambda c: pb.PushRequest(chunk=c))
        timeout = self._timeout(timeout)
        call = self._stub.Push(iter(requests), timeout=timeout)
        return _follow(call, requests, on_progress, _deadline(timeout))

    def attach(
        self,
        reference: str,
        files: Iterable[FileArg],
        *,
        artifact_type: str,
        annotations: Optional[Mapping[str, str]] = None,
        plain_http: bool = False,
        on_progress: Optional[ProgressCallback] = None,
        hash_first: Optional[bool] = None,
        timeout: Optional[float] = None,
    ) -> PushResult:
        """Attaches files as an artifact of ``artifact_type`` to the subject
        manifest ``reference``, like ``satchel attach``. ``hash_first`` is as
        for ``push``."""
        if not artifact_type:
            raise ValueError("attach needs an artifact_type")
        specs, paths = _file_specs(files, hash_first)
        header = pb.AttachHeader(
            subject=_target(reference, plain_http),
            artifact=_artifact(artifact_type, annotations, specs, ()),
        )
        requests = _Requests(pb.AttachRequest(header=header), paths, lambda c: pb.AttachRequest(chunk=c))
        timeout = self._timeout(timeout)
        call = self._stub.Attach(iter(requests), timeout=timeout)
        return _follow(call, requests, on_progress, _deadline(timeout))

    def discover(
        self,
        reference: str,
        *,
        artifact_type: str = "",
        depth: int = 1,
        plain_http: bool = False,
        timeout: Optional[float] = None,
    ) -> list[Referrer]:
        """Lists the referrers of ``reference``, filtered by
        ``artifact_type`` at the first level, ``depth`` levels deep."""
        request = pb.DiscoverRequest(
            subject=_target(reference, plain_http), artifact_type=artifact_type, depth=depth
        )
        response = _call(self._stub.Discover, request, self._timeout(timeout))
        return [Referrer._from_referrer(r) for r in response.referrers]

    def resolve(
        self, reference: str, *, plain_http: bool = False, timeout: Optional[float] = None
    ) -> Descriptor:
        """Resolves a tag or digest reference to its manifest descriptor."""
        request = pb.ResolveRequest(target=_target(reference, plain_http))
        response = _call(self._stub.Resolve, request, self._timeout(timeout))
        return Descriptor._from_pb(response.manifest)

    def pull(
        self,
        reference: str,
        *,
        output_dir: Union[str, os.PathLike] = ".",
        artifact_type: str = "",
        plain_http: bool = False,
        on_progress: Optional[ProgressCallback] = None,
        timeout: Optional[float] = None,
    ) -> PullResult:
        """Pulls the files of the artifact ``reference`` into ``output_dir``
        (made if missing).

        Every title of the artifact is checked (``satchel.titles``) before
        the first byte is written, and no file is written through a link the
        pull did not create: a link on the way is refused with
        FAILED_PRECONDITION, a link at a file's final name is replaced.

        With ``artifact_type``, ``reference`` is a subject instead, and the
        newest attachment of that type is pulled (``satchel pull --subject``).
        """
        target = _target(reference, plain_http)
        if artifact_type:
            request = pb.PullRequest(subject=target, artifact_type=artifact_type)
        else:
            request = pb.PullRequest(target=target)
        timeout = self._timeout(timeout)
        call = self._stub.Pull(request, timeout=timeout)
        return _pull(call, Path(output_dir), on_progress, _deadline(timeout))

    def _timeout(self, timeout: Optional[float]) -> Optional[float]:
        return self.timeout if timeout is None else timeout


def default_addr() -> str:
    """The daemon's default socket, as satcheld computes it."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return f"unix://{runtime}/satchel/satcheld.sock"
    return f"unix://{tempfile.gettempdir()}/satchel-{os.getuid()}/satcheld.sock"


def _call(method, request, timeout: Optional[float]):
    deadline = _deadline(timeout)
    try:
        return method(request, timeout=timeout)
    except grpc.RpcError as e:
        raise _error(e, deadline) from None


def _deadline(timeout: Optional[float]) -> Optional[float]:
    return None if timeout is None else time.monotonic() + timeout


def _error(e: grpc.RpcError, deadline: Optional[float] = None) -> SatchelError:
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


def _target(reference: str, plain_http: bool) -> pb.Target:
    return pb.Target(reference=reference, plain_http=plain_http)


def _artifact(
    artifact_type: str,
    annotations: Optional[Mapping[str, str]],
    files: list[pb.FileSpec],
    tags: Sequence[str],
) -> pb.ArtifactSpec:
    return pb.ArtifactSpec(
        artifact_type=artifact_type,
        annotations=dict(annotations or {}),
        files=files,
        tags=list(tags),
    )


def _file_specs(
    files: Iterable[FileArg], hash_first: Optional[bool]
) -> tuple[list[pb.FileSpec], list[Path]]:
    specs, paths = [], []
    # The layer's title is the file's name, as the CLI records it, unless
    # the caller names it.
    named = []
    for f in files:
        if isinstance(f, tuple):
            path, media_type = Path(f[0]), f[1]
            name = f[2] if len(f) > 2 else path.name
        else:
            path, media_type, name = Path(f), DEFAULT_MEDIA_TYPE, Path(f).name
        named.append((path, media_type, name))
    # The titles first: a name the daemon would refuse fails before any
    # file is read.
    check_titles(name for _, _, name in named)
    for path, media_type, name in named:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not a file")
        # The daemon hashes the bytes as they arrive and checks them
        # against a digest sent here.
        size = path.stat().st_size
        hash_it = size < HASH_FIRST_BELOW if hash_first is None else hash_first
        digest = _sha256_file(path) if hash_it else ""
        specs.append(pb.FileSpec(name=name, media_type=media_type, size=size, digest=digest))
        paths.append(path)
    return specs, paths


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


class _Requests:
    """The messages of a Push or Attach call, read from disk lazily: gRPC
    pulls the next one only when flow control lets it send. A read error is
    kept, to be reported instead of gRPC's generic one."""

    def __init__(self, first, paths: list[Path], wrap):
        self.first, self.paths, self.wrap = first, paths, wrap
        self.error: Optional[OSError] = None

    def __iter__(self) -> Iterator:
        yield self.first
        for index, path in enumerate(self.paths):
            try:
                with open(path, "rb") as f:
                    while data := f.read(CHUNK):
                        yield self.wrap(pb.FileChunk(file_index=index, data=data))
            except OSError as e:
                self.error = e
                raise


def _follow(
    call, requests: _Requests, on_progress: Optional[ProgressCallback], deadline: Optional[float]
) -> PushResult:
    try:
        for event in call:
            kind = event.WhichOneof("event")
            if kind == "progress" and on_progress is not None:
                p = event.progress
                on_progress(p.name, p.done, p.total)
            elif kind == "result":
                return PushResult._from_pb(event.result)
    except grpc.RpcError as e:
        if requests.error is not None:
            raise requests.error from None
        raise _error(e, deadline) from None
    finally:
        # Whatever stopped us early (a callback's exception, say), the upload
        # must not go on without us. A finished call ignores this.
        call.cancel()
    raise SatchelError(grpc.StatusCode.INTERNAL, "the daemon ended the call without a result")


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
        self.file = PartialFile(out, name.split("/"))

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
        self.file.commit()
        return PulledFile(self.file.path, want)


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


def _start_file(header: pb.FileHeader, expected: dict[str, str], out: OutputDir) -> _Receiving:
    """Opens the file a FileHeader announces, if the manifest named it and
    it has not been written yet."""
    check_title(header.name)
    digest = expected.pop(header.name, None)
    if digest is None:
        raise SatchelError(
            grpc.StatusCode.INTERNAL, f"the daemon sent {header.name!r}, which the manifest names not or only once"
        )
    if header.layer.digest != digest:
        raise SatchelError(
            grpc.StatusCode.INTERNAL,
            f"{header.name!r}: the daemon sent {header.layer.digest}, the manifest names {digest}",
        )
    return _Receiving(out, header.name, Descriptor._from_pb(header.layer))


def _pull(
    call, root: Path, on_progress: Optional[ProgressCallback], deadline: Optional[float] = None
) -> PullResult:
    manifest: Optional[pb.PulledManifest] = None
    expected: dict[str, str] = {}
    out: Optional[OutputDir] = None
    current: Optional[_Receiving] = None
    written: list[PulledFile] = []
    try:
        out = OutputDir(root)
        for message in call:
            kind = message.WhichOneof("payload")
            if kind == "manifest":
                if manifest is not None:
                    raise SatchelError(grpc.StatusCode.INTERNAL, "the daemon sent a second manifest")
                manifest = message.manifest
                expected = _expected_files(manifest)
            elif kind == "file":
                if manifest is None:
                    raise SatchelError(grpc.StatusCode.INTERNAL, "a file started before the manifest")
                if current is not None:
                    raise SatchelError(grpc.StatusCode.INTERNAL, "a file started before the last one ended")
                current = _start_file(message.file, expected, out)
            elif kind == "chunk":
                if current is None:
                    raise SatchelError(grpc.StatusCode.INTERNAL, "file bytes arrived outside a file")
                current.write(message.chunk)
            elif kind == "done":
                if current is None:
                    raise SatchelError(grpc.StatusCode.INTERNAL, "a file ended that never started")
                done, current = current, None
                written.append(done.commit(message.done.digest))
            elif kind == "progress" and on_progress is not None:
                p = message.progress
                on_progress(p.name, p.done, p.total)
        if current is not None:
            raise SatchelError(grpc.StatusCode.INTERNAL, f"the daemon ended the pull inside {current.name!r}")
    except grpc.RpcError as e:
        raise _error(e, deadline) from None
    finally:
        call.cancel()
        if current is not None:
            current.file.discard()
        if out is not None:
            out.close()
    if manifest is None:
        raise SatchelError(grpc.StatusCode.INTERNAL, "the daemon sent no manifest")
    return PullResult(Descriptor._from_pb(manifest.manifest), manifest.reference, tuple(written))

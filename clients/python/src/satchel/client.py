"""A thin, typed wrapper over the generated ``satchel.v1`` stubs.

Files go up in chunks of the daemon's ``max_chunk_bytes`` (its ServerInfo,
asked once per client), read from disk as gRPC asks for them, and come down
in chunks written to a temporary file that takes its final name only once
the daemon has verified the layer's digest (and ``satchel._pull`` has
checked it again). No method holds a whole file in memory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Optional, Sequence, Union

import grpc

from satchel._pack import DIRECTORY_MEDIA_TYPE, PackedDirectory, pack
from satchel._pull import ProgressCallback
from satchel._pull import pull_stream as _pull
from satchel.errors import MissingFileError, SatchelError, rpc_error as _error
from satchel.results import (
    Descriptor,
    PullResult,
    PulledFile,
    PushResult,
    Referrer,
    ServerInfo,
    Signature,
    VerifyResult,
    WatchEvent,
)
from satchel.titles import check_titles
from satchel.v1 import satchel_pb2 as pb
from satchel.v1 import satchel_pb2_grpc as pb_grpc

DEFAULT_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar"

SERVER_INFO_DEFAULTS = ServerInfo(max_chunk_bytes=1 << 20, max_message_bytes=8 << 20, hash_first_below=256 << 20)
"""What a daemon too old for ServerInfo (UNIMPLEMENTED) is taken to answer:
clients/conformance/limits.json's ``server_info_defaults``, which is also
what a daemon with the default config answers."""

RECEIVE_LIMIT_BYTES = 8 << 20
"""The largest message this client accepts (clients/conformance/limits.json's
``client_receive_limit_bytes``): at least the daemon's ``max_message_bytes``,
and more than gRPC's default 4 MiB, for a pulled manifest may be 4 MiB plus
its descriptor."""

STREAM_WINDOW_BYTES = 8 << 20
"""How many bytes of one answer the daemon may send before this client
acknowledges them (the Rust client's window). grpc-core also keeps the
connection's window at the streams' windows plus this; it has no separate
setting for it."""

MAX_FRAME_BYTES = (1 << 20) + (64 << 10)
"""The largest HTTP/2 frame this client accepts: a whole 1 MiB chunk message
fits in one (HTTP/2's default is 16 KiB)."""

HTTP2_OPTIONS = (
    # Fixed: grpc-core's BDP probing would move the window and the frame
    # size with its estimates (and ping the daemon to make them).
    ("grpc.http2.bdp_probe", 0),
    ("grpc.http2.lookahead_bytes", STREAM_WINDOW_BYTES),
    ("grpc.http2.max_frame_size", MAX_FRAME_BYTES),
)
"""The channel's HTTP/2 settings. grpc-core ignores a channel argument it
does not know, so tests/test_http2.py reads what the channel announces."""

_READ = 1 << 20
"""How much of a file is read at once to hash it."""

FileArg = Union[
    str,
    os.PathLike,
    "tuple[Union[str, os.PathLike], str]",
    "tuple[Union[str, os.PathLike], str, str]",
]
"""A file to push: a path, ``(path, media_type)`` or ``(path, media_type,
name)``; ``name`` is the layer's title (default: the file's name) and may be
a relative ``/``-separated path (see ``satchel.titles``). A directory is
packed as the ORAS CLI packs one (``satchel._pack``); its media type
defaults to ``DIRECTORY_MEDIA_TYPE``."""


@dataclasses.dataclass
class _Layer:
    """A file to push: where its bytes are, its title and media type, and,
    for a packed directory, the archive's digest, size and annotations."""

    path: Path
    media_type: str
    name: str
    directory: bool = False
    packed: Optional[PackedDirectory] = None



class Client:
    """A connection to satcheld.

    ``addr`` is ``unix:///path/to/satcheld.sock``, a bare absolute path (a
    Unix socket too), ``host:port`` or ``http://host:port``; when it is
    ``None`` or empty, ``$SATCHEL_ADDR`` if set and not empty, else the
    daemon's default socket (``default_addr()``). ``token`` is sent as
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
        self._info: Optional[ServerInfo] = None
        self._info_lock = threading.Lock()
        addr = addr or os.environ.get("SATCHEL_ADDR") or default_addr()
        if addr.startswith("/"):
            addr = "unix://" + addr
        options = [("grpc.max_receive_message_length", RECEIVE_LIMIT_BYTES), *HTTP2_OPTIONS]
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

    def server_info(self, *, timeout: Optional[float] = None) -> ServerInfo:
        """The daemon's version and limits, asked once per client and kept;
        ``SERVER_INFO_DEFAULTS`` for a daemon too old to answer. Push and
        attach use its chunk size and hash-first threshold."""
        with self._info_lock:
            if self._info is None:
                try:
                    answer = _call(self._stub.ServerInfo, pb.ServerInfoRequest(), self._timeout(timeout))
                    info = ServerInfo._from_pb(answer)
                    if info.max_chunk_bytes == 0:
                        # Not a limit anyone means: the chunk size is unset.
                        info = dataclasses.replace(info, max_chunk_bytes=SERVER_INFO_DEFAULTS.max_chunk_bytes)
                except SatchelError as e:
                    if e.code != grpc.StatusCode.UNIMPLEMENTED:
                        raise
                    info = SERVER_INFO_DEFAULTS
                self._info = info
            return self._info

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
        ``None`` those under the daemon's ``hash_first_below`` (see
        ``server_info``), ``True`` all, ``False`` none. Hashing reads a file
        twice but lets the daemon skip a blob the registry already has (see
        ``PushResult.blobs_skipped``). A file that is not there raises
        ``MissingFileError`` (INVALID_ARGUMENT, a ``FileNotFoundError``)
        before any call. A directory is packed into a temporary tar+gzip
        archive first, as the ORAS CLI packs one (a socket, device or FIFO
        inside is INVALID_ARGUMENT), and that archive removed afterwards."""
        named = _named_files(files)

        def header(specs: list[pb.FileSpec]) -> pb.PushRequest:
            artifact = _artifact(artifact_type, annotations, specs, tags)
            return pb.PushRequest(header=pb.PushHeader(target=_target(reference, plain_http), artifact=artifact))

        return self._upload(
            self._stub.Push, named, header, lambda c: pb.PushRequest(chunk=c), hash_first, on_progress, timeout
        )

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
        manifest ``reference``, like ``satchel attach``. ``hash_first``, a
        missing file and a directory are as for ``push``."""
        if not artifact_type:
            raise ValueError("attach needs an artifact_type")
        named = _named_files(files)

        def header(specs: list[pb.FileSpec]) -> pb.AttachRequest:
            artifact = _artifact(artifact_type, annotations, specs, ())
            return pb.AttachRequest(header=pb.AttachHeader(subject=_target(reference, plain_http), artifact=artifact))

        return self._upload(
            self._stub.Attach, named, header, lambda c: pb.AttachRequest(chunk=c), hash_first, on_progress, timeout
        )

    def _upload(self, method, named, header, wrap, hash_first, on_progress, timeout) -> PushResult:
        """A Push or Attach call: the directories packed, the daemon's limits,
        the files' specs (hashed or not), then the header and the files'
        bytes in chunks."""
        with contextlib.ExitStack() as packed:
            # Directories are packed before any call, each archive removed
            # when the call is over, however it ends.
            for layer in named:
                if layer.directory:
                    layer.packed = pack(layer.path, layer.name)
                    packed.callback(layer.packed.remove)
            timeout = self._timeout(timeout)
            deadline = _deadline(timeout)
            info = self.server_info(timeout=timeout)
            specs, paths = _file_specs(named, hash_first, info.hash_first_below)
            requests = _Requests(header(specs), paths, wrap, info.max_chunk_bytes)
            call = method(iter(requests), timeout=_left(deadline))
            return _follow(call, requests, on_progress, deadline)

    def discover(
        self,
        reference: str,
        *,
        artifact_type: str = "",
        depth: int = 1,
        verify: bool = False,
        verify_keys: Sequence[KeySource] = (),
        plain_http: bool = False,
        timeout: Optional[float] = None,
    ) -> list[Referrer]:
        """Lists the referrers of ``reference``, filtered by
        ``artifact_type`` at the first level, ``depth`` levels deep. With
        ``verify`` (or ``verify_keys``), each direct referrer's
        ``verification`` says whether it verifies, under those keys or the
        daemon's policy."""
        keys = _pems(verify_keys)
        request = pb.DiscoverRequest(
            subject=_target(reference, plain_http),
            artifact_type=artifact_type,
            depth=depth,
            verify=verify or bool(keys),
            verify_keys=keys,
        )
        response = _call(self._stub.Discover, request, self._timeout(timeout))
        return [Referrer._from_referrer(r) for r in response.referrers]

    def watch_referrers(
        self, reference: str, *, artifact_type: str = "", plain_http: bool = False
    ) -> Iterator[WatchEvent]:
        """Yields the referrers of ``reference`` (filtered by
        ``artifact_type``) as they are now, then every change, until the
        iterator is closed (which cancels the call)."""
        request = pb.WatchReferrersRequest(
            subject=_target(reference, plain_http), artifact_type=artifact_type
        )
        call = self._stub.WatchReferrers(request)
        try:
            for answer in call:
                yield WatchEvent._from_pb(answer)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                raise _error(e, None) from None
        finally:
            call.cancel()

    def resolve(
        self, reference: str, *, plain_http: bool = False, timeout: Optional[float] = None
    ) -> Descriptor:
        """Resolves a tag or digest reference to its manifest descriptor."""
        request = pb.ResolveRequest(target=_target(reference, plain_http))
        response = _call(self._stub.Resolve, request, self._timeout(timeout))
        return Descriptor._from_pb(response.manifest)

    def verify(
        self,
        reference: str,
        *,
        keys: Sequence[KeySource] = (),
        plain_http: bool = False,
        timeout: Optional[float] = None,
    ) -> VerifyResult:
        """Checks that ``reference`` is signed (by cosign) under one of
        ``keys``: PEM public keys as bytes, or paths of PEM files. Without
        keys, the daemon's policy names them. A refusal raises SatchelError
        with FAILED_PRECONDITION (nothing checkable: unsigned, not a
        bundle, no key) or PERMISSION_DENIED (another key, altered bytes, a
        signature of another digest)."""
        request = pb.VerifyRequest(target=_target(reference, plain_http), keys=_pems(keys))
        response = _call(self._stub.Verify, request, self._timeout(timeout))
        return VerifyResult(
            Descriptor._from_pb(response.manifest),
            response.reference,
            Signature._from_pb(response.signature),
        )

    def pull(
        self,
        reference: str,
        *,
        output_dir: Union[str, os.PathLike] = ".",
        artifact_type: str = "",
        verify_keys: Sequence[KeySource] = (),
        plain_http: bool = False,
        on_progress: Optional[ProgressCallback] = None,
        timeout: Optional[float] = None,
    ) -> PullResult:
        """Pulls the files of the artifact ``reference`` into ``output_dir``,
        made (if missing) when the first file starts: a pull that fails
        before, or an artifact without files, makes no directory.

        Every title of the artifact is checked (``satchel.titles``) before
        the first byte is written, and no file is written through a link the
        pull did not create: a link on the way is refused with
        FAILED_PRECONDITION, a link at a file's final name is replaced.

        With ``artifact_type``, ``reference`` is a subject instead, and the
        newest attachment of that type is pulled (``satchel pull --subject``).

        With ``verify_keys`` (as ``verify`` takes them), only what one of
        them signed is pulled: with ``artifact_type``, the newest attachment
        that verifies. When none does, nothing is written. The result's
        ``signature`` names what verified it.
        """
        target = _target(reference, plain_http)
        keys = _pems(verify_keys)
        if artifact_type:
            request = pb.PullRequest(subject=target, artifact_type=artifact_type, verify_keys=keys)
        else:
            request = pb.PullRequest(target=target, verify_keys=keys)
        timeout = self._timeout(timeout)
        call = self._stub.Pull(request, timeout=timeout)
        return _pull(call, Path(output_dir), on_progress, _deadline(timeout), verifying=bool(keys))

    def _timeout(self, timeout: Optional[float]) -> Optional[float]:
        return self.timeout if timeout is None else timeout


KeySource = Union[bytes, str, "os.PathLike[str]"]
"""A public key: its PEM bytes, or the path of a PEM file."""


def _pems(keys: Sequence[KeySource]) -> list[bytes]:
    """The PEM bytes of ``keys``; a path that cannot be read raises
    SatchelError with INVALID_ARGUMENT."""
    pems = []
    for key in keys:
        if isinstance(key, bytes):
            pems.append(key)
            continue
        try:
            pems.append(Path(key).read_bytes())
        except OSError as e:
            raise SatchelError(grpc.StatusCode.INVALID_ARGUMENT, f"cannot read the key {key}: {e.strerror}") from None
    return pems


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


def _left(deadline: Optional[float]) -> Optional[float]:
    """The seconds until ``deadline``, for a call that comes after another."""
    return None if deadline is None else max(0.0, deadline - time.monotonic())


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


def _named_files(files: Iterable[FileArg]) -> list[_Layer]:
    """Each file as a _Layer, after the checks that need no daemon: every
    title against the rules and each other, then every path a regular file
    or a directory (else ``MissingFileError``)."""
    # The layer's title is the file's name, as the CLI records it, unless
    # the caller names it.
    named = []
    for f in files:
        if isinstance(f, tuple):
            path, media_type = Path(f[0]), f[1]
            name = f[2] if len(f) > 2 else path.name
        else:
            path, media_type, name = Path(f), None, Path(f).name
        named.append((path, media_type, name))
    # The titles first: a name the daemon would refuse fails before any
    # file is read.
    check_titles(name for _, _, name in named)
    layers = []
    for path, media_type, name in named:
        if not path.exists():
            raise MissingFileError(path)
        if path.is_dir():
            layers.append(_Layer(path, media_type or DIRECTORY_MEDIA_TYPE, name, directory=True))
        elif path.is_file():
            layers.append(_Layer(path, DEFAULT_MEDIA_TYPE if media_type is None else media_type, name))
        else:
            raise MissingFileError(path, "not a regular file or a directory")
    return layers


def _file_specs(
    named: list[_Layer], hash_first: Optional[bool], hash_first_below: int
) -> tuple[list[pb.FileSpec], list[Path]]:
    """The FileSpecs of the files, hashed first as ``hash_first`` says (or,
    when it is None, those smaller than ``hash_first_below``); a packed
    directory's digest is known already."""
    specs, paths = [], []
    for layer in named:
        if layer.packed is not None:
            p = layer.packed
            specs.append(
                pb.FileSpec(
                    name=layer.name, media_type=layer.media_type, size=p.size, digest=p.digest,
                    annotations=dict(p.annotations),
                )
            )
            paths.append(p.path)
            continue
        # The daemon hashes the bytes as they arrive and checks them
        # against a digest sent here.
        size = layer.path.stat().st_size
        hash_it = size < hash_first_below if hash_first is None else hash_first
        digest = _sha256_file(layer.path) if hash_it else ""
        specs.append(pb.FileSpec(name=layer.name, media_type=layer.media_type, size=size, digest=digest))
        paths.append(layer.path)
    return specs, paths


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_READ):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


class _Requests:
    """The messages of a Push or Attach call, read from disk lazily, in
    chunks of ``chunk`` bytes: gRPC pulls the next one only when flow control
    lets it send. A read error is kept, to be reported instead of gRPC's
    generic one."""

    def __init__(self, first, paths: list[Path], wrap, chunk: int):
        self.first, self.paths, self.wrap, self.chunk = first, paths, wrap, chunk
        self.error: Optional[OSError] = None

    def __iter__(self) -> Iterator:
        yield self.first
        for index, path in enumerate(self.paths):
            try:
                with open(path, "rb") as f:
                    while data := f.read(self.chunk):
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

"""What the client's calls return: plain, frozen dataclasses made from the
generated ``satchel.v1`` messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence

from satchel.v1 import satchel_pb2 as pb


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
    verification: Optional["Verification"] = None
    """Whether it verifies, when discover was asked to verify (direct
    referrers only)."""

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
            Verification._from_pb(r.verification) if r.HasField("verification") else None,
        )


@dataclass(frozen=True)
class WatchEvent:
    """One event of ``Client.watch_referrers``. ``kind`` is ``"current"``
    (``referrers`` holds every current referrer: the first event, and again,
    with ``resync`` set, whenever the watcher fell behind), ``"appeared"`` or
    ``"disappeared"`` (``referrers`` holds the one that changed)."""

    kind: str
    referrers: Sequence[Descriptor]
    resync: bool = False

    @classmethod
    def _from_pb(cls, r: pb.WatchReferrersResponse) -> "WatchEvent":
        which = r.WhichOneof("event")
        if which == "current":
            found = tuple(Descriptor._from_pb(d) for d in r.current.referrers)
            return cls("current", found, r.current.resync)
        return cls(which, (Descriptor._from_pb(getattr(r, which)),))


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
class Signature:
    """A cosign signature that verified a manifest."""

    digest: str
    """The signature's manifest: the bundle referrer, or the one the
    ``sha256-<hex>.sig`` tag names."""
    form: str
    """``sigstore-bundle-v0.3`` or ``cosign-simple-signing``."""
    key_fingerprint: str
    """``sha256:<hex>`` of the key's DER SubjectPublicKeyInfo."""
    predicate_type: str

    @classmethod
    def _from_pb(cls, s: pb.Signature) -> "Signature":
        return cls(s.digest, s.form, s.key_fingerprint, s.predicate_type)


@dataclass(frozen=True)
class Verification:
    """Whether one referrer verifies (``Client.discover`` with ``verify``)."""

    verified: bool
    signature: Optional[Signature]
    """What verified it, when it did."""
    reason: str
    """Why not: the message ``verify`` would fail with."""
    code: str
    """``FAILED_PRECONDITION`` or ``PERMISSION_DENIED`` when not verified."""

    @classmethod
    def _from_pb(cls, v: pb.Verification) -> "Verification":
        signature = Signature._from_pb(v.signature) if v.verified else None
        return cls(v.verified, signature, v.reason, v.code)


@dataclass(frozen=True)
class VerifyResult:
    """A manifest that verified, and by which signature."""

    manifest: Descriptor
    reference: str
    signature: Signature


@dataclass(frozen=True)
class PullResult:
    """A pulled artifact: its manifest and the files written."""

    manifest: Descriptor
    reference: str
    files: Sequence[PulledFile]
    signature: Optional[Signature] = None
    """Set when the pull was verified (``verify_keys``, or the daemon's
    policy): the signature that verified the manifest."""


@dataclass(frozen=True)
class ServerInfo:
    """What the daemon says about itself (its ServerInfo RPC): the limits a
    client works to instead of keeping copies of them."""

    max_chunk_bytes: int
    """The most file bytes one message may carry: pushes are cut to this."""
    max_message_bytes: int
    """The largest message the daemon sends or accepts."""
    hash_first_below: int
    """Files smaller than this are hashed before a push (the daemon's
    ``upload_monolithic_max``), so the daemon can skip a blob the registry
    already has."""
    version: str = ""
    """The daemon's version; empty for a daemon too old to say."""
    content_store: bool = False
    """Whether the daemon keeps a content store."""

    @classmethod
    def _from_pb(cls, r: pb.ServerInfoResponse) -> "ServerInfo":
        return cls(r.max_chunk_bytes, r.max_message_bytes, r.hash_first_below, r.version, r.content_store)

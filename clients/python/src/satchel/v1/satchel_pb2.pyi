from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReferrersMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REFERRERS_MODE_UNSPECIFIED: _ClassVar[ReferrersMode]
    REFERRERS_MODE_API: _ClassVar[ReferrersMode]
    REFERRERS_MODE_TAG: _ClassVar[ReferrersMode]
REFERRERS_MODE_UNSPECIFIED: ReferrersMode
REFERRERS_MODE_API: ReferrersMode
REFERRERS_MODE_TAG: ReferrersMode

class Target(_message.Message):
    __slots__ = ("reference", "oci_layout", "plain_http", "referrers_mode", "platform")
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    OCI_LAYOUT_FIELD_NUMBER: _ClassVar[int]
    PLAIN_HTTP_FIELD_NUMBER: _ClassVar[int]
    REFERRERS_MODE_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    reference: str
    oci_layout: str
    plain_http: bool
    referrers_mode: ReferrersMode
    platform: str
    def __init__(self, reference: _Optional[str] = ..., oci_layout: _Optional[str] = ..., plain_http: _Optional[bool] = ..., referrers_mode: _Optional[_Union[ReferrersMode, str]] = ..., platform: _Optional[str] = ...) -> None: ...

class Descriptor(_message.Message):
    __slots__ = ("media_type", "digest", "size", "artifact_type", "annotations")
    class AnnotationsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_TYPE_FIELD_NUMBER: _ClassVar[int]
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    media_type: str
    digest: str
    size: int
    artifact_type: str
    annotations: _containers.ScalarMap[str, str]
    def __init__(self, media_type: _Optional[str] = ..., digest: _Optional[str] = ..., size: _Optional[int] = ..., artifact_type: _Optional[str] = ..., annotations: _Optional[_Mapping[str, str]] = ...) -> None: ...

class FileSpec(_message.Message):
    __slots__ = ("name", "media_type", "size", "digest", "annotations", "from_content_store")
    class AnnotationsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    FROM_CONTENT_STORE_FIELD_NUMBER: _ClassVar[int]
    name: str
    media_type: str
    size: int
    digest: str
    annotations: _containers.ScalarMap[str, str]
    from_content_store: bool
    def __init__(self, name: _Optional[str] = ..., media_type: _Optional[str] = ..., size: _Optional[int] = ..., digest: _Optional[str] = ..., annotations: _Optional[_Mapping[str, str]] = ..., from_content_store: _Optional[bool] = ...) -> None: ...

class ConfigSpec(_message.Message):
    __slots__ = ("media_type", "data")
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    media_type: str
    data: bytes
    def __init__(self, media_type: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class ArtifactSpec(_message.Message):
    __slots__ = ("artifact_type", "annotations", "files", "config", "tags")
    class AnnotationsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ARTIFACT_TYPE_FIELD_NUMBER: _ClassVar[int]
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    artifact_type: str
    annotations: _containers.ScalarMap[str, str]
    files: _containers.RepeatedCompositeFieldContainer[FileSpec]
    config: ConfigSpec
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, artifact_type: _Optional[str] = ..., annotations: _Optional[_Mapping[str, str]] = ..., files: _Optional[_Iterable[_Union[FileSpec, _Mapping]]] = ..., config: _Optional[_Union[ConfigSpec, _Mapping]] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class FileChunk(_message.Message):
    __slots__ = ("file_index", "data")
    FILE_INDEX_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    file_index: int
    data: bytes
    def __init__(self, file_index: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class PushHeader(_message.Message):
    __slots__ = ("target", "artifact")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    target: Target
    artifact: ArtifactSpec
    def __init__(self, target: _Optional[_Union[Target, _Mapping]] = ..., artifact: _Optional[_Union[ArtifactSpec, _Mapping]] = ...) -> None: ...

class PushRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: PushHeader
    chunk: FileChunk
    def __init__(self, header: _Optional[_Union[PushHeader, _Mapping]] = ..., chunk: _Optional[_Union[FileChunk, _Mapping]] = ...) -> None: ...

class AttachHeader(_message.Message):
    __slots__ = ("subject", "artifact")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    subject: Target
    artifact: ArtifactSpec
    def __init__(self, subject: _Optional[_Union[Target, _Mapping]] = ..., artifact: _Optional[_Union[ArtifactSpec, _Mapping]] = ...) -> None: ...

class AttachRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: AttachHeader
    chunk: FileChunk
    def __init__(self, header: _Optional[_Union[AttachHeader, _Mapping]] = ..., chunk: _Optional[_Union[FileChunk, _Mapping]] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("name", "done", "total")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    name: str
    done: int
    total: int
    def __init__(self, name: _Optional[str] = ..., done: _Optional[int] = ..., total: _Optional[int] = ...) -> None: ...

class PushResponse(_message.Message):
    __slots__ = ("progress", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: Progress
    result: PushResult
    def __init__(self, progress: _Optional[_Union[Progress, _Mapping]] = ..., result: _Optional[_Union[PushResult, _Mapping]] = ...) -> None: ...

class AttachResponse(_message.Message):
    __slots__ = ("progress", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: Progress
    result: PushResult
    def __init__(self, progress: _Optional[_Union[Progress, _Mapping]] = ..., result: _Optional[_Union[PushResult, _Mapping]] = ...) -> None: ...

class PushResult(_message.Message):
    __slots__ = ("manifest", "reference", "layers", "tags", "blobs_skipped", "subject", "warnings")
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    BLOBS_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    manifest: Descriptor
    reference: str
    layers: _containers.RepeatedCompositeFieldContainer[Descriptor]
    tags: _containers.RepeatedScalarFieldContainer[str]
    blobs_skipped: int
    subject: Descriptor
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, manifest: _Optional[_Union[Descriptor, _Mapping]] = ..., reference: _Optional[str] = ..., layers: _Optional[_Iterable[_Union[Descriptor, _Mapping]]] = ..., tags: _Optional[_Iterable[str]] = ..., blobs_skipped: _Optional[int] = ..., subject: _Optional[_Union[Descriptor, _Mapping]] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class DiscoverRequest(_message.Message):
    __slots__ = ("subject", "artifact_type", "depth", "verify", "verify_keys")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_TYPE_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    VERIFY_FIELD_NUMBER: _ClassVar[int]
    VERIFY_KEYS_FIELD_NUMBER: _ClassVar[int]
    subject: Target
    artifact_type: str
    depth: int
    verify: bool
    verify_keys: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, subject: _Optional[_Union[Target, _Mapping]] = ..., artifact_type: _Optional[str] = ..., depth: _Optional[int] = ..., verify: _Optional[bool] = ..., verify_keys: _Optional[_Iterable[bytes]] = ...) -> None: ...

class Referrer(_message.Message):
    __slots__ = ("manifest", "referrers", "verification")
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    REFERRERS_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_FIELD_NUMBER: _ClassVar[int]
    manifest: Descriptor
    referrers: _containers.RepeatedCompositeFieldContainer[Referrer]
    verification: Verification
    def __init__(self, manifest: _Optional[_Union[Descriptor, _Mapping]] = ..., referrers: _Optional[_Iterable[_Union[Referrer, _Mapping]]] = ..., verification: _Optional[_Union[Verification, _Mapping]] = ...) -> None: ...

class DiscoverResponse(_message.Message):
    __slots__ = ("subject", "reference", "referrers")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    REFERRERS_FIELD_NUMBER: _ClassVar[int]
    subject: Descriptor
    reference: str
    referrers: _containers.RepeatedCompositeFieldContainer[Referrer]
    def __init__(self, subject: _Optional[_Union[Descriptor, _Mapping]] = ..., reference: _Optional[str] = ..., referrers: _Optional[_Iterable[_Union[Referrer, _Mapping]]] = ...) -> None: ...

class WatchReferrersRequest(_message.Message):
    __slots__ = ("subject", "artifact_type")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_TYPE_FIELD_NUMBER: _ClassVar[int]
    subject: Target
    artifact_type: str
    def __init__(self, subject: _Optional[_Union[Target, _Mapping]] = ..., artifact_type: _Optional[str] = ...) -> None: ...

class WatchReferrersResponse(_message.Message):
    __slots__ = ("current", "appeared", "disappeared")
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    APPEARED_FIELD_NUMBER: _ClassVar[int]
    DISAPPEARED_FIELD_NUMBER: _ClassVar[int]
    current: CurrentReferrers
    appeared: Descriptor
    disappeared: Descriptor
    def __init__(self, current: _Optional[_Union[CurrentReferrers, _Mapping]] = ..., appeared: _Optional[_Union[Descriptor, _Mapping]] = ..., disappeared: _Optional[_Union[Descriptor, _Mapping]] = ...) -> None: ...

class CurrentReferrers(_message.Message):
    __slots__ = ("subject", "reference", "referrers", "resync")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    REFERRERS_FIELD_NUMBER: _ClassVar[int]
    RESYNC_FIELD_NUMBER: _ClassVar[int]
    subject: Descriptor
    reference: str
    referrers: _containers.RepeatedCompositeFieldContainer[Descriptor]
    resync: bool
    def __init__(self, subject: _Optional[_Union[Descriptor, _Mapping]] = ..., reference: _Optional[str] = ..., referrers: _Optional[_Iterable[_Union[Descriptor, _Mapping]]] = ..., resync: _Optional[bool] = ...) -> None: ...

class PullRequest(_message.Message):
    __slots__ = ("target", "subject", "artifact_type", "local_files", "verify_keys")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_TYPE_FIELD_NUMBER: _ClassVar[int]
    LOCAL_FILES_FIELD_NUMBER: _ClassVar[int]
    VERIFY_KEYS_FIELD_NUMBER: _ClassVar[int]
    target: Target
    subject: Target
    artifact_type: str
    local_files: bool
    verify_keys: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, target: _Optional[_Union[Target, _Mapping]] = ..., subject: _Optional[_Union[Target, _Mapping]] = ..., artifact_type: _Optional[str] = ..., local_files: _Optional[bool] = ..., verify_keys: _Optional[_Iterable[bytes]] = ...) -> None: ...

class PulledManifest(_message.Message):
    __slots__ = ("manifest", "content", "reference", "local_ticket", "signature")
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    LOCAL_TICKET_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    manifest: Descriptor
    content: bytes
    reference: str
    local_ticket: bytes
    signature: Signature
    def __init__(self, manifest: _Optional[_Union[Descriptor, _Mapping]] = ..., content: _Optional[bytes] = ..., reference: _Optional[str] = ..., local_ticket: _Optional[bytes] = ..., signature: _Optional[_Union[Signature, _Mapping]] = ...) -> None: ...

class FileHeader(_message.Message):
    __slots__ = ("name", "layer")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LAYER_FIELD_NUMBER: _ClassVar[int]
    name: str
    layer: Descriptor
    def __init__(self, name: _Optional[str] = ..., layer: _Optional[_Union[Descriptor, _Mapping]] = ...) -> None: ...

class FileDone(_message.Message):
    __slots__ = ("digest",)
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    digest: str
    def __init__(self, digest: _Optional[str] = ...) -> None: ...

class PullResponse(_message.Message):
    __slots__ = ("manifest", "file", "chunk", "done", "progress")
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    manifest: PulledManifest
    file: FileHeader
    chunk: bytes
    done: FileDone
    progress: Progress
    def __init__(self, manifest: _Optional[_Union[PulledManifest, _Mapping]] = ..., file: _Optional[_Union[FileHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ..., done: _Optional[_Union[FileDone, _Mapping]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ("target", "keys")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    target: Target
    keys: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, target: _Optional[_Union[Target, _Mapping]] = ..., keys: _Optional[_Iterable[bytes]] = ...) -> None: ...

class VerifyResponse(_message.Message):
    __slots__ = ("manifest", "reference", "signature")
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    manifest: Descriptor
    reference: str
    signature: Signature
    def __init__(self, manifest: _Optional[_Union[Descriptor, _Mapping]] = ..., reference: _Optional[str] = ..., signature: _Optional[_Union[Signature, _Mapping]] = ...) -> None: ...

class Signature(_message.Message):
    __slots__ = ("digest", "form", "key_fingerprint", "predicate_type")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    FORM_FIELD_NUMBER: _ClassVar[int]
    KEY_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    PREDICATE_TYPE_FIELD_NUMBER: _ClassVar[int]
    digest: str
    form: str
    key_fingerprint: str
    predicate_type: str
    def __init__(self, digest: _Optional[str] = ..., form: _Optional[str] = ..., key_fingerprint: _Optional[str] = ..., predicate_type: _Optional[str] = ...) -> None: ...

class Verification(_message.Message):
    __slots__ = ("verified", "signature", "reason", "code")
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    verified: bool
    signature: Signature
    reason: str
    code: str
    def __init__(self, verified: _Optional[bool] = ..., signature: _Optional[_Union[Signature, _Mapping]] = ..., reason: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class ResolveRequest(_message.Message):
    __slots__ = ("target",)
    TARGET_FIELD_NUMBER: _ClassVar[int]
    target: Target
    def __init__(self, target: _Optional[_Union[Target, _Mapping]] = ...) -> None: ...

class ResolveResponse(_message.Message):
    __slots__ = ("manifest", "reference")
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    manifest: Descriptor
    reference: str
    def __init__(self, manifest: _Optional[_Union[Descriptor, _Mapping]] = ..., reference: _Optional[str] = ...) -> None: ...

class DeleteManifestRequest(_message.Message):
    __slots__ = ("target",)
    TARGET_FIELD_NUMBER: _ClassVar[int]
    target: Target
    def __init__(self, target: _Optional[_Union[Target, _Mapping]] = ...) -> None: ...

class DeleteManifestResponse(_message.Message):
    __slots__ = ("deleted", "reference", "warnings")
    DELETED_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    deleted: Descriptor
    reference: str
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, deleted: _Optional[_Union[Descriptor, _Mapping]] = ..., reference: _Optional[str] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class FetchManifestRequest(_message.Message):
    __slots__ = ("target",)
    TARGET_FIELD_NUMBER: _ClassVar[int]
    target: Target
    def __init__(self, target: _Optional[_Union[Target, _Mapping]] = ...) -> None: ...

class FetchManifestResponse(_message.Message):
    __slots__ = ("manifest", "reference", "content")
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    manifest: Descriptor
    reference: str
    content: bytes
    def __init__(self, manifest: _Optional[_Union[Descriptor, _Mapping]] = ..., reference: _Optional[str] = ..., content: _Optional[bytes] = ...) -> None: ...

class ListTagsRequest(_message.Message):
    __slots__ = ("repository", "exclude_digest_tags", "last", "same_manifest")
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_DIGEST_TAGS_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    SAME_MANIFEST_FIELD_NUMBER: _ClassVar[int]
    repository: Target
    exclude_digest_tags: bool
    last: str
    same_manifest: bool
    def __init__(self, repository: _Optional[_Union[Target, _Mapping]] = ..., exclude_digest_tags: _Optional[bool] = ..., last: _Optional[str] = ..., same_manifest: _Optional[bool] = ...) -> None: ...

class ListTagsResponse(_message.Message):
    __slots__ = ("tags",)
    TAGS_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tags: _Optional[_Iterable[str]] = ...) -> None: ...

class PushManifestRequest(_message.Message):
    __slots__ = ("target", "content", "media_type", "extra_tags")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    EXTRA_TAGS_FIELD_NUMBER: _ClassVar[int]
    target: Target
    content: bytes
    media_type: str
    extra_tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, target: _Optional[_Union[Target, _Mapping]] = ..., content: _Optional[bytes] = ..., media_type: _Optional[str] = ..., extra_tags: _Optional[_Iterable[str]] = ...) -> None: ...

class PushManifestResponse(_message.Message):
    __slots__ = ("manifest", "reference", "tags", "existed")
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    EXISTED_FIELD_NUMBER: _ClassVar[int]
    manifest: Descriptor
    reference: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    existed: bool
    def __init__(self, manifest: _Optional[_Union[Descriptor, _Mapping]] = ..., reference: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., existed: _Optional[bool] = ...) -> None: ...

class FetchBlobRequest(_message.Message):
    __slots__ = ("target",)
    TARGET_FIELD_NUMBER: _ClassVar[int]
    target: Target
    def __init__(self, target: _Optional[_Union[Target, _Mapping]] = ...) -> None: ...

class FetchBlobResponse(_message.Message):
    __slots__ = ("blob", "data")
    BLOB_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    blob: Descriptor
    data: bytes
    def __init__(self, blob: _Optional[_Union[Descriptor, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class PushBlobRequest(_message.Message):
    __slots__ = ("target", "digest", "media_type")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    target: Target
    digest: str
    media_type: str
    def __init__(self, target: _Optional[_Union[Target, _Mapping]] = ..., digest: _Optional[str] = ..., media_type: _Optional[str] = ...) -> None: ...

class PushBlobResponse(_message.Message):
    __slots__ = ("blob", "reference", "existed")
    BLOB_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    EXISTED_FIELD_NUMBER: _ClassVar[int]
    blob: Descriptor
    reference: str
    existed: bool
    def __init__(self, blob: _Optional[_Union[Descriptor, _Mapping]] = ..., reference: _Optional[str] = ..., existed: _Optional[bool] = ...) -> None: ...

class DeleteBlobRequest(_message.Message):
    __slots__ = ("target",)
    TARGET_FIELD_NUMBER: _ClassVar[int]
    target: Target
    def __init__(self, target: _Optional[_Union[Target, _Mapping]] = ...) -> None: ...

class DeleteBlobResponse(_message.Message):
    __slots__ = ("reference",)
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    reference: str
    def __init__(self, reference: _Optional[str] = ...) -> None: ...

class CopyRequest(_message.Message):
    __slots__ = ("source", "destination", "recursive", "extra_tags")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    RECURSIVE_FIELD_NUMBER: _ClassVar[int]
    EXTRA_TAGS_FIELD_NUMBER: _ClassVar[int]
    source: Target
    destination: Target
    recursive: bool
    extra_tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, source: _Optional[_Union[Target, _Mapping]] = ..., destination: _Optional[_Union[Target, _Mapping]] = ..., recursive: _Optional[bool] = ..., extra_tags: _Optional[_Iterable[str]] = ...) -> None: ...

class CopyEvent(_message.Message):
    __slots__ = ("kind", "content")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[CopyEvent.Kind]
        KIND_COPYING: _ClassVar[CopyEvent.Kind]
        KIND_COPIED: _ClassVar[CopyEvent.Kind]
        KIND_EXISTS: _ClassVar[CopyEvent.Kind]
        KIND_MOUNTED: _ClassVar[CopyEvent.Kind]
    KIND_UNSPECIFIED: CopyEvent.Kind
    KIND_COPYING: CopyEvent.Kind
    KIND_COPIED: CopyEvent.Kind
    KIND_EXISTS: CopyEvent.Kind
    KIND_MOUNTED: CopyEvent.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    kind: CopyEvent.Kind
    content: Descriptor
    def __init__(self, kind: _Optional[_Union[CopyEvent.Kind, str]] = ..., content: _Optional[_Union[Descriptor, _Mapping]] = ...) -> None: ...

class CopyResult(_message.Message):
    __slots__ = ("manifest", "reference", "tags", "referrers")
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    REFERRERS_FIELD_NUMBER: _ClassVar[int]
    manifest: Descriptor
    reference: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    referrers: int
    def __init__(self, manifest: _Optional[_Union[Descriptor, _Mapping]] = ..., reference: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., referrers: _Optional[int] = ...) -> None: ...

class CopyResponse(_message.Message):
    __slots__ = ("event", "result")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    event: CopyEvent
    result: CopyResult
    def __init__(self, event: _Optional[_Union[CopyEvent, _Mapping]] = ..., result: _Optional[_Union[CopyResult, _Mapping]] = ...) -> None: ...

class ListRepositoriesRequest(_message.Message):
    __slots__ = ("registry", "plain_http")
    REGISTRY_FIELD_NUMBER: _ClassVar[int]
    PLAIN_HTTP_FIELD_NUMBER: _ClassVar[int]
    registry: str
    plain_http: bool
    def __init__(self, registry: _Optional[str] = ..., plain_http: _Optional[bool] = ...) -> None: ...

class ListRepositoriesResponse(_message.Message):
    __slots__ = ("repositories",)
    REPOSITORIES_FIELD_NUMBER: _ClassVar[int]
    repositories: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, repositories: _Optional[_Iterable[str]] = ...) -> None: ...

class TagRequest(_message.Message):
    __slots__ = ("target", "tags")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    target: Target
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, target: _Optional[_Union[Target, _Mapping]] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class TagResponse(_message.Message):
    __slots__ = ("manifest", "reference", "tags")
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    manifest: Descriptor
    reference: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, manifest: _Optional[_Union[Descriptor, _Mapping]] = ..., reference: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class LoginRequest(_message.Message):
    __slots__ = ("registry", "username", "password", "plain_http")
    REGISTRY_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    PLAIN_HTTP_FIELD_NUMBER: _ClassVar[int]
    registry: str
    username: str
    password: str
    plain_http: bool
    def __init__(self, registry: _Optional[str] = ..., username: _Optional[str] = ..., password: _Optional[str] = ..., plain_http: _Optional[bool] = ...) -> None: ...

class LoginResponse(_message.Message):
    __slots__ = ("registry", "username", "stored_in")
    REGISTRY_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    STORED_IN_FIELD_NUMBER: _ClassVar[int]
    registry: str
    username: str
    stored_in: str
    def __init__(self, registry: _Optional[str] = ..., username: _Optional[str] = ..., stored_in: _Optional[str] = ...) -> None: ...

class LogoutRequest(_message.Message):
    __slots__ = ("registry",)
    REGISTRY_FIELD_NUMBER: _ClassVar[int]
    registry: str
    def __init__(self, registry: _Optional[str] = ...) -> None: ...

class LogoutResponse(_message.Message):
    __slots__ = ("removed",)
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    removed: bool
    def __init__(self, removed: _Optional[bool] = ...) -> None: ...

class ListCredentialsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StoredCredential(_message.Message):
    __slots__ = ("registry", "username", "source")
    REGISTRY_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    registry: str
    username: str
    source: str
    def __init__(self, registry: _Optional[str] = ..., username: _Optional[str] = ..., source: _Optional[str] = ...) -> None: ...

class ListCredentialsResponse(_message.Message):
    __slots__ = ("credentials",)
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    credentials: _containers.RepeatedCompositeFieldContainer[StoredCredential]
    def __init__(self, credentials: _Optional[_Iterable[_Union[StoredCredential, _Mapping]]] = ...) -> None: ...

class UploadBlobRequest(_message.Message):
    __slots__ = ("ref", "offset", "data", "commit", "expected_digest", "expected_size")
    REF_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_DIGEST_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SIZE_FIELD_NUMBER: _ClassVar[int]
    ref: str
    offset: int
    data: bytes
    commit: bool
    expected_digest: str
    expected_size: int
    def __init__(self, ref: _Optional[str] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., commit: _Optional[bool] = ..., expected_digest: _Optional[str] = ..., expected_size: _Optional[int] = ...) -> None: ...

class UploadBlobResponse(_message.Message):
    __slots__ = ("ref", "offset", "digest", "committed")
    REF_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_FIELD_NUMBER: _ClassVar[int]
    ref: str
    offset: int
    digest: str
    committed: bool
    def __init__(self, ref: _Optional[str] = ..., offset: _Optional[int] = ..., digest: _Optional[str] = ..., committed: _Optional[bool] = ...) -> None: ...

class UploadStatusRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class UploadStatusResponse(_message.Message):
    __slots__ = ("offset", "exists")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    offset: int
    exists: bool
    def __init__(self, offset: _Optional[int] = ..., exists: _Optional[bool] = ...) -> None: ...

class DownloadBlobRequest(_message.Message):
    __slots__ = ("digest", "size", "source", "offset", "length")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    digest: str
    size: int
    source: Target
    offset: int
    length: int
    def __init__(self, digest: _Optional[str] = ..., size: _Optional[int] = ..., source: _Optional[_Union[Target, _Mapping]] = ..., offset: _Optional[int] = ..., length: _Optional[int] = ...) -> None: ...

class DownloadBlobResponse(_message.Message):
    __slots__ = ("data", "offset")
    DATA_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    offset: int
    def __init__(self, data: _Optional[bytes] = ..., offset: _Optional[int] = ...) -> None: ...

class ServerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ServerInfoResponse(_message.Message):
    __slots__ = ("version", "max_chunk_bytes", "max_message_bytes", "hash_first_below", "content_store")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MAX_CHUNK_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    HASH_FIRST_BELOW_FIELD_NUMBER: _ClassVar[int]
    CONTENT_STORE_FIELD_NUMBER: _ClassVar[int]
    version: str
    max_chunk_bytes: int
    max_message_bytes: int
    hash_first_below: int
    content_store: bool
    def __init__(self, version: _Optional[str] = ..., max_chunk_bytes: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., hash_first_below: _Optional[int] = ..., content_store: _Optional[bool] = ...) -> None: ...

//! The `satchel.v1.SatchelService` service: parse the request, call the OCI layer,
//! map the error once. Conversions between proto and OCI types live at the
//! bottom of this file.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use satchel_oci::artifact::{select_newest, Pack};
use satchel_oci::auth::{Credential, Secret};
use satchel_oci::content::ContentStore;
use satchel_oci::digest::{self, Digest, Verifier};
use satchel_oci::locks::KeyedLocks;
use satchel_oci::manifest::{
    self, Descriptor, ImageManifest, Manifest, ANNOTATION_TITLE, ARTIFACT_TYPE_UNKNOWN,
    MEDIA_TYPE_EMPTY, MEDIA_TYPE_LAYER_TAR, MEDIA_TYPE_MANIFEST,
};
use satchel_oci::registry::{ReferrersMode, RegistryClient, Repository};
use satchel_oci::target::Expected;
use satchel_oci::ErrorKind;
use satchel_oci::{Reference, Target};
use satchel_proto::v1 as pb;
use satchel_proto::MAX_CHUNK;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::credentials::DockerCredentials;
use crate::framing::{next_chunk, rechunk, send_file};
use crate::status::{invalid, refuse, status};
use crate::task_stream;

/// How many blobs one pull moves at once unless configured.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// The largest inline config a Push may carry.
const MAX_CONFIG_BYTES: usize = 4 << 20;
/// How many chunks may wait between the caller's stream and an upload.
const UPLOAD_QUEUE: usize = 4;

/// The service state shared by every call; cheap to clone (all `Arc`s),
/// so streaming calls can take it into their tasks.
#[derive(Clone)]
pub struct Api {
    /// The registry client: connection pool, credentials, tokens.
    registry: Arc<RegistryClient>,
    /// The credential store Login, Logout and ListCredentials manage; the
    /// registry client reads the same one.
    credentials: Arc<DockerCredentials>,
    /// Serialises index.json updates of OCI layouts.
    layout_locks: Arc<KeyedLocks>,
    /// Blobs pulled from registries, kept for the next pull; `None` when
    /// the daemon runs without a cache.
    cache: Option<Arc<ContentStore>>,
    /// How many blobs one pull moves at once.
    concurrency: usize,
    /// What ServerInfo tells clients to hash before pushing.
    hash_first_below: u64,
}

impl Api {
    /// A service that reaches registries through `registry`, whose
    /// credentials come from `credentials`.
    pub fn new(
        registry: Arc<RegistryClient>,
        credentials: Arc<DockerCredentials>,
        cache: Option<Arc<ContentStore>>,
    ) -> Self {
        Api {
            registry,
            credentials,
            cache,
            concurrency: DEFAULT_CONCURRENCY,
            hash_first_below: satchel_oci::registry::MONOLITHIC_MAX,
            layout_locks: Arc::new(KeyedLocks::default()),
        }
    }

    /// Sets how many blobs one pull moves at once (at least 1).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// Sets the size below which ServerInfo tells clients to hash first.
    pub fn with_hash_first_below(mut self, size: u64) -> Self {
        self.hash_first_below = size;
        self
    }

    /// Turns a proto target into an OCI target and the tag or digest it
    /// names inside it (`None` when it names neither).
    fn target(&self, target: Option<pb::Target>) -> Result<Resolved, Status> {
        let t = target.ok_or_else(|| invalid("a target is required"))?;
        if t.oci_layout.is_empty() {
            let reference = Reference::parse(&t.reference).map_err(status)?;
            let mode = match pb::ReferrersMode::try_from(t.referrers_mode) {
                Ok(pb::ReferrersMode::Unspecified) => ReferrersMode::Auto,
                Ok(pb::ReferrersMode::Api) => ReferrersMode::Api,
                Ok(pb::ReferrersMode::Tag) => ReferrersMode::TagSchema,
                Err(_) => {
                    return Err(invalid(format!(
                        "unknown referrers mode {}",
                        t.referrers_mode
                    )))
                }
            };
            let repo = Repository::new(self.registry.clone(), &reference, t.plain_http)
                .with_referrers_mode(mode);
            let name = reference
                .digest()
                .map(|d| d.to_string())
                .or_else(|| reference.tag().map(str::to_string));
            return Ok(Resolved {
                target: Target::Registry(repo),
                name,
            });
        }
        let path = Path::new(&t.oci_layout);
        if !path.is_absolute() {
            return Err(invalid(format!(
                "oci_layout must be an absolute path, got {:?}",
                t.oci_layout
            )));
        }
        let name = match t.reference.trim_start_matches('@') {
            "" => None,
            r if r.contains(':') => Some(digest::parse(r).map_err(status)?.to_string()),
            r => {
                satchel_oci::reference::validate_tag(r).map_err(invalid)?;
                Some(r.to_string())
            }
        };
        // Who may name which layout is decided before any file is opened.
        let layout = crate::callers::open_layout(path, self.layout_locks.clone())?;
        Ok(Resolved {
            target: Target::Layout(layout),
            name,
        })
    }

    /// The shared body of Push and Attach.
    async fn push_artifact<S>(
        &self,
        resolved: Resolved,
        subject_ref: Option<String>,
        artifact: pb::ArtifactSpec,
        inbound: S,
        events: &mpsc::Sender<Result<pb::PushResponse, Status>>,
    ) -> Result<pb::PushResult, Status>
    where
        S: Stream<Item = Result<pb::FileChunk, Status>> + Unpin,
    {
        // Progress is advisory: when the caller reads slowly, events drop.
        let progress = |name: &str, done: u64, total: Option<u64>| {
            let _ = events.try_send(Ok(pb::PushResponse {
                event: Some(pb::push_response::Event::Progress(pb::Progress {
                    name: name.to_string(),
                    done,
                    total: total.unwrap_or(0),
                })),
            }));
        };
        let target = resolved.target;
        let subject = match &subject_ref {
            Some(r) => Some(target.resolve(r).await.map_err(status)?),
            None => None,
        };
        let files = validate_files(&artifact.files)?;
        // A chunk for a file the header does not declare is the caller's
        // mistake, not a short file.
        let declared = files.len();
        let mut inbound = inbound.map(move |chunk| match chunk {
            Ok(c) if c.file_index as usize >= declared => Err(invalid(format!(
                "a chunk for file {} of a push that declares {declared}",
                c.file_index
            ))),
            other => other,
        });
        let mut layers = Vec::with_capacity(files.len());
        let mut skipped = 0u32;
        let mut pending: Option<pb::FileChunk> = None;
        for (index, file) in files.iter().enumerate() {
            let index = index as u32;
            let known = file.known();
            let _guard = match &known {
                Some((d, _)) => target.lock_blob(d).await,
                None => None,
            };
            let already = match &known {
                Some((d, _)) => target.has_or_mounts(d).await.map_err(status)?,
                None => false,
            };
            let (digest, size) = if file.from_store {
                let (d, size) = known.clone().expect("checked in validate_files");
                if next_chunk(&mut inbound, &mut pending, index)
                    .await?
                    .is_some()
                {
                    return Err(invalid(format!(
                        "file {:?} comes from the content store; send no chunks for it",
                        file.name
                    )));
                }
                if already {
                    skipped += 1;
                } else {
                    let desc = Descriptor {
                        media_type: file.media_type.clone(),
                        digest: d.clone(),
                        size,
                        artifact_type: None,
                        annotations: Default::default(),
                    };
                    let body = self.store()?.get(&desc).await.ok_or_else(|| {
                        refuse(
                            ErrorKind::NotFound,
                            format!("{d} is not in the content store"),
                        )
                    })?;
                    target
                        .push_blob(Expected::exactly(&d, size), body)
                        .await
                        .map_err(status)?;
                }
                (d, size)
            } else if already {
                // The target has it; still read (and check) what the caller
                // sends, so the manifest never names bytes it did not get.
                let (d, size) = known.clone().expect("checked above");
                let mut verifier = Verifier::new(&d, Some(size)).map_err(status)?;
                while let Some(data) = next_chunk(&mut inbound, &mut pending, index).await? {
                    verifier.update(&data).map_err(status)?;
                }
                verifier.finish().map_err(status)?;
                skipped += 1;
                (d, size)
            } else {
                let (tx, rx) = mpsc::channel::<satchel_oci::Result<Bytes>>(UPLOAD_QUEUE);
                let upload = target.push_blob(
                    Expected {
                        digest: file.digest.as_ref(),
                        size: file.size,
                    },
                    ReceiverStream::new(rx).boxed(),
                );
                let (inbound_ref, pending_ref) = (&mut inbound, &mut pending);
                let progress = &progress;
                let (name, total) = (file.name.as_str(), file.size);
                let feed = async move {
                    // Dropping `tx` on return ends the upload's body.
                    let mut done = 0u64;
                    loop {
                        match next_chunk(inbound_ref, pending_ref, index).await {
                            Ok(Some(data)) => {
                                let len = data.len() as u64;
                                if tx.send(Ok(data)).await.is_err() {
                                    // The upload gave up; its error is the one to report.
                                    return Ok(());
                                }
                                done += len;
                                progress(name, done, total);
                            }
                            Ok(None) => return Ok(()),
                            Err(e) => {
                                let _ = tx
                                    .send(Err(satchel_oci::Error::new(
                                        satchel_oci::ErrorKind::InvalidArgument,
                                        "the caller's stream failed",
                                    )))
                                    .await;
                                return Err(e);
                            }
                        }
                    }
                };
                let (uploaded, fed) = tokio::join!(upload, feed);
                fed?;
                let stored = uploaded.map_err(status)?;
                // An upload of a declared size stops reading at that size;
                // bytes past it mean the caller's size was wrong.
                if next_chunk(&mut inbound, &mut pending, index)
                    .await?
                    .is_some()
                {
                    return Err(refuse(
                        ErrorKind::DataLoss,
                        format!("file {:?} has more bytes than its declared size", file.name),
                    ));
                }
                stored
            };
            progress(&file.name, size, Some(size));
            let mut annotations = file.annotations.clone();
            annotations.insert(ANNOTATION_TITLE.to_string(), file.name.clone());
            layers.push(Descriptor {
                media_type: file.media_type.clone(),
                digest,
                size,
                artifact_type: None,
                annotations,
            });
        }
        if let Some(extra) = pending.take().or(inbound.next().await.transpose()?) {
            return Err(invalid(format!(
                "a chunk for file {} arrived after its turn or for a file the header does not list",
                extra.file_index
            )));
        }
        let config = match artifact.config {
            Some(c) => {
                if c.data.len() > MAX_CONFIG_BYTES {
                    return Err(invalid("the config is larger than 4 MiB"));
                }
                let media_type = if c.media_type.is_empty() {
                    MEDIA_TYPE_EMPTY.to_string()
                } else {
                    c.media_type
                };
                target
                    .push_bytes(&media_type, c.data)
                    .await
                    .map_err(status)?
            }
            None => target
                .push_bytes(MEDIA_TYPE_EMPTY, Bytes::from_static(manifest::EMPTY_JSON))
                .await
                .map_err(status)?,
        };
        if layers.is_empty() {
            // The empty layer the manifest will carry must exist too.
            target
                .push_bytes(MEDIA_TYPE_EMPTY, Bytes::from_static(manifest::EMPTY_JSON))
                .await
                .map_err(status)?;
        }
        let artifact_type = if artifact.artifact_type.is_empty() {
            ARTIFACT_TYPE_UNKNOWN.to_string()
        } else {
            artifact.artifact_type
        };
        let manifest = Pack {
            artifact_type,
            config: Some(config),
            layers: layers.clone(),
            subject: subject.clone(),
            annotations: artifact.annotations.into_iter().collect(),
        }
        .manifest();
        let content = Bytes::from(manifest.to_bytes());
        let mut tags: Vec<String> = resolved.name.into_iter().collect();
        for tag in artifact.tags {
            satchel_oci::reference::validate_tag(&tag).map_err(invalid)?;
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        let pushed = target
            .push_manifest(
                tags.first().map(String::as_str),
                MEDIA_TYPE_MANIFEST,
                content.clone(),
            )
            .await
            .map_err(status)?;
        for tag in tags.iter().skip(1) {
            target
                .tag(&pushed.descriptor, content.clone(), tag)
                .await
                .map_err(status)?;
        }
        for warning in &pushed.warnings {
            tracing::warn!(%warning, "push finished with a warning");
        }
        let mut desc = pushed.descriptor;
        desc.artifact_type = manifest.artifact_type.clone();
        desc.annotations = manifest.annotations.clone();
        tracing::info!(
            reference = %target.reference_for(&desc.digest),
            files = layers.len(),
            skipped,
            "pushed artifact"
        );
        Ok(pb::PushResult {
            reference: target.reference_for(&desc.digest),
            manifest: Some(to_pb(&desc)),
            layers: layers.iter().map(to_pb).collect(),
            tags,
            blobs_skipped: skipped,
            subject: subject.as_ref().map(to_pb),
            warnings: pushed.warnings,
        })
    }
}

/// A target and the tag or digest named inside it.
struct Resolved {
    target: Target,
    name: Option<String>,
}

impl Resolved {
    /// The tag or digest to read, `latest` when none was named.
    fn name_or_latest(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| satchel_oci::reference::DEFAULT_TAG.to_string())
    }
}

/// A file of a Push, checked.
struct FileInfo {
    /// Take the bytes from the content store, not from chunks.
    from_store: bool,
    name: String,
    media_type: String,
    size: Option<u64>,
    digest: Option<Digest>,
    annotations: BTreeMap<String, String>,
}

impl FileInfo {
    fn known(&self) -> Option<(Digest, u64)> {
        match (&self.digest, self.size) {
            (Some(d), Some(s)) => Some((d.clone(), s)),
            _ => None,
        }
    }
}

fn validate_files(files: &[pb::FileSpec]) -> Result<Vec<FileInfo>, Status> {
    // All names, alone and against each other, before anything is uploaded.
    manifest::validate_titles(files.iter().map(|f| f.name.as_str())).map_err(status)?;
    files
        .iter()
        .map(|f| {
            let digest = match f.digest.as_str() {
                "" => None,
                d => Some(digest::parse(d).map_err(status)?),
            };
            if f.from_content_store && (digest.is_none() || f.size.is_none()) {
                return Err(invalid(format!(
                    "file {:?} comes from the content store: give its digest and size",
                    f.name
                )));
            }
            if digest.is_some() && f.size.is_none() {
                return Err(invalid(format!(
                    "file {:?} has a digest but no size",
                    f.name
                )));
            }
            Ok(FileInfo {
                from_store: f.from_content_store,
                name: f.name.clone(),
                media_type: if f.media_type.is_empty() {
                    MEDIA_TYPE_LAYER_TAR.to_string()
                } else {
                    f.media_type.clone()
                },
                size: f.size,
                digest,
                annotations: f.annotations.clone().into_iter().collect(),
            })
        })
        .collect()
}

type PullStream = Pin<Box<dyn Stream<Item = Result<pb::PullResponse, Status>> + Send>>;
type PushEvents = Pin<Box<dyn Stream<Item = Result<pb::PushResponse, Status>> + Send>>;
type AttachEvents = Pin<Box<dyn Stream<Item = Result<pb::AttachResponse, Status>> + Send>>;

impl Api {
    /// Runs a push in its own task, answering with progress events and
    /// then the result (or the error).
    fn run_push(
        self,
        resolved: Resolved,
        subject_ref: Option<String>,
        artifact: pb::ArtifactSpec,
        chunks: Pin<Box<dyn Stream<Item = Result<pb::FileChunk, Status>> + Send>>,
    ) -> PushEvents {
        Box::pin(task_stream::spawn(16, |tx| async move {
            let result = self
                .push_artifact(resolved, subject_ref, artifact, chunks, &tx)
                .await
                .map(|r| pb::PushResponse {
                    event: Some(pb::push_response::Event::Result(r)),
                });
            let _ = tx.send(result).await;
        }))
    }
}

#[tonic::async_trait]
impl pb::satchel_service_server::SatchelService for Api {
    type PushStream = PushEvents;

    async fn push(
        &self,
        request: Request<Streaming<pb::PushRequest>>,
    ) -> Result<Response<Self::PushStream>, Status> {
        let mut inbound = request.into_inner();
        let header = match inbound.next().await {
            Some(Ok(pb::PushRequest {
                payload: Some(pb::push_request::Payload::Header(h)),
            })) => h,
            Some(Err(e)) => return Err(e),
            _ => return Err(invalid("the first Push message must be a header")),
        };
        let resolved = self.target(header.target)?;
        if resolved.name.as_deref().is_some_and(|n| n.contains(':')) {
            return Err(invalid("push to a tag, not a digest"));
        }
        let resolved = Resolved {
            name: Some(resolved.name_or_latest()),
            ..resolved
        };
        let chunks = inbound.map(|m| match m?.payload {
            Some(pb::push_request::Payload::Chunk(c)) => Ok(c),
            _ => Err(invalid("only chunks may follow the Push header")),
        });
        let artifact = header.artifact.unwrap_or_default();
        Ok(Response::new(self.clone().run_push(
            resolved,
            None,
            artifact,
            Box::pin(chunks),
        )))
    }

    type AttachStream = AttachEvents;

    async fn attach(
        &self,
        request: Request<Streaming<pb::AttachRequest>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        let mut inbound = request.into_inner();
        let header = match inbound.next().await {
            Some(Ok(pb::AttachRequest {
                payload: Some(pb::attach_request::Payload::Header(h)),
            })) => h,
            Some(Err(e)) => return Err(e),
            _ => return Err(invalid("the first Attach message must be a header")),
        };
        let artifact = header.artifact.unwrap_or_default();
        if artifact.artifact_type.is_empty() {
            return Err(invalid("attach needs an artifact type"));
        }
        let resolved = self.target(header.subject)?;
        let subject_ref = resolved.name_or_latest();
        // The attachment itself is pushed by digest; only explicit tags apply.
        let resolved = Resolved {
            name: None,
            ..resolved
        };
        let chunks = inbound.map(|m| match m?.payload {
            Some(pb::attach_request::Payload::Chunk(c)) => Ok(c),
            _ => Err(invalid("only chunks may follow the Attach header")),
        });
        let events = self
            .clone()
            .run_push(resolved, Some(subject_ref), artifact, Box::pin(chunks))
            .map(|event| event.map(pb::AttachResponse::from));
        Ok(Response::new(Box::pin(events)))
    }

    async fn discover(
        &self,
        request: Request<pb::DiscoverRequest>,
    ) -> Result<Response<pb::DiscoverResponse>, Status> {
        let req = request.into_inner();
        let resolved = self.target(req.subject)?;
        let subject = resolved
            .target
            .resolve(&resolved.name_or_latest())
            .await
            .map_err(status)?;
        let filter = (!req.artifact_type.is_empty()).then_some(req.artifact_type.as_str());
        let depth = req.depth.clamp(1, MAX_DEPTH);
        let referrers = referrer_tree(&resolved.target, &subject.digest, filter, depth).await?;
        Ok(Response::new(pb::DiscoverResponse {
            reference: resolved.target.reference_for(&subject.digest),
            subject: Some(to_pb(&subject)),
            referrers,
        }))
    }

    type PullStream = PullStream;

    async fn pull(
        &self,
        request: Request<pb::PullRequest>,
    ) -> Result<Response<Self::PullStream>, Status> {
        let req = request.into_inner();
        let (target, reference) = match (req.target, req.subject) {
            (Some(_), Some(_)) => {
                return Err(invalid("give a target or a subject to pull, not both"));
            }
            (target, None) => {
                let resolved = self.target(target)?;
                let name = resolved.name_or_latest();
                (resolved.target, name)
            }
            (None, Some(subject)) => {
                if req.artifact_type.is_empty() {
                    return Err(invalid("pulling by subject needs an artifact type"));
                }
                let resolved = self.target(Some(subject))?;
                let subject = resolved
                    .target
                    .resolve(&resolved.name_or_latest())
                    .await
                    .map_err(status)?;
                let candidates = resolved
                    .target
                    .referrers(&subject.digest, Some(&req.artifact_type))
                    .await
                    .map_err(status)?;
                let what = format!(
                    "{} attachment of {}",
                    req.artifact_type,
                    resolved.target.reference_for(&subject.digest)
                );
                let chosen = select_newest(&candidates, &what).map_err(status)?;
                let digest = chosen.digest.to_string();
                (resolved.target, digest)
            }
        };
        let (desc, content) = target.fetch_manifest(&reference).await.map_err(status)?;
        let manifest = match Manifest::parse(&desc.media_type, &content).map_err(status)? {
            Manifest::Image(m) => m,
            Manifest::Index(_) => {
                return Err(refuse(
                    ErrorKind::FailedPrecondition,
                    format!(
                        "{} is an index; pull one of its manifests by digest",
                        target.reference_for(&desc.digest)
                    ),
                ))
            }
        };
        let files = files_to_pull(&manifest)?;
        let cache = match &target {
            Target::Registry(_) => self.cache.clone(),
            Target::Layout(_) => None,
        };
        if let Some(cache) = &cache {
            prefetch(cache, &target, &files, self.concurrency);
        }
        let answer = task_stream::spawn(4, |tx| async move {
            let first = pb::PullResponse {
                payload: Some(pb::pull_response::Payload::Manifest(pb::PulledManifest {
                    reference: target.reference_for(&desc.digest),
                    manifest: Some(to_pb(&desc)),
                    content,
                })),
            };
            if tx.send(Ok(first)).await.is_err() {
                return;
            }
            for (name, layer) in files {
                if let Err(e) = send_file(&target, cache.as_ref(), &name, &layer, &tx).await {
                    tracing::warn!(file = %name, error = %e.message(), "pull failed");
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(answer)))
    }

    async fn resolve(
        &self,
        request: Request<pb::ResolveRequest>,
    ) -> Result<Response<pb::ResolveResponse>, Status> {
        let resolved = self.target(request.into_inner().target)?;
        let desc = resolved
            .target
            .resolve(&resolved.name_or_latest())
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ResolveResponse {
            reference: resolved.target.reference_for(&desc.digest),
            manifest: Some(to_pb(&desc)),
        }))
    }

    async fn delete_manifest(
        &self,
        request: Request<pb::DeleteManifestRequest>,
    ) -> Result<Response<pb::DeleteManifestResponse>, Status> {
        let resolved = self.target(request.into_inner().target)?;
        let Some(name) = resolved.name.as_deref() else {
            return Err(invalid("name the manifest to delete by digest or tag"));
        };
        let deleted = resolved
            .target
            .delete_manifest(name)
            .await
            .map_err(status)?;
        let reference = resolved.target.reference_for(&deleted.descriptor.digest);
        for warning in &deleted.warnings {
            tracing::warn!(%warning, "delete finished with a warning");
        }
        tracing::info!(%reference, "deleted manifest");
        Ok(Response::new(pb::DeleteManifestResponse {
            deleted: Some(to_pb(&deleted.descriptor)),
            reference,
            warnings: deleted.warnings,
        }))
    }

    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        let req = request.into_inner();
        let registry = registry_name(&req.registry)?;
        if req.password.is_empty() {
            return Err(invalid("a password or identity token is required"));
        }
        let credential = if req.username.is_empty() {
            Credential::IdentityToken(Secret::new(req.password))
        } else {
            Credential::Basic {
                username: req.username,
                password: Secret::new(req.password),
            }
        };
        self.registry
            .verify_credentials(&registry, req.plain_http, &credential)
            .await
            .map_err(status)?;
        let stored_in = self
            .credentials
            .store(&registry, &credential)
            .await
            .map_err(status)?;
        tracing::info!(%registry, username = credential.username(), %stored_in, "login succeeded");
        Ok(Response::new(pb::LoginResponse {
            registry,
            username: credential.username().to_string(),
            stored_in,
        }))
    }

    async fn logout(
        &self,
        request: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        let registry = registry_name(&request.into_inner().registry)?;
        let removed = self.credentials.erase(&registry).await.map_err(status)?;
        self.registry.forget_tokens(&registry);
        tracing::info!(%registry, removed, "logout");
        Ok(Response::new(pb::LogoutResponse { removed }))
    }

    type UploadBlobStream =
        Pin<Box<dyn Stream<Item = Result<pb::UploadBlobResponse, Status>> + Send>>;

    async fn upload_blob(
        &self,
        request: Request<Streaming<pb::UploadBlobRequest>>,
    ) -> Result<Response<Self::UploadBlobStream>, Status> {
        let store = self.store()?.clone();
        let mut inbound = request.into_inner();
        let answer = task_stream::spawn(16, |tx| async move {
            let result = receive_upload(&store, &mut inbound, &tx).await;
            if let Err(e) = result {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(Response::new(Box::pin(answer)))
    }

    async fn upload_status(
        &self,
        request: Request<pb::UploadStatusRequest>,
    ) -> Result<Response<pb::UploadStatusResponse>, Status> {
        let store = self.store()?;
        let offset = store.upload_offset(&request.into_inner().r#ref).await;
        Ok(Response::new(pb::UploadStatusResponse {
            offset: offset.unwrap_or(0),
            exists: offset.is_some(),
        }))
    }

    type DownloadBlobStream =
        Pin<Box<dyn Stream<Item = Result<pb::DownloadBlobResponse, Status>> + Send>>;

    async fn download_blob(
        &self,
        request: Request<pb::DownloadBlobRequest>,
    ) -> Result<Response<Self::DownloadBlobStream>, Status> {
        let store = self.store()?.clone();
        let req = request.into_inner();
        let digest = digest::parse(&req.digest).map_err(status)?;
        let mut desc = Descriptor {
            media_type: "application/octet-stream".into(),
            digest,
            size: req.size,
            artifact_type: None,
            annotations: Default::default(),
        };
        if desc.size == 0 {
            desc.size = store.size_of(&desc.digest).unwrap_or(0);
        }
        let body = match store.read_range(&desc, req.offset, req.length).await {
            Some(body) => body,
            None => {
                let Some(source) = req.source else {
                    return Err(refuse(
                        ErrorKind::NotFound,
                        format!(
                            "{} is not in the content store; name a source to fetch it from",
                            desc.digest
                        ),
                    ));
                };
                if req.size == 0 {
                    return Err(invalid("give the blob's size with a source"));
                }
                let target = self.target(Some(source))?.target;
                // Fetch the whole blob through the store, then serve the range.
                let mut whole = store
                    .fetch_through(&desc, target.fetch_blob(&desc))
                    .await
                    .map_err(status)?;
                while let Some(chunk) = whole.next().await {
                    chunk.map_err(status)?;
                }
                store
                    .read_range(&desc, req.offset, req.length)
                    .await
                    .ok_or_else(|| {
                        refuse(
                            ErrorKind::Unavailable,
                            "the blob left the content store at once; retry",
                        )
                    })?
            }
        };
        let mut offset = req.offset;
        let stream = rechunk(body).map(move |r| {
            r.map(|data| {
                let at = offset;
                offset += data.len() as u64;
                pb::DownloadBlobResponse { data, offset: at }
            })
            .map_err(status)
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn server_info(
        &self,
        _request: Request<pb::ServerInfoRequest>,
    ) -> Result<Response<pb::ServerInfoResponse>, Status> {
        Ok(Response::new(pb::ServerInfoResponse {
            version: env!("CARGO_PKG_VERSION").to_string(),
            max_chunk_bytes: MAX_CHUNK as u32,
            max_message_bytes: satchel_proto::MAX_MESSAGE as u32,
            hash_first_below: self.hash_first_below,
            content_store: self.cache.is_some(),
        }))
    }

    async fn list_credentials(
        &self,
        _request: Request<pb::ListCredentialsRequest>,
    ) -> Result<Response<pb::ListCredentialsResponse>, Status> {
        let listed = self.credentials.list().await.map_err(status)?;
        Ok(Response::new(pb::ListCredentialsResponse {
            credentials: listed
                .into_iter()
                .map(|l| pb::StoredCredential {
                    registry: l.registry,
                    username: l.username,
                    source: l.source,
                })
                .collect(),
        }))
    }
}

impl Api {
    /// The content store, which the blob calls need.
    fn store(&self) -> Result<&Arc<ContentStore>, Status> {
        self.cache.as_ref().ok_or_else(|| {
            refuse(
                ErrorKind::FailedPrecondition,
                "satcheld runs without a content store (--no-cache)",
            )
        })
    }
}

/// Writes an UploadBlob call's messages into the store, acknowledging each
/// with the offset written up to; commits when asked.
async fn receive_upload(
    store: &ContentStore,
    inbound: &mut Streaming<pb::UploadBlobRequest>,
    acks: &mpsc::Sender<Result<pb::UploadBlobResponse, Status>>,
) -> Result<(), Status> {
    let first = inbound
        .next()
        .await
        .ok_or_else(|| invalid("an upload needs at least one message"))??;
    let reference = first.r#ref.clone();
    let mut upload = store.open_upload(&reference).await.map_err(status)?;
    let mut message = Some(first);
    while let Some(m) = message.take() {
        if m.r#ref != reference && !m.r#ref.is_empty() {
            return Err(invalid("every message of an upload names the same ref"));
        }
        if m.data.len() > MAX_CHUNK {
            return Err(invalid("a chunk is larger than 1 MiB"));
        }
        if !m.data.is_empty() || m.offset != upload.offset() {
            upload.write(m.offset, &m.data).await.map_err(status)?;
        }
        if m.commit {
            let expected = match m.expected_digest.as_str() {
                "" => None,
                d => Some(digest::parse(d).map_err(status)?),
            };
            let (digest, size) = store
                .commit_upload(upload, expected.as_ref(), m.expected_size)
                .await
                .map_err(status)?;
            tracing::info!(%reference, %digest, size, "upload committed");
            let _ = acks
                .send(Ok(pb::UploadBlobResponse {
                    r#ref: reference,
                    offset: size,
                    digest: digest.to_string(),
                    committed: true,
                }))
                .await;
            return Ok(());
        }
        let ack = pb::UploadBlobResponse {
            r#ref: reference.clone(),
            offset: upload.offset(),
            digest: String::new(),
            committed: false,
        };
        if acks.send(Ok(ack)).await.is_err() {
            return Ok(()); // the caller went away; the upload stays for resuming
        }
        message = inbound.next().await.transpose()?;
    }
    Ok(())
}

/// Normalises a registry name given to Login or Logout (`https://host/`
/// and `index.docker.io` forms included) and checks it is one.
fn registry_name(input: &str) -> Result<String, Status> {
    let name = satchel_oci::auth::registry_of_key(input.trim());
    let parsed = Reference::parse(&format!("{name}/probe")).map_err(status)?;
    if parsed.registry() != name {
        return Err(invalid(format!(
            "{input:?} is not a registry host (use host[:port])"
        )));
    }
    Ok(name)
}

/// The deepest discover a caller may ask for.
const MAX_DEPTH: u32 = 16;
/// How many referrer listings one discover fetches at once.
const DISCOVER_CONCURRENCY: usize = 8;

/// The referrers of `root`, `depth` levels deep. `filter` applies to the
/// first level only; a visited set stops cycles and repeats.
async fn referrer_tree(
    target: &Target,
    root: &Digest,
    filter: Option<&str>,
    depth: u32,
) -> Result<Vec<pb::Referrer>, Status> {
    let visited = std::sync::Mutex::new(HashSet::from([root.clone()]));
    let first = target.referrers(root, filter).await.map_err(status)?;
    children(target, first, depth - 1, &visited).await
}

/// Turns `list` into nodes, fetching `depth` more levels below each,
/// skipping manifests already seen.
fn children<'a>(
    target: &'a Target,
    list: Vec<Descriptor>,
    depth: u32,
    visited: &'a std::sync::Mutex<HashSet<Digest>>,
) -> futures::future::BoxFuture<'a, Result<Vec<pb::Referrer>, Status>> {
    Box::pin(async move {
        let fresh: Vec<Descriptor> = {
            let mut seen = visited.lock().expect("visited set");
            list.into_iter()
                .filter(|d| seen.insert(d.digest.clone()))
                .collect()
        };
        futures::stream::iter(fresh)
            .map(|d| async move {
                let below = if depth == 0 {
                    Vec::new()
                } else {
                    let list = target.referrers(&d.digest, None).await.map_err(status)?;
                    children(target, list, depth - 1, visited).await?
                };
                Ok::<_, Status>(pb::Referrer {
                    manifest: Some(to_pb(&d)),
                    referrers: below,
                })
            })
            .buffered(DISCOVER_CONCURRENCY)
            .try_collect()
            .await
    })
}

/// The layers a pull writes, by title; refuses unsafe names, two layers
/// with one name and a name that is a directory of another, before a single
/// byte is sent.
fn files_to_pull(manifest: &ImageManifest) -> Result<Vec<(String, Descriptor)>, Status> {
    let out: Vec<(String, Descriptor)> = manifest
        .layers
        .iter()
        .filter_map(|layer| Some((layer.title()?.to_string(), layer.clone())))
        .collect();
    manifest::validate_titles(out.iter().map(|(t, _)| t.as_str())).map_err(status)?;
    Ok(out)
}

/// Files go to the caller one after another, but the blobs after the first
/// can already be coming: up to `concurrency - 1` of them are fetched into
/// the content store while the first streams. A pull that reaches them
/// then reads the store (or waits for the fetch under way).
fn prefetch(
    cache: &Arc<ContentStore>,
    target: &Target,
    files: &[(String, Descriptor)],
    concurrency: usize,
) {
    if concurrency < 2 {
        return;
    }
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency - 1));
    for (_, layer) in files.iter().skip(1) {
        let (cache, target, layer, slots) =
            (cache.clone(), target.clone(), layer.clone(), slots.clone());
        tokio::spawn(async move {
            let Ok(_slot) = slots.acquire_owned().await else {
                return;
            };
            // Errors are left for the pull itself to meet and report.
            if let Ok(mut body) = cache.fetch_through(&layer, target.fetch_blob(&layer)).await {
                while let Some(Ok(_)) = body.next().await {}
            }
        });
    }
}

/// A descriptor in proto form.
pub fn to_pb(d: &Descriptor) -> pb::Descriptor {
    pb::Descriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.to_string(),
        size: d.size,
        artifact_type: d.artifact_type.clone().unwrap_or_default(),
        annotations: d
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

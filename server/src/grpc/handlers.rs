//! The `satchel.v1.SatchelService` handlers: each decodes its request
//! ([`super::convert`]), calls one function of the service core
//! ([`crate::service`]), encodes the answer, and maps an error through
//! [`super::status::status`]. Streamed answers come from a task of their
//! own ([`crate::task_stream`]) that stops when the caller goes away.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use satchel_proto::v1 as pb;
use satchel_proto::v1::push_response::Event;
use satchel_proto::{MAX_CHUNK, MAX_MESSAGE};
use tonic::{Request, Response, Status, Streaming};

use super::convert::{self, descriptor};
use super::framing::{
    attach_part, header_and_chunks, push_part, push_progress, rechunk, send_pull, upload_parts,
};
use super::status::status;
use crate::callers;
use crate::handoff::Handoff;
use crate::service::copy::CopyJob;
use crate::service::push::PushJob;
use crate::service::tags::TagFilter;
use crate::service::watch::Watcher;
use crate::service::Service;
use crate::task_stream;

/// The gRPC face of the [`Service`].
#[derive(Clone)]
pub struct Api {
    service: Service,
    /// The local file handoff, when the daemon listens on a Unix socket.
    handoff: Option<Arc<Handoff>>,
    /// Turns true when the daemon begins to stop: the streams that would
    /// never end by themselves (WatchReferrers) end then, so the server's
    /// graceful shutdown is not held up by them.
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl Api {
    /// Serves `service`, with the local file handoff if given, until
    /// `stopping` turns true.
    pub fn new(
        service: Service,
        handoff: Option<Arc<Handoff>>,
        stopping: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        Api {
            service,
            handoff,
            stopping,
        }
    }
}

type Answer<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

impl Api {
    /// Runs a push job in its own task: progress events as the bytes
    /// arrive, then the result or the error.
    fn run_push<S, R>(&self, job: PushJob, chunks: S, wrap: fn(Event) -> R) -> Answer<R>
    where
        S: Stream<Item = satchel_oci::Result<(u32, bytes::Bytes)>> + Send + Unpin + 'static,
        R: Send + 'static,
    {
        let service = self.service.clone();
        Box::pin(task_stream::spawn(16, move |tx| async move {
            let progress = push_progress(tx.clone(), move |p| wrap(Event::Progress(p)));
            let result = job.run(&service, chunks, &progress).await;
            let answer = result.map(|r| wrap(Event::Result(convert::pushed(r))));
            let _ = tx.send(answer.map_err(status)).await;
        }))
    }
}

#[tonic::async_trait]
impl pb::satchel_service_server::SatchelService for Api {
    type PushStream = Answer<pb::PushResponse>;

    async fn push(
        &self,
        request: Request<Streaming<pb::PushRequest>>,
    ) -> Result<Response<Self::PushStream>, Status> {
        let inbound = request.into_inner();
        let (h, chunks) = header_and_chunks(inbound, push_part, "Push").await?;
        let artifact = convert::artifact(h.artifact);
        let job = self.service.push(convert::target(h.target)?, artifact);
        let wrap = |e| pb::PushResponse { event: Some(e) };
        Ok(Response::new(self.run_push(
            job.map_err(status)?,
            chunks,
            wrap,
        )))
    }

    type AttachStream = Answer<pb::AttachResponse>;

    async fn attach(
        &self,
        request: Request<Streaming<pb::AttachRequest>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        let inbound = request.into_inner();
        let (h, chunks) = header_and_chunks(inbound, attach_part, "Attach").await?;
        let artifact = convert::artifact(h.artifact);
        let job = self.service.attach(convert::target(h.subject)?, artifact);
        let wrap = |e| pb::AttachResponse::from(pb::PushResponse { event: Some(e) });
        Ok(Response::new(self.run_push(
            job.map_err(status)?,
            chunks,
            wrap,
        )))
    }

    async fn discover(
        &self,
        request: Request<pb::DiscoverRequest>,
    ) -> Result<Response<pb::DiscoverResponse>, Status> {
        let req = request.into_inner();
        let filter = (!req.artifact_type.is_empty()).then_some(req.artifact_type.as_str());
        let subject = convert::target(req.subject)?;
        let asked = req.verify || !req.verify_keys.is_empty();
        let verify = asked.then_some(req.verify_keys.as_slice());
        let found = self
            .service
            .discover(subject, filter, req.depth, verify)
            .await;
        let found = found.map_err(status)?;
        Ok(Response::new(pb::DiscoverResponse {
            reference: found.subject.reference,
            subject: Some(descriptor(&found.subject.descriptor)),
            referrers: convert::referrers(found.referrers),
        }))
    }

    type WatchReferrersStream = Answer<pb::WatchReferrersResponse>;

    async fn watch_referrers(
        &self,
        request: Request<pb::WatchReferrersRequest>,
    ) -> Result<Response<Self::WatchReferrersStream>, Status> {
        let req = request.into_inner();
        let filter = (!req.artifact_type.is_empty()).then_some(req.artifact_type);
        let subject = convert::target(req.subject)?;
        let watcher = self.service.watch_referrers(subject, filter).await;
        let watcher = watcher.map_err(status)?;
        let stopping = self.stopping.clone();
        let answer = task_stream::spawn(8, move |tx| send_watch(watcher, stopping, tx));
        Ok(Response::new(Box::pin(answer)))
    }

    type PullStream = Answer<pb::PullResponse>;

    async fn pull(
        &self,
        request: Request<pb::PullRequest>,
    ) -> Result<Response<Self::PullStream>, Status> {
        let request = request.into_inner();
        let ticket = match (&self.handoff, request.local_files) {
            (Some(handoff), true) => handoff.ticket_for(&callers::current()).map_err(status)?,
            _ => None,
        };
        let keys = request.verify_keys.clone();
        let spec = convert::pull(request)?;
        let plan = self.service.pull(spec, &keys).await.map_err(status)?;
        let answer = task_stream::spawn(4, move |tx| send_pull(plan, ticket, tx));
        Ok(Response::new(Box::pin(answer)))
    }

    async fn verify(
        &self,
        request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        let req = request.into_inner();
        let target = convert::target(req.target)?;
        let verified = self.service.verify(target, &req.keys).await;
        let verified = verified.map_err(status)?;
        Ok(Response::new(pb::VerifyResponse {
            reference: verified.reference,
            manifest: Some(descriptor(&verified.descriptor)),
            signature: Some(convert::signature(verified.signature)),
        }))
    }

    async fn resolve(
        &self,
        request: Request<pb::ResolveRequest>,
    ) -> Result<Response<pb::ResolveResponse>, Status> {
        let target = convert::target(request.into_inner().target)?;
        let named = self.service.resolve(target).await.map_err(status)?;
        Ok(Response::new(pb::ResolveResponse {
            reference: named.reference,
            manifest: Some(descriptor(&named.descriptor)),
        }))
    }

    async fn delete_manifest(
        &self,
        request: Request<pb::DeleteManifestRequest>,
    ) -> Result<Response<pb::DeleteManifestResponse>, Status> {
        let target = convert::target(request.into_inner().target)?;
        let deleted = self.service.delete(target).await.map_err(status)?;
        Ok(Response::new(pb::DeleteManifestResponse {
            deleted: Some(descriptor(&deleted.manifest.descriptor)),
            reference: deleted.manifest.reference,
            warnings: deleted.warnings,
        }))
    }

    async fn fetch_manifest(
        &self,
        request: Request<pb::FetchManifestRequest>,
    ) -> Result<Response<pb::FetchManifestResponse>, Status> {
        let target = convert::target(request.into_inner().target)?;
        let fetched = self.service.fetch_manifest(target).await.map_err(status)?;
        Ok(Response::new(pb::FetchManifestResponse {
            manifest: Some(descriptor(&fetched.manifest.descriptor)),
            reference: fetched.manifest.reference,
            content: fetched.content,
        }))
    }

    async fn list_tags(
        &self,
        request: Request<pb::ListTagsRequest>,
    ) -> Result<Response<pb::ListTagsResponse>, Status> {
        let r = request.into_inner();
        let repository = convert::target(r.repository)?;
        let filter = TagFilter {
            exclude_digest_tags: r.exclude_digest_tags,
            last: r.last,
            same_manifest: r.same_manifest,
        };
        let tags = self.service.list_tags(repository, filter);
        let tags = tags.await.map_err(status)?;
        Ok(Response::new(pb::ListTagsResponse { tags }))
    }

    async fn list_repositories(
        &self,
        request: Request<pb::ListRepositoriesRequest>,
    ) -> Result<Response<pb::ListRepositoriesResponse>, Status> {
        let r = request.into_inner();
        let listed = self.service.list_repositories(&r.registry, r.plain_http);
        let repositories = listed.await.map_err(status)?;
        Ok(Response::new(pb::ListRepositoriesResponse { repositories }))
    }

    async fn tag(
        &self,
        request: Request<pb::TagRequest>,
    ) -> Result<Response<pb::TagResponse>, Status> {
        let r = request.into_inner();
        let target = convert::target(r.target)?;
        let tagged = self.service.tag(target, r.tags).await.map_err(status)?;
        Ok(Response::new(pb::TagResponse {
            manifest: Some(descriptor(&tagged.manifest.descriptor)),
            reference: tagged.manifest.reference,
            tags: tagged.tags,
        }))
    }

    async fn push_manifest(
        &self,
        request: Request<pb::PushManifestRequest>,
    ) -> Result<Response<pb::PushManifestResponse>, Status> {
        let r = request.into_inner();
        let target = convert::target(r.target)?;
        let pushed =
            self.service
                .push_manifest_bytes(target, r.content, &r.media_type, r.extra_tags);
        let pushed = pushed.await.map_err(status)?;
        Ok(Response::new(pb::PushManifestResponse {
            manifest: Some(descriptor(&pushed.manifest.descriptor)),
            reference: pushed.manifest.reference,
            tags: pushed.tags,
            existed: pushed.existed,
        }))
    }

    type FetchBlobStream = Answer<pb::FetchBlobResponse>;

    async fn fetch_blob(
        &self,
        request: Request<pb::FetchBlobRequest>,
    ) -> Result<Response<Self::FetchBlobStream>, Status> {
        use pb::fetch_blob_response::Part;
        let target = convert::target(request.into_inner().target)?;
        let fetched = self.service.fetch_blob(target).await.map_err(status)?;
        let first = Part::Blob(descriptor(&fetched.descriptor));
        let first = futures::stream::once(async move { Ok(first) });
        let data = rechunk(fetched.body).map(|piece| Ok(Part::Data(piece.map_err(status)?)));
        let answer = first
            .chain(data)
            .map(|part: Result<Part, Status>| Ok(pb::FetchBlobResponse { part: Some(part?) }));
        Ok(Response::new(Box::pin(answer)))
    }

    async fn push_blob(
        &self,
        request: Request<pb::PushBlobRequest>,
    ) -> Result<Response<pb::PushBlobResponse>, Status> {
        let r = request.into_inner();
        let target = convert::target(r.target)?;
        let pushed = self
            .service
            .push_stored_blob(target, &r.digest, &r.media_type);
        let pushed = pushed.await.map_err(status)?;
        Ok(Response::new(pb::PushBlobResponse {
            blob: Some(descriptor(&pushed.blob.descriptor)),
            reference: pushed.blob.reference,
            existed: pushed.existed,
        }))
    }

    async fn delete_blob(
        &self,
        request: Request<pb::DeleteBlobRequest>,
    ) -> Result<Response<pb::DeleteBlobResponse>, Status> {
        let target = convert::target(request.into_inner().target)?;
        let reference = self.service.delete_blob(target).await.map_err(status)?;
        Ok(Response::new(pb::DeleteBlobResponse { reference }))
    }

    type CopyStream = Answer<pb::CopyResponse>;

    async fn copy(
        &self,
        request: Request<pb::CopyRequest>,
    ) -> Result<Response<Self::CopyStream>, Status> {
        let r = request.into_inner();
        let (source, destination) = (convert::target(r.source)?, convert::target(r.destination)?);
        let job = self
            .service
            .copy(source, destination, r.recursive, r.extra_tags);
        let job = job.map_err(status)?;
        let answer = task_stream::spawn(16, move |tx| send_copy(job, tx));
        Ok(Response::new(Box::pin(answer)))
    }

    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        let r = request.into_inner();
        let done = self
            .service
            .login(&r.registry, r.username, r.password, r.plain_http);
        let done = done.await.map_err(status)?;
        Ok(Response::new(pb::LoginResponse {
            registry: done.registry,
            username: done.username,
            stored_in: done.stored_in,
        }))
    }

    async fn logout(
        &self,
        request: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        let registry = request.into_inner().registry;
        let removed = self.service.logout(&registry).await.map_err(status)?;
        Ok(Response::new(pb::LogoutResponse { removed }))
    }

    async fn list_credentials(
        &self,
        _request: Request<pb::ListCredentialsRequest>,
    ) -> Result<Response<pb::ListCredentialsResponse>, Status> {
        let listed = self.service.credentials().await.map_err(status)?;
        let credentials = listed
            .into_iter()
            .map(|l| pb::StoredCredential {
                registry: l.registry,
                username: l.username,
                source: l.source,
            })
            .collect();
        Ok(Response::new(pb::ListCredentialsResponse { credentials }))
    }

    type UploadBlobStream = Answer<pb::UploadBlobResponse>;

    async fn upload_blob(
        &self,
        request: Request<Streaming<pb::UploadBlobRequest>>,
    ) -> Result<Response<Self::UploadBlobStream>, Status> {
        self.service.store_needed().map_err(status)?;
        let parts = upload_parts(request.into_inner());
        let service = self.service.clone();
        let answer = task_stream::spawn(16, move |tx| async move {
            if let Err(e) = service.upload(parts, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        let answer = answer.map(|ack| {
            ack.map(|a| pb::UploadBlobResponse {
                r#ref: a.r#ref,
                offset: a.offset,
                committed: a.digest.is_some(),
                digest: a.digest.unwrap_or_default(),
            })
            .map_err(status)
        });
        Ok(Response::new(Box::pin(answer)))
    }

    async fn upload_status(
        &self,
        request: Request<pb::UploadStatusRequest>,
    ) -> Result<Response<pb::UploadStatusResponse>, Status> {
        let r#ref = request.into_inner().r#ref;
        let offset = self.service.upload_offset(&r#ref).await.map_err(status)?;
        Ok(Response::new(pb::UploadStatusResponse {
            offset: offset.unwrap_or(0),
            exists: offset.is_some(),
        }))
    }

    type DownloadBlobStream = Answer<pb::DownloadBlobResponse>;

    async fn download_blob(
        &self,
        request: Request<pb::DownloadBlobRequest>,
    ) -> Result<Response<Self::DownloadBlobStream>, Status> {
        let req = request.into_inner();
        let mut offset = req.offset;
        let body = self.service.download(convert::download(req)?).await;
        let stream = rechunk(body.map_err(status)?).map(move |piece| {
            let data = piece.map_err(status)?;
            let at = offset;
            offset += data.len() as u64;
            Ok(pb::DownloadBlobResponse { data, offset: at })
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn server_info(
        &self,
        _request: Request<pb::ServerInfoRequest>,
    ) -> Result<Response<pb::ServerInfoResponse>, Status> {
        let info = self.service.info();
        Ok(Response::new(pb::ServerInfoResponse {
            version: info.version.to_string(),
            max_chunk_bytes: MAX_CHUNK as u32,
            max_message_bytes: MAX_MESSAGE as u32,
            hash_first_below: info.hash_first_below,
            content_store: info.content_store,
        }))
    }
}

/// Runs a copy, forwarding its events, then its result or error.
/// Sends a watcher's events until the caller goes (which ends the watch,
/// and with the last watcher of a subject, its poller).
async fn send_watch(
    mut watcher: Watcher,
    mut stopping: tokio::sync::watch::Receiver<bool>,
    tx: tokio::sync::mpsc::Sender<Result<pb::WatchReferrersResponse, Status>>,
) {
    loop {
        let events = tokio::select! {
            events = watcher.next() => events,
            _ = tx.closed() => return,
            // The guard wait_for returns is dropped before the await below.
            () = async { drop(stopping.wait_for(|stop| *stop).await) } => {
                let gone = Status::unavailable("satcheld is shutting down; watch again");
                // Never wait on a caller that stopped reading: stopping must not.
                let _ = tx.try_send(Err(gone));
                return;
            }
        };
        let Some(events) = events else { return };
        for event in events {
            let event = convert::watch_event(event, &watcher.subject);
            let answer = pb::WatchReferrersResponse { event: Some(event) };
            if tx.send(Ok(answer)).await.is_err() {
                return;
            }
        }
    }
}

async fn send_copy(job: CopyJob, tx: tokio::sync::mpsc::Sender<Result<pb::CopyResponse, Status>>) {
    use pb::copy_response::Answer as Item;
    let (events_tx, mut events) = tokio::sync::mpsc::channel(16);
    let run = job.run(events_tx);
    tokio::pin!(run);
    let outcome = loop {
        tokio::select! {
            outcome = &mut run => break outcome,
            Some(e) = events.recv() => {
                let event = Item::Event(convert::copy_event(e));
                if tx.send(Ok(pb::CopyResponse { answer: Some(event) })).await.is_err() {
                    return;
                }
            }
        }
    };
    while let Ok(e) = events.try_recv() {
        let event = Item::Event(convert::copy_event(e));
        if tx
            .send(Ok(pb::CopyResponse {
                answer: Some(event),
            }))
            .await
            .is_err()
        {
            return;
        }
    }
    let answer = match outcome {
        Ok(done) => Ok(pb::CopyResponse {
            answer: Some(Item::Result(pb::CopyResult {
                manifest: Some(descriptor(&done.manifest)),
                reference: done.reference,
                tags: done.tags,
                referrers: done.referrers,
            })),
        }),
        Err(e) => {
            tracing::warn!(error = %e, "copy failed");
            Err(status(e))
        }
    };
    let _ = tx.send(answer).await;
}

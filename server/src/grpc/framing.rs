//! The gRPC framing of file bytes, in both directions: a Push's and an
//! UploadBlob's messages taken apart into the service's (file, bytes)
//! pieces, a blob regrouped into messages of at most 1 MiB, and a pulled
//! file sent as header, chunks, progress and FileDone. The only place that
//! knows the chunk limit and how often progress is told.

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use satchel_oci::manifest::Descriptor;
use satchel_proto::v1 as pb;
use satchel_proto::MAX_CHUNK;
use tokio::sync::{mpsc, watch};
use tonic::{Status, Streaming};

use super::convert::descriptor;
use super::status::{carried, invalid, status};
use crate::handoff::{Ticket, FILE_WAIT};
use crate::service::blobs::UploadPart;
use crate::service::invalid as refused;
use crate::service::pull::PullPlan;

/// A Pull reports progress after every this many bytes of a file.
pub(crate) const PROGRESS_EVERY: u64 = 4 << 20;
/// Pieces of a download are sent once this many bytes have gathered.
pub(crate) const FLUSH_AT: usize = 256 << 10;

/// A message of a Push or Attach stream: its header, or a chunk.
pub(crate) enum Part<H> {
    Header(H),
    Chunk(pb::FileChunk),
    Empty,
}

/// A Push message as a header or a chunk.
pub(crate) fn push_part(m: pb::PushRequest) -> Part<pb::PushHeader> {
    use pb::push_request::Payload;
    match m.payload {
        Some(Payload::Header(h)) => Part::Header(h),
        Some(Payload::Chunk(c)) => Part::Chunk(c),
        None => Part::Empty,
    }
}

/// An Attach message as a header or a chunk.
pub(crate) fn attach_part(m: pb::AttachRequest) -> Part<pb::AttachHeader> {
    use pb::attach_request::Payload;
    match m.payload {
        Some(Payload::Header(h)) => Part::Header(h),
        Some(Payload::Chunk(c)) => Part::Chunk(c),
        None => Part::Empty,
    }
}

/// Reads the header a Push or Attach stream must start with, and returns
/// it with the chunks after it as (file index, bytes).
pub(crate) async fn header_and_chunks<M, H>(
    mut inbound: Streaming<M>,
    split: fn(M) -> Part<H>,
    what: &'static str,
) -> Result<
    (
        H,
        impl Stream<Item = satchel_oci::Result<(u32, Bytes)>> + Send + Unpin,
    ),
    Status,
>
where
    M: Send + 'static,
{
    let header = match inbound.next().await.transpose()?.map(split) {
        Some(Part::Header(h)) => h,
        _ => {
            return Err(invalid(format!(
                "the first {what} message must be a header"
            )))
        }
    };
    let chunks = inbound.map(move |m| match split(m.map_err(carried)?) {
        Part::Chunk(c) if c.data.len() > MAX_CHUNK => Err(refused("a chunk is larger than 1 MiB")),
        Part::Chunk(c) => Ok((c.file_index, c.data)),
        _ => Err(refused(format!("only chunks may follow the {what} header"))),
    });
    Ok((header, chunks))
}

/// The messages of an UploadBlob call as the service's parts.
pub(crate) fn upload_parts(
    inbound: Streaming<pb::UploadBlobRequest>,
) -> impl Stream<Item = satchel_oci::Result<UploadPart>> + Send + Unpin {
    inbound.map(|m| {
        let m = m.map_err(carried)?;
        if m.data.len() > MAX_CHUNK {
            return Err(refused("a chunk is larger than 1 MiB"));
        }
        Ok(UploadPart {
            r#ref: m.r#ref,
            offset: m.offset,
            data: m.data,
            commit: m.commit,
            expected_digest: m.expected_digest,
            expected_size: m.expected_size,
        })
    })
}

/// A push's progress as messages of type `M`, dropped when the caller
/// reads slowly (progress is advisory).
pub(crate) fn push_progress<M: Send + 'static>(
    events: mpsc::Sender<Result<M, Status>>,
    wrap: impl Fn(pb::Progress) -> M + Send + Sync,
) -> impl Fn(&str, u64, Option<u64>) + Send + Sync {
    move |name, done, total| {
        let progress = pb::Progress {
            name: name.to_string(),
            done,
            total: total.unwrap_or(0),
        };
        let _ = events.try_send(Ok(wrap(progress)));
    }
}

/// Regroups a byte stream into pieces of at most 1 MiB, flushing at 256 KiB.
/// A piece that is large enough on its own goes out as slices of itself
/// (no copy); only small ones are gathered into a buffer.
pub(crate) fn rechunk(
    body: satchel_oci::ByteStream,
) -> impl Stream<Item = satchel_oci::Result<Bytes>> + Send {
    async_stream::try_stream! {
        let mut body = body;
        let mut buf = BytesMut::new();
        while let Some(chunk) = body.next().await {
            let mut chunk = chunk?;
            if buf.is_empty() {
                while chunk.len() >= FLUSH_AT {
                    yield chunk.split_to(chunk.len().min(MAX_CHUNK));
                }
            }
            buf.extend_from_slice(&chunk);
            while buf.len() >= FLUSH_AT {
                yield buf.split_to(buf.len().min(MAX_CHUNK)).freeze();
            }
        }
        if !buf.is_empty() {
            yield buf.freeze();
        }
    }
}

/// Sends a pull: the manifest, then each file as header, chunks of at
/// most 1 MiB with progress, and a FileDone once its digest has been
/// checked. Stops at the first error, which ends the stream.
pub(crate) async fn send_pull(
    plan: PullPlan,
    mut ticket: Option<Ticket>,
    tx: mpsc::Sender<Result<pb::PullResponse, Status>>,
) {
    use pb::pull_response::Payload;
    let first = Payload::Manifest(pb::PulledManifest {
        reference: plan.reference.clone(),
        manifest: Some(descriptor(&plan.manifest)),
        content: plan.content.clone(),
        local_ticket: ticket
            .as_ref()
            .map(|t| t.id().to_vec())
            .unwrap_or_default()
            .into(),
        signature: plan.signature.clone().map(super::convert::signature),
    });
    let send = |p: Payload| tx.send(Ok(pb::PullResponse { payload: Some(p) }));
    if send(first).await.is_err() {
        return;
    }
    for (index, (name, layer)) in plan.files.iter().enumerate() {
        let sent = match &mut ticket {
            Some(ticket) => hand_file(&plan, ticket, index as u32, name, layer, &tx).await,
            None => send_file(&plan, name, layer, &tx).await,
        };
        if let Err(e) = sent {
            tracing::warn!(file = %name, error = %e.message(), "pull failed");
            let _ = tx.send(Err(e)).await;
            return;
        }
    }
}

/// One file of a pull through the local handoff: the header, then the
/// caller's file filled with progress on the way, then FileDone.
async fn hand_file(
    plan: &PullPlan,
    ticket: &mut Ticket,
    index: u32,
    name: &str,
    layer: &Descriptor,
    tx: &mpsc::Sender<Result<pb::PullResponse, Status>>,
) -> Result<(), Status> {
    use pb::pull_response::Payload;
    let gone = |_| Status::cancelled("the caller went away");
    let send = |p: Payload| tx.send(Ok(pb::PullResponse { payload: Some(p) }));
    let progress = |done| {
        Payload::Progress(pb::Progress {
            name: name.to_string(),
            done,
            total: layer.size,
        })
    };
    let header = pb::FileHeader {
        name: name.to_string(),
        layer: Some(descriptor(layer)),
    };
    send(Payload::File(header)).await.map_err(gone)?;
    let file = ticket.file(index, FILE_WAIT).await.map_err(status)?;
    let (told, mut written) = watch::channel(0u64);
    let work = plan.deliver(layer, file, told);
    tokio::pin!(work);
    let (mut reported, mut telling) = (0u64, true);
    loop {
        tokio::select! {
            biased;
            done = &mut work => break done.map_err(status)?,
            changed = written.changed(), if telling => {
                let done = *written.borrow_and_update();
                telling = changed.is_ok();
                if telling && done - reported >= PROGRESS_EVERY {
                    reported = done;
                    send(progress(done)).await.map_err(gone)?;
                }
            }
        }
    }
    send(progress(layer.size)).await.map_err(gone)?;
    let done = pb::FileDone {
        digest: layer.digest.to_string(),
    };
    send(Payload::Done(done)).await.map_err(gone)
}

/// Streams one file of a pull.
async fn send_file(
    plan: &PullPlan,
    name: &str,
    layer: &Descriptor,
    tx: &mpsc::Sender<Result<pb::PullResponse, Status>>,
) -> Result<(), Status> {
    use pb::pull_response::Payload;
    let gone = |_| Status::cancelled("the caller went away");
    let send = |p: Payload| tx.send(Ok(pb::PullResponse { payload: Some(p) }));
    let header = pb::FileHeader {
        name: name.to_string(),
        layer: Some(descriptor(layer)),
    };
    send(Payload::File(header)).await.map_err(gone)?;
    let body = plan.body(layer).await.map_err(status)?;
    // Coalesce the registry's small reads into chunks of up to 1 MiB, and
    // send the first bytes early so the caller sees progress.
    let mut pieces = Box::pin(rechunk(body));
    let (mut done, mut reported) = (0u64, 0u64);
    while let Some(piece) = pieces.next().await {
        let piece = piece.map_err(status)?;
        done += piece.len() as u64;
        send(Payload::Chunk(piece)).await.map_err(gone)?;
        if done - reported >= PROGRESS_EVERY || done == layer.size {
            reported = done;
            let progress = pb::Progress {
                name: name.to_string(),
                done,
                total: layer.size,
            };
            send(Payload::Progress(progress)).await.map_err(gone)?;
        }
    }
    let done = pb::FileDone {
        digest: layer.digest.to_string(),
    };
    send(Payload::Done(done)).await.map_err(gone)
}

#[cfg(test)]
mod tests;

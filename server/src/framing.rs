//! The gRPC framing of file bytes, in both directions: a Push's chunks
//! taken file by file, a blob regrouped into messages of at most 1 MiB,
//! and a pulled file sent as header, chunks, progress and FileDone.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use satchel_oci::content::ContentStore;
use satchel_oci::manifest::Descriptor;
use satchel_oci::Target;
use satchel_proto::v1 as pb;
use satchel_proto::MAX_CHUNK;
use tokio::sync::mpsc;
use tonic::Status;

use crate::api::to_pb;
use crate::status::{invalid, status};

/// A Pull reports progress after every this many bytes of a file.
pub(crate) const PROGRESS_EVERY: u64 = 4 << 20;
/// Pieces of a download are sent once this many bytes have gathered.
pub(crate) const FLUSH_AT: usize = 256 << 10;

/// The next chunk of file `index`, or `None` when that file has ended
/// (a chunk of a later file arrived, or the stream closed).
pub(crate) async fn next_chunk<S>(
    inbound: &mut S,
    pending: &mut Option<pb::FileChunk>,
    index: u32,
) -> Result<Option<Bytes>, Status>
where
    S: Stream<Item = Result<pb::FileChunk, Status>> + Unpin,
{
    let chunk = match pending.take() {
        Some(c) => c,
        None => match inbound.next().await {
            Some(c) => c?,
            None => return Ok(None),
        },
    };
    if chunk.file_index < index {
        return Err(invalid(format!(
            "a chunk for file {} arrived after file {index} had started",
            chunk.file_index
        )));
    }
    if chunk.file_index > index {
        *pending = Some(chunk);
        return Ok(None);
    }
    if chunk.data.len() > MAX_CHUNK {
        return Err(invalid("a chunk is larger than 1 MiB"));
    }
    Ok(Some(chunk.data))
}

/// Regroups a byte stream into pieces of at most 1 MiB, flushing at 256 KiB.
pub(crate) fn rechunk(
    body: satchel_oci::ByteStream,
) -> impl Stream<Item = satchel_oci::Result<Bytes>> + Send {
    async_stream::try_stream! {
        let mut body = body;
        let mut buf = BytesMut::new();
        while let Some(chunk) = body.next().await {
            buf.extend_from_slice(&chunk?);
            while buf.len() >= FLUSH_AT {
                yield buf.split_to(buf.len().min(MAX_CHUNK)).freeze();
            }
        }
        if !buf.is_empty() {
            yield buf.freeze();
        }
    }
}

/// Streams one file: header, chunks of at most 1 MiB, and a FileDone once
/// the digest has been checked.
pub(crate) async fn send_file(
    target: &Target,
    cache: Option<&Arc<ContentStore>>,
    name: &str,
    layer: &Descriptor,
    tx: &mpsc::Sender<Result<pb::PullResponse, Status>>,
) -> Result<(), Status> {
    use pb::pull_response::Payload;
    let gone = || Status::cancelled("the caller went away");
    let send = |p: Payload| tx.send(Ok(pb::PullResponse { payload: Some(p) }));
    send(Payload::File(pb::FileHeader {
        name: name.to_string(),
        layer: Some(to_pb(layer)),
    }))
    .await
    .map_err(|_| gone())?;
    let body = match cache {
        Some(cache) => cache.fetch_through(layer, target.fetch_blob(layer)).await,
        None => target.fetch_blob(layer).await,
    }
    .map_err(status)?;
    // Coalesce the registry's small reads into chunks of up to 1 MiB, and
    // send the first bytes early so the caller sees progress.
    let mut pieces = Box::pin(rechunk(body));
    let (mut done, mut reported) = (0u64, 0u64);
    while let Some(piece) = pieces.next().await {
        let piece = piece.map_err(status)?;
        done += piece.len() as u64;
        send(Payload::Chunk(piece)).await.map_err(|_| gone())?;
        if done - reported >= PROGRESS_EVERY || done == layer.size {
            reported = done;
            send(Payload::Progress(pb::Progress {
                name: name.to_string(),
                done,
                total: layer.size,
            }))
            .await
            .map_err(|_| gone())?;
        }
    }
    send(Payload::Done(pb::FileDone {
        digest: layer.digest.to_string(),
    }))
    .await
    .map_err(|_| gone())
}

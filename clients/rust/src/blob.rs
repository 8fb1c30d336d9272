//! The daemon's content store: [`upload`] a file, resumable by ref (rerun
//! it after a dropped connection and it goes on where the daemon stopped),
//! and [`download`] a blob or a range of it.
//!
//! An upload is hashed first: the daemon commits it only if the bytes match.
//! A download is written under a random temporary name beside its output
//! (created exclusively, never through a link; [`crate::write`]) and renamed
//! over it once complete, so a link at the output is replaced, not written
//! through; a whole sha256 blob is checked against its digest first
//! (DATA_LOSS).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tonic::Code;

use crate::push::{read_chunk, ReadFailure};
use crate::write::{OutDir, Placement};
use crate::{pb, sha256_file, Client, Error};

/// What [`upload`] and [`download`] report as they go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobEvent {
    /// The daemon already holds this many bytes of the upload; it goes on
    /// from there.
    Resuming {
        /// The upload's ref.
        reference: String,
        /// The byte the upload resumes at.
        offset: u64,
    },
    /// Bytes moved so far, of `total` (0 when unknown).
    Progress {
        /// Bytes done.
        done: u64,
        /// Bytes in all.
        total: u64,
    },
}

/// How to [`upload`].
#[derive(Debug, Clone, Default)]
pub struct UploadOptions {
    /// The upload's ref; `None` is [`upload_ref`] of the file, so a rerun
    /// resumes.
    pub reference: Option<String>,
    /// Send at most this many bytes per second.
    pub limit_rate: Option<u64>,
}

/// What [`upload`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// The ref it went under.
    pub reference: String,
    /// The committed blob's digest.
    pub digest: String,
    /// Its size.
    pub size: u64,
}

/// The ref a file uploads under by default: derived from its absolute path,
/// size and modification time, so the same file resumes and a changed one
/// starts again.
pub fn upload_ref(path: &Path, meta: &std::fs::Metadata) -> String {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let key = format!("{}\n{}\n{mtime}", path.display(), meta.len());
    format!("file-{}", hex::encode(Sha256::digest(key.as_bytes())))
}

/// One upload under way: what every message of it repeats.
struct Sending {
    path: PathBuf,
    reference: String,
    digest: String,
    size: u64,
    start: u64,
    chunk_bytes: usize,
    limit_rate: Option<u64>,
}

/// Uploads the file at `path` into the daemon's content store, resuming
/// where an earlier upload under the same ref stopped. A missing file is
/// INVALID_ARGUMENT.
pub async fn upload(
    client: &mut Client,
    path: &Path,
    options: UploadOptions,
    mut on_event: impl FnMut(BlobEvent),
) -> Result<Uploaded, Error> {
    let path = std::path::absolute(path)
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    let meta = tokio::fs::metadata(&path)
        .await
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    let reference = options
        .reference
        .unwrap_or_else(|| upload_ref(&path, &meta));
    let (digest, size) = sha256_file(&path).await?;
    let start = resume_offset(client, &reference, &path, size).await?;
    if start > 0 {
        on_event(BlobEvent::Resuming {
            reference: reference.clone(),
            offset: start,
        });
    }
    let sending = Sending {
        path,
        reference,
        digest,
        size,
        start,
        chunk_bytes: client.chunk_bytes().await?,
        limit_rate: options.limit_rate,
    };
    let failed = ReadFailure::default();
    let messages = upload_messages(&sending, failed.clone()).await?;
    let acks = match client.upload_blob(messages).await {
        Ok(r) => r.into_inner(),
        Err(status) => return Err(failed.take().unwrap_or(status.into())),
    };
    let last = follow_acks(acks, &failed, size, &mut on_event).await?;
    match last {
        Some(ack) if ack.committed => Ok(Uploaded {
            reference: sending.reference,
            digest: ack.digest,
            size: ack.offset,
        }),
        Some(ack) => Err(Error::local(
            Code::Internal,
            format!("the upload stopped at byte {} without a commit", ack.offset),
        )),
        None => Err(Error::local(
            Code::Internal,
            "the daemon acknowledged nothing",
        )),
    }
}

/// Where the upload under `reference` stands at the daemon.
async fn resume_offset(
    client: &mut Client,
    reference: &str,
    path: &Path,
    size: u64,
) -> Result<u64, Error> {
    let status = client
        .upload_status(pb::UploadStatusRequest {
            r#ref: reference.to_string(),
        })
        .await?
        .into_inner();
    let start = if status.exists { status.offset } else { 0 };
    if start > size {
        return Err(Error::local(
            Code::FailedPrecondition,
            format!(
                "the upload {reference} holds more bytes than {} has",
                path.display()
            ),
        ));
    }
    Ok(start)
}

/// The upload's messages from `sending.start` on, read as they are sent;
/// the last one commits against the digest and size.
async fn upload_messages(
    sending: &Sending,
    failed: ReadFailure,
) -> Result<impl Stream<Item = pb::UploadBlobRequest> + Send + 'static, Error> {
    let what = || format!("cannot read {}", sending.path.display());
    let mut file = tokio::fs::File::open(&sending.path)
        .await
        .map_err(|e| Error::io(what(), e))?;
    file.seek(std::io::SeekFrom::Start(sending.start))
        .await
        .map_err(|e| Error::io(what(), e))?;
    let (reference, digest, what) = (sending.reference.clone(), sending.digest.clone(), what());
    let (start, size, chunk_bytes, rate) = (
        sending.start,
        sending.size,
        sending.chunk_bytes,
        sending.limit_rate,
    );
    Ok(async_stream::stream! {
        let mut offset = start;
        let begun = Instant::now();
        loop {
            let chunk = match read_chunk(&mut file, chunk_bytes).await {
                Ok(chunk) => chunk,
                Err(e) => return failed.set(Error::io(what.clone(), e)),
            };
            let n = chunk.len() as u64;
            let last = offset + n >= size;
            yield pb::UploadBlobRequest {
                r#ref: reference.clone(),
                offset,
                data: chunk.into(),
                commit: last,
                expected_digest: if last { digest.clone() } else { String::new() },
                expected_size: last.then_some(size),
            };
            offset += n;
            if last {
                return;
            }
            pace(rate, offset - start, begun).await;
        }
    })
}

/// Waits until `sent` bytes are no more than `rate` per second since
/// `begun`.
async fn pace(rate: Option<u64>, sent: u64, begun: Instant) {
    if let Some(rate) = rate {
        let due = Duration::from_secs_f64(sent as f64 / rate.max(1) as f64);
        if let Some(wait) = due.checked_sub(begun.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Follows the daemon's acknowledgements to the last one.
async fn follow_acks(
    mut acks: impl Stream<Item = Result<pb::UploadBlobResponse, tonic::Status>> + Unpin,
    failed: &ReadFailure,
    size: u64,
    on_event: &mut impl FnMut(BlobEvent),
) -> Result<Option<pb::UploadBlobResponse>, Error> {
    let mut last = None;
    while let Some(ack) = acks.next().await {
        let ack = ack.map_err(|status| failed.take().unwrap_or(status.into()))?;
        on_event(BlobEvent::Progress {
            done: ack.offset,
            total: size,
        });
        last = Some(ack);
    }
    match failed.take() {
        Some(e) => Err(e),
        None => Ok(last),
    }
}

/// Downloads what `request` names (a blob or a range of it, fetched from
/// `request.source` first if the store lacks it) to the file `output`;
/// returns the bytes written.
pub async fn download(
    client: &mut Client,
    request: pb::DownloadBlobRequest,
    output: &Path,
    mut on_event: impl FnMut(BlobEvent),
) -> Result<u64, Error> {
    let mut stream = client.download_blob(request.clone()).await?.into_inner();
    let (placement, file) = create_output(output).await?;
    let mut out = tokio::fs::File::from_std(file);
    let what = || format!("cannot write {}", output.display());
    let received = async {
        let mut hasher = Sha256::new();
        let mut written = 0u64;
        while let Some(msg) = stream.next().await {
            let msg = msg?;
            on_event(BlobEvent::Progress {
                done: msg.offset + msg.data.len() as u64,
                total: request.size,
            });
            hasher.update(&msg.data);
            out.write_all(&msg.data)
                .await
                .map_err(|e| Error::io(what(), e))?;
            written += msg.data.len() as u64;
        }
        out.sync_data().await.map_err(|e| Error::io(what(), e))?;
        check_whole(&request, hasher)?;
        Ok(written)
    }
    .await;
    drop(out);
    match received {
        Ok(written) => {
            blocking(move || placement.commit()).await?;
            Ok(written)
        }
        Err(e) => {
            blocking(move || {
                placement.discard();
                Ok(())
            })
            .await?;
            Err(e)
        }
    }
}

/// A whole sha256 blob must have the digest asked for.
fn check_whole(request: &pb::DownloadBlobRequest, hasher: Sha256) -> Result<(), Error> {
    let whole = request.offset == 0 && request.length == 0;
    if whole && request.digest.starts_with("sha256:") {
        let got = format!("sha256:{}", hex::encode(hasher.finalize()));
        if got != request.digest {
            return Err(Error::local(
                Code::DataLoss,
                format!("the download has digest {got}, not {}", request.digest),
            ));
        }
    }
    Ok(())
}

/// The temporary file beside `output` (its directory made if missing).
async fn create_output(output: &Path) -> Result<(Placement, std::fs::File), Error> {
    let dir = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let name = output
        .file_name()
        .ok_or_else(|| Error::local(Code::InvalidArgument, "the output needs a file name"))?
        .to_string_lossy()
        .into_owned();
    blocking(move || OutDir::open(&dir)?.create(&name)).await
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::local(Code::Internal, format!("a file operation failed: {e}")))?
}

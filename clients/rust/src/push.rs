//! Files up: [`push`] and [`attach`] stream local files to the daemon.
//!
//! Before the call, each file without a digest that is smaller than the
//! daemon's `hash_first_below` ([`Client::server_info`]) is hashed, so the
//! daemon can skip blobs the target already has and upload the rest in one
//! request; larger files stream unhashed and the daemon hashes them on the
//! way, in chunked uploads. Bytes go up in chunks of the daemon's
//! `max_chunk_bytes`, read as the call can take them.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncReadExt;
use tonic::Code;

use crate::{pb, Client, Error};

/// The layer media type when none is given.
pub const DEFAULT_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";

/// A local file to push, and the [`pb::FileSpec`] the daemon will get for
/// it. Set `spec.annotations` for extra layer annotations. A directory is
/// pushed as the ORAS CLI pushes one ([`crate::pack`]): `path` is then its
/// packed archive, kept until the last clone of this value is dropped.
#[derive(Debug, Clone)]
pub struct LocalFile {
    /// Where the bytes are.
    pub path: PathBuf,
    /// How the layer is described: its title (the file's name), media type,
    /// size and, when hashed first, digest.
    pub spec: pb::FileSpec,
    /// A packed directory's archive, removed with the last clone.
    _archive: Option<Arc<tempfile::TempPath>>,
}

impl LocalFile {
    /// Describes the regular file or directory at `path` as a layer titled
    /// with its file name; see [`Self::named`].
    pub async fn new(
        path: impl Into<PathBuf>,
        media_type: &str,
        hash_first: bool,
    ) -> Result<Self, Error> {
        let path = path.into();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                Error::local(
                    Code::InvalidArgument,
                    format!("{} has no usable file name", path.display()),
                )
            })?
            .to_string();
        Self::named(path, &name, media_type, hash_first).await
    }

    /// Describes the regular file or directory at `path` as a layer titled
    /// `title`, which must be a safe relative path ([`crate::check_title`]).
    /// An empty `media_type` means [`DEFAULT_MEDIA_TYPE`] for a file and
    /// [`crate::pack::DIRECTORY_MEDIA_TYPE`] for a directory. A directory
    /// is packed now, its digest known; with `hash_first` a file's sha256
    /// is computed now; otherwise [`push`] and [`attach`] hash it if it is
    /// smaller than the daemon's `hash_first_below`. A missing path (or one
    /// that is neither a file nor a directory) is INVALID_ARGUMENT naming
    /// it; the `std::io::Error` is the error's `source()`.
    pub async fn named(
        path: impl Into<PathBuf>,
        title: &str,
        media_type: &str,
        hash_first: bool,
    ) -> Result<Self, Error> {
        let path = path.into();
        let shown = path.display().to_string();
        crate::check_title(title)?;
        let meta = tokio::fs::metadata(&path)
            .await
            .map_err(|e| Error::io(format!("cannot read {shown}"), e))?;
        if meta.is_dir() {
            return Self::directory(path, title, media_type).await;
        }
        if !meta.is_file() {
            return Err(Error::local(
                Code::InvalidArgument,
                format!("{shown} is not a regular file or a directory"),
            ));
        }
        let media_type = if media_type.is_empty() {
            DEFAULT_MEDIA_TYPE
        } else {
            media_type
        };
        let mut file = LocalFile {
            path,
            spec: pb::FileSpec {
                name: title.to_string(),
                media_type: media_type.to_string(),
                size: Some(meta.len()),
                ..Default::default()
            },
            _archive: None,
        };
        if hash_first {
            file.hash_if_below(u64::MAX).await?;
        }
        Ok(file)
    }

    async fn directory(dir: PathBuf, title: &str, media_type: &str) -> Result<Self, Error> {
        let owned_title = title.to_string();
        let packed = tokio::task::spawn_blocking(move || crate::pack::pack(&dir, &owned_title))
            .await
            .map_err(|e| Error::local(Code::Internal, format!("packing failed: {e}")))??;
        let media_type = if media_type.is_empty() {
            crate::pack::DIRECTORY_MEDIA_TYPE
        } else {
            media_type
        };
        Ok(LocalFile {
            path: packed.file.to_path_buf(),
            spec: pb::FileSpec {
                name: title.to_string(),
                media_type: media_type.to_string(),
                size: Some(packed.size),
                digest: packed.digest,
                annotations: packed.annotations.into_iter().collect(),
                ..Default::default()
            },
            _archive: Some(Arc::new(packed.file)),
        })
    }

    /// Hashes the file now (setting `spec.digest` and `spec.size`) if it
    /// has no digest yet and is smaller than `threshold`; [`push`] and
    /// [`attach`] call this with the daemon's `hash_first_below`.
    pub async fn hash_if_below(&mut self, threshold: u64) -> Result<(), Error> {
        let small = self.spec.size.is_some_and(|size| size < threshold);
        if self.spec.digest.is_empty() && small {
            let (digest, size) = sha256_file(&self.path).await?;
            self.spec.digest = digest;
            self.spec.size = Some(size);
        }
        Ok(())
    }
}

/// The sha256 digest (`sha256:<hex>`) and size of a file, read in 1 MiB
/// pieces.
pub async fn sha256_file(path: &Path) -> Result<(String, u64), Error> {
    let what = || format!("cannot read {}", path.display());
    let mut f = tokio::fs::File::open(path)
        .await
        .map_err(|e| Error::io(what(), e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).await.map_err(|e| Error::io(what(), e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((format!("sha256:{}", hex::encode(hasher.finalize())), size))
}

/// A push's or attach's files, ready to go: hashed by the daemon's policy,
/// their specs, and the daemon's chunk size.
struct Prepared {
    specs: Vec<pb::FileSpec>,
    chunks: std::pin::Pin<Box<dyn Stream<Item = pb::FileChunk> + Send>>,
    failed: ReadFailure,
}

async fn prepare(client: &mut Client, mut files: Vec<LocalFile>) -> Result<Prepared, Error> {
    let threshold = client.server_info().await?.hash_first_below;
    for file in &mut files {
        file.hash_if_below(threshold).await?;
    }
    let chunk_bytes = client.chunk_bytes().await?;
    let failed = ReadFailure::default();
    Ok(Prepared {
        specs: files.iter().map(|f| f.spec.clone()).collect(),
        chunks: Box::pin(chunks(files, chunk_bytes, failed.clone())),
        failed,
    })
}

/// Pushes `files` as an artifact to `target`, as `satchel push` does.
/// `artifact` gives everything but the files (its `files` are replaced by
/// theirs). `on_progress` sees the daemon's progress events.
pub async fn push(
    client: &mut Client,
    target: pb::Target,
    mut artifact: pb::ArtifactSpec,
    files: Vec<LocalFile>,
    on_progress: impl FnMut(&pb::Progress),
) -> Result<pb::PushResult, Error> {
    use pb::push_request::Payload;
    let prepared = prepare(client, files).await?;
    artifact.files = prepared.specs;
    let header = Payload::Header(pb::PushHeader {
        target: Some(target),
        artifact: Some(artifact),
    });
    let body = with_header(header, prepared.chunks, Payload::Chunk)
        .map(|p| pb::PushRequest { payload: Some(p) });
    let answer = client.push(body).await.map(tonic::Response::into_inner);
    follow(answer, &prepared.failed, on_progress).await
}

/// Attaches `files` as an artifact to the manifest `subject`, as
/// `satchel attach` does. `artifact.artifact_type` is required; its `files`
/// are replaced by theirs.
pub async fn attach(
    client: &mut Client,
    subject: pb::Target,
    mut artifact: pb::ArtifactSpec,
    files: Vec<LocalFile>,
    on_progress: impl FnMut(&pb::Progress),
) -> Result<pb::PushResult, Error> {
    use pb::attach_request::Payload;
    let prepared = prepare(client, files).await?;
    artifact.files = prepared.specs;
    let header = Payload::Header(pb::AttachHeader {
        subject: Some(subject),
        artifact: Some(artifact),
    });
    let body = with_header(header, prepared.chunks, Payload::Chunk)
        .map(|p| pb::AttachRequest { payload: Some(p) });
    let answer = client.attach(body).await.map(|r| {
        r.into_inner()
            .map(|event| event.map(pb::PushResponse::from))
    });
    follow(answer, &prepared.failed, on_progress).await
}

/// The request stream: `header`, then every chunk as `chunk` wraps it.
fn with_header<P>(
    header: P,
    chunks: impl Stream<Item = pb::FileChunk>,
    chunk: fn(pb::FileChunk) -> P,
) -> impl Stream<Item = P> {
    futures::stream::once(async { header }).chain(chunks.map(chunk))
}

/// Where a failed read of a local file is kept: the request stream cannot
/// carry it, so it ends early and the call reports this error instead of
/// the daemon's complaint about missing bytes.
#[derive(Clone, Default)]
pub(crate) struct ReadFailure(Arc<Mutex<Option<Error>>>);

impl ReadFailure {
    pub(crate) fn set(&self, error: Error) {
        *self.0.lock().expect("read failure") = Some(error);
    }

    pub(crate) fn take(&self) -> Option<Error> {
        self.0.lock().expect("read failure").take()
    }
}

/// Reads up to `size` bytes of `f`, filling whole chunks (fewer, larger
/// messages); empty at the end of the file.
pub(crate) async fn read_chunk(f: &mut tokio::fs::File, size: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; size];
    let mut filled = 0;
    while filled < buf.len() {
        match f.read(&mut buf[filled..]).await? {
            0 => break,
            n => filled += n,
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// The files' chunks, file after file, read as they are sent.
fn chunks(
    files: Vec<LocalFile>,
    chunk_bytes: usize,
    failed: ReadFailure,
) -> impl Stream<Item = pb::FileChunk> {
    async_stream::stream! {
        for (index, file) in files.into_iter().enumerate() {
            let what = || format!("cannot read {}", file.path.display());
            let mut f = match tokio::fs::File::open(&file.path).await {
                Ok(f) => f,
                Err(e) => return failed.set(Error::io(what(), e)),
            };
            loop {
                match read_chunk(&mut f, chunk_bytes).await {
                    Ok(buf) if buf.is_empty() => break,
                    Ok(buf) => yield pb::FileChunk { file_index: index as u32, data: buf.into() },
                    Err(e) => return failed.set(Error::io(what(), e)),
                }
            }
        }
    }
}

/// Follows a push's answer (its events, or the status the call failed
/// with) to its result; a local read failure takes the place of the
/// daemon's complaint. Returning early drops the response stream, which
/// cancels the call.
async fn follow(
    answer: Result<
        impl Stream<Item = Result<pb::PushResponse, tonic::Status>> + Unpin,
        tonic::Status,
    >,
    failed: &ReadFailure,
    mut on_progress: impl FnMut(&pb::Progress),
) -> Result<pb::PushResult, Error> {
    use pb::push_response::Event;
    let mut events = answer.map_err(|status| failed.take().unwrap_or(status.into()))?;
    while let Some(event) = events.next().await {
        match event {
            Ok(pb::PushResponse {
                event: Some(Event::Progress(p)),
            }) => on_progress(&p),
            Ok(pb::PushResponse {
                event: Some(Event::Result(r)),
            }) => return Ok(r),
            Ok(_) => {}
            Err(status) => return Err(failed.take().unwrap_or(status.into())),
        }
    }
    Err(failed.take().unwrap_or_else(|| {
        Error::local(Code::Internal, "the daemon ended the push without a result")
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[tokio::test]
    async fn a_missing_file_is_invalid_argument_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("no-such-file.txt");
        let err = LocalFile::new(&path, "", false).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        let io = err
            .source()
            .and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(
            io.map(std::io::Error::kind),
            Some(std::io::ErrorKind::NotFound)
        );
    }

    #[tokio::test]
    async fn files_are_hashed_first_only_below_the_threshold() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f");
        std::fs::write(&path, b"abc").unwrap();
        let mut file = LocalFile::new(&path, "", false).await.unwrap();
        assert!(file.spec.digest.is_empty());
        file.hash_if_below(3).await.unwrap();
        assert!(file.spec.digest.is_empty(), "3 bytes are not below 3");
        file.hash_if_below(4).await.unwrap();
        assert_eq!(file.spec.digest, sha256_file(&path).await.unwrap().0);
        let first = LocalFile::new(&path, "", true).await.unwrap();
        assert_eq!(first.spec.digest, file.spec.digest);
    }
}

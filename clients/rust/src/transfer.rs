//! Files in and out: [`push`] and [`attach`] stream local files to the
//! daemon; [`pull`] writes an artifact's files into a directory.
//!
//! Files go up in chunks of at most 1 MiB, read as the call can take them,
//! and come down the same way. A pulled file is written under a temporary
//! name and renamed into place only once the daemon has verified its digest
//! and the byte count agrees; on any failure the temporary file is removed.
//! All titles are checked against each other ([`crate::title`]) before the
//! first file is made, and files are made without following links
//! ([`crate::write`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

use crate::title::{check_title, check_titles, manifest_titles, shown};
use crate::write::{OutDir, Placement};
use crate::{pb, Client, Error};

/// Files smaller than this are hashed before they are sent, so the daemon
/// can skip blobs the target already has and upload the rest in one
/// request. Larger files are read once: they stream at once, and the daemon
/// hashes them on the way, in chunked uploads that resume after a dropped
/// connection. [`LocalFile::new`]'s `hash_first` hashes them first too.
pub const HASH_FIRST_BELOW: u64 = 256 << 20;

/// The layer media type when none is given.
pub const DEFAULT_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";

/// A local file to push, and the [`pb::FileSpec`] the daemon will get for
/// it. Set `spec.annotations` for extra layer annotations.
#[derive(Debug, Clone)]
pub struct LocalFile {
    /// Where the bytes are.
    pub path: PathBuf,
    /// How the layer is described: its title (the file's name), media type,
    /// size and, when hashed first, digest.
    pub spec: pb::FileSpec,
}

impl LocalFile {
    /// Describes the regular file at `path` as a layer titled with its file
    /// name. Its sha256 is computed now if it is smaller than
    /// [`HASH_FIRST_BELOW`] or `hash_first` is set; an empty `media_type`
    /// means [`DEFAULT_MEDIA_TYPE`].
    pub async fn new(
        path: impl Into<PathBuf>,
        media_type: &str,
        hash_first: bool,
    ) -> Result<Self, Error> {
        let path = path.into();
        let shown = path.display().to_string();
        let meta = tokio::fs::metadata(&path)
            .await
            .map_err(|e| Error::io(format!("cannot read {shown}"), e))?;
        if !meta.is_file() {
            return Err(Error::local(
                Code::InvalidArgument,
                format!("{shown} is not a regular file"),
            ));
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                Error::local(
                    Code::InvalidArgument,
                    format!("{shown} has no usable file name"),
                )
            })?
            .to_string();
        let (digest, size) = if hash_first || meta.len() < HASH_FIRST_BELOW {
            sha256_file(&path).await?
        } else {
            (String::new(), meta.len())
        };
        let media_type = if media_type.is_empty() {
            DEFAULT_MEDIA_TYPE
        } else {
            media_type
        };
        Ok(LocalFile {
            path,
            spec: pb::FileSpec {
                name,
                media_type: media_type.to_string(),
                size: Some(size),
                digest,
                ..Default::default()
            },
        })
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
    artifact.files = files.iter().map(|f| f.spec.clone()).collect();
    let header = pb::PushRequest {
        payload: Some(pb::push_request::Payload::Header(pb::PushHeader {
            target: Some(target),
            artifact: Some(artifact),
        })),
    };
    let failed = Arc::new(Mutex::new(None));
    let body =
        futures::stream::once(async { header }).chain(chunks(files, failed.clone()).map(|c| {
            pb::PushRequest {
                payload: Some(pb::push_request::Payload::Chunk(c)),
            }
        }));
    let events = match client.push(body).await {
        Ok(r) => r.into_inner(),
        Err(status) => return Err(read_error(&failed).unwrap_or(status.into())),
    };
    follow(events, &failed, on_progress).await
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
    artifact.files = files.iter().map(|f| f.spec.clone()).collect();
    let header = pb::AttachRequest {
        payload: Some(pb::attach_request::Payload::Header(pb::AttachHeader {
            subject: Some(subject),
            artifact: Some(artifact),
        })),
    };
    let failed = Arc::new(Mutex::new(None));
    let body =
        futures::stream::once(async { header }).chain(chunks(files, failed.clone()).map(|c| {
            pb::AttachRequest {
                payload: Some(pb::attach_request::Payload::Chunk(c)),
            }
        }));
    let events = match client.attach(body).await {
        Ok(r) => r.into_inner().map(|e| e.map(pb::PushResponse::from)),
        Err(status) => return Err(read_error(&failed).unwrap_or(status.into())),
    };
    follow(events, &failed, on_progress).await
}

/// Where a failed read of a local file is kept: the request stream cannot
/// carry it, so it ends early and the call reports this error instead of
/// the daemon's complaint about missing bytes.
type ReadFailure = Arc<Mutex<Option<Error>>>;

fn read_error(failed: &ReadFailure) -> Option<Error> {
    failed.lock().expect("read failure").take()
}

/// The files' chunks, file after file, read as they are sent.
fn chunks(files: Vec<LocalFile>, failed: ReadFailure) -> impl Stream<Item = pb::FileChunk> {
    async_stream::stream! {
        for (index, file) in files.into_iter().enumerate() {
            let what = || format!("cannot read {}", file.path.display());
            let mut f = match tokio::fs::File::open(&file.path).await {
                Ok(f) => f,
                Err(e) => {
                    *failed.lock().expect("read failure") = Some(Error::io(what(), e));
                    return;
                }
            };
            loop {
                let mut buf = vec![0u8; satchel_proto::MAX_CHUNK];
                let mut filled = 0;
                // Fill whole chunks: fewer, larger messages.
                while filled < buf.len() {
                    match f.read(&mut buf[filled..]).await {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) => {
                            *failed.lock().expect("read failure") = Some(Error::io(what(), e));
                            return;
                        }
                    }
                }
                if filled == 0 {
                    break;
                }
                buf.truncate(filled);
                yield pb::FileChunk { file_index: index as u32, data: buf.into() };
            }
        }
    }
}

/// Follows a push's events to its result. Returning early drops the
/// response stream, which cancels the call.
async fn follow(
    mut events: impl Stream<Item = Result<pb::PushResponse, tonic::Status>> + Unpin,
    failed: &ReadFailure,
    mut on_progress: impl FnMut(&pb::Progress),
) -> Result<pb::PushResult, Error> {
    use pb::push_response::Event;
    while let Some(event) = events.next().await {
        match event {
            Ok(pb::PushResponse {
                event: Some(Event::Progress(p)),
            }) => on_progress(&p),
            Ok(pb::PushResponse {
                event: Some(Event::Result(r)),
            }) => return Ok(r),
            Ok(_) => {}
            Err(status) => return Err(read_error(failed).unwrap_or(status.into())),
        }
    }
    Err(read_error(failed).unwrap_or_else(|| {
        Error::local(Code::Internal, "the daemon ended the push without a result")
    }))
}

/// A file [`pull`] wrote.
#[derive(Debug, Clone)]
pub struct PulledFile {
    /// The layer's title.
    pub name: String,
    /// Where it was written.
    pub path: PathBuf,
    /// The layer's descriptor.
    pub layer: pb::Descriptor,
}

/// What [`pull`] did.
#[derive(Debug, Clone, Default)]
pub struct Pulled {
    /// The artifact's manifest descriptor.
    pub manifest: pb::Descriptor,
    /// The manifest's canonical reference by digest.
    pub reference: String,
    /// The files written, in manifest order.
    pub files: Vec<PulledFile>,
}

/// What [`pull`] reports as it goes.
#[derive(Debug)]
pub enum PullEvent<'a> {
    /// The daemon's progress on the current file.
    Progress(&'a pb::Progress),
    /// A file is in place under its final name.
    File(&'a PulledFile),
}

/// Pulls the files of the artifact `request` names into `out` (created if
/// missing), as `satchel pull` does: each under its title, which must be a
/// plain relative path, none a directory of another. Nothing is written
/// through a symbolic link inside `out`: one among the directories is
/// FAILED_PRECONDITION, one at a final name is replaced.
pub async fn pull(
    client: &mut Client,
    request: pb::PullRequest,
    out: &Path,
    mut on_event: impl FnMut(PullEvent<'_>),
) -> Result<Pulled, Error> {
    use pb::pull_response::Payload;
    let mut stream = client.pull(request).await?.into_inner();
    let mut pulled = Pulled::default();
    let mut current: Option<Partial> = None;
    let mut dir: Option<OutDir> = None;
    let mut expected: Option<HashSet<String>> = None;
    let result = async {
        while let Some(message) = stream.next().await {
            match message?.payload {
                Some(Payload::Manifest(m)) => {
                    let titles = manifest_titles(&m.content)?;
                    check_titles(titles.iter().map(String::as_str))?;
                    expected = Some(titles.into_iter().collect());
                    pulled.manifest = m.manifest.unwrap_or_default();
                    pulled.reference = m.reference;
                }
                Some(Payload::File(header)) => {
                    if current.is_some() {
                        return Err(broken("a file started before the last one ended"));
                    }
                    let out = match &dir {
                        Some(d) => d,
                        None => dir.insert(open_dir(out).await?),
                    };
                    let layer = header.layer.unwrap_or_default();
                    let name = header.name;
                    current = Some(Partial::create(out, expected.as_ref(), name, layer).await?);
                }
                Some(Payload::Chunk(data)) => {
                    let p = current
                        .as_mut()
                        .ok_or_else(|| broken("file bytes arrived outside a file"))?;
                    p.write(&data).await?;
                }
                Some(Payload::Progress(p)) => on_event(PullEvent::Progress(&p)),
                Some(Payload::Done(done)) => {
                    let p = current
                        .take()
                        .ok_or_else(|| broken("a file ended that never started"))?;
                    let file = p.commit(&done.digest).await?;
                    if let Some(names) = expected.as_mut() {
                        names.remove(&file.name);
                    }
                    on_event(PullEvent::File(&file));
                    pulled.files.push(file);
                }
                None => {}
            }
        }
        if let Some(p) = &current {
            return Err(broken(&format!("the pull ended inside {}", shown(&p.name))));
        }
        Ok(())
    }
    .await;
    if let Some(p) = current.take() {
        p.discard().await;
    }
    result.map(|()| pulled)
}

/// Opens (making it if missing) the output directory.
async fn open_dir(out: &Path) -> Result<OutDir, Error> {
    let out = out.to_path_buf();
    tokio::task::spawn_blocking(move || OutDir::open(&out))
        .await
        .map_err(|e| Error::local(Code::Internal, format!("cannot open the directory: {e}")))?
}

fn broken(what: &str) -> Error {
    Error::local(
        Code::Internal,
        format!("the daemon's pull stream broke: {what}"),
    )
}

/// A file being received under a temporary name beside its final one.
struct Partial {
    name: String,
    placement: Placement,
    file: tokio::fs::File,
    layer: pb::Descriptor,
    size: u64,
}

impl Partial {
    /// Checks `name` (alone, and as one the manifest named) and creates its
    /// temporary file inside `out` (see [`crate::write`]).
    async fn create(
        out: &OutDir,
        expected: Option<&HashSet<String>>,
        name: String,
        layer: pb::Descriptor,
    ) -> Result<Self, Error> {
        check_title(&name)?;
        if expected.is_some_and(|names| !names.contains(&name)) {
            return Err(broken(&format!(
                "it sent {}, which the manifest does not name",
                shown(&name)
            )));
        }
        let (out, title) = (out.clone(), name.clone());
        let (placement, file) = tokio::task::spawn_blocking(move || out.create(&title))
            .await
            .map_err(|e| Error::local(Code::Internal, format!("file creation failed: {e}")))??;
        Ok(Partial {
            name,
            placement,
            file: tokio::fs::File::from_std(file),
            layer,
            size: 0,
        })
    }

    async fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        self.size += data.len() as u64;
        self.file.write_all(data).await.map_err(|e| {
            Error::io(
                format!("cannot write {}", self.placement.path().display()),
                e,
            )
        })
    }

    /// Renames the file into place if the daemon verified the layer's
    /// digest (it hashed every byte it sent) and the size we counted agrees.
    async fn commit(mut self, verified: &str) -> Result<PulledFile, Error> {
        let synced = async {
            self.file.flush().await?;
            self.file.sync_data().await
        }
        .await;
        if let Err(e) = synced {
            let what = format!("cannot write {}", self.placement.path().display());
            self.discard().await;
            return Err(Error::io(what, e));
        }
        if verified != self.layer.digest || self.size != self.layer.size {
            let message = format!(
                "{}: expected {} ({} bytes), the daemon verified {:?} and sent {} bytes",
                shown(&self.name),
                self.layer.digest,
                self.layer.size,
                verified,
                self.size
            );
            self.discard().await;
            return Err(Error::local(Code::DataLoss, message));
        }
        drop(self.file);
        let path = tokio::task::spawn_blocking(move || self.placement.commit())
            .await
            .map_err(|e| Error::local(Code::Internal, format!("rename failed: {e}")))??;
        Ok(PulledFile {
            name: self.name,
            path,
            layer: self.layer,
        })
    }

    async fn discard(self) {
        drop(self.file);
        let placement = self.placement;
        let _ = tokio::task::spawn_blocking(move || placement.discard()).await;
    }
}

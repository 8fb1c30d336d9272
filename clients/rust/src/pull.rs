//! Files down: [`pull`] writes an artifact's files into a directory, by
//! feeding the daemon's Pull answer to [`pull_stream`], the state machine
//! every pull runs (and `clients/conformance/pull_streams.json` checks).
//!
//! The manifest comes first; all its titles are checked against each other
//! ([`crate::title`]) before anything is made. The output directory is
//! made when the first file starts. Each file is written under a temporary
//! name, through directory handles that never follow a link
//! ([`crate::write`]), while this client counts and hashes its bytes; it
//! takes its final name only once the daemon's FileDone names the layer's
//! digest and the size and SHA-256 of what was written agree with the
//! layer. On any failure the temporary file is removed.
//!
//! Over the daemon's Unix socket, [`pull`] asks for the local file handoff
//! ([`crate::handoff`]): the daemon gets each temporary file's descriptor
//! and fills it itself, from its content store or the registry, so no byte
//! crosses the gRPC stream. The daemon's FileDone then stands for the
//! digest check (it verified every byte it wrote); this client still
//! checks the layer's digest and the file's size before the rename.
//!
//! Files are not synced to disk before the rename (neither the ORAS CLI
//! nor `cp` does): the final name never shows a partial file while the
//! system runs; a power cut may lose a pull that just finished.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use std::io::Write;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;
use tonic::Code;

use crate::handoff::Handoff;
use crate::title::{check_title, check_titles, manifest_titles, shown};
use crate::unpack;
use crate::write::{OutDir, Placement};
use crate::{pb, Client, Error};

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
    /// The signature that verified the manifest, when the pull was
    /// verified (keys in the request, or the daemon's policy).
    pub signature: Option<pb::Signature>,
}

/// What [`pull`] reports as it goes.
#[derive(Debug)]
pub enum PullEvent<'a> {
    /// The daemon's progress on the current file.
    Progress(&'a pb::Progress),
    /// A file is in place under its final name.
    File(&'a PulledFile),
}

/// Pulls the files of the artifact `request` names into `out` (created
/// when the first file starts), as `satchel pull` does: each under its
/// title, which must be a plain relative path, none a directory of
/// another. Nothing is written through a symbolic link inside `out`: one
/// among the directories is FAILED_PRECONDITION, one at a final name is
/// replaced. A request with `subject` and `artifact_type` pulls the newest
/// such attachment of the subject ([`pull_attachment`]).
pub async fn pull(
    client: &mut Client,
    mut request: pb::PullRequest,
    out: &Path,
    on_event: impl FnMut(PullEvent<'_>),
) -> Result<Pulled, Error> {
    // Asked for only when the files socket is there to be reached (a
    // container may mount the gRPC socket alone).
    let files_socket = client
        .files_socket()
        .filter(|p| p.exists())
        .map(Path::to_path_buf);
    request.local_files = files_socket.is_some();
    let verifying = !request.verify_keys.is_empty();
    let stream = client.pull(request).await?.into_inner();
    run(stream, out, files_socket, verifying, on_event).await
}

/// Pulls the newest attachment of `artifact_type` on the manifest
/// `subject` into `out`, in one call: the daemon finds it among the
/// subject's referrers (NOT_FOUND when there is none) and streams its
/// files as [`pull`] does.
pub async fn pull_attachment(
    client: &mut Client,
    subject: pb::Target,
    artifact_type: &str,
    out: &Path,
    on_event: impl FnMut(PullEvent<'_>),
) -> Result<Pulled, Error> {
    pull_verified_attachment(client, subject, artifact_type, Vec::new(), out, on_event).await
}

/// Pulls the newest attachment of `artifact_type` on `subject` that is
/// signed by one of `keys` (PEM public keys; none: as the daemon's policy
/// says, which may need no signature), in one call; nothing is
/// written when none verifies (PERMISSION_DENIED, or FAILED_PRECONDITION
/// when none is signed, listing each candidate). [`Pulled::signature`]
/// names the signature that verified.
pub async fn pull_verified_attachment(
    client: &mut Client,
    subject: pb::Target,
    artifact_type: &str,
    keys: Vec<bytes::Bytes>,
    out: &Path,
    on_event: impl FnMut(PullEvent<'_>),
) -> Result<Pulled, Error> {
    let request = pb::PullRequest {
        subject: Some(subject),
        artifact_type: artifact_type.to_string(),
        verify_keys: keys,
        ..Default::default()
    };
    pull(client, request, out, on_event).await
}

/// Writes the files of a Pull answer, `stream`, into `out`: the state
/// machine under [`pull`], for any source of `PullResponse` messages. The
/// stream's own error status is returned unchanged; a stream that breaks
/// the protocol is INTERNAL, wrong bytes DATA_LOSS, an unsafe title
/// INVALID_ARGUMENT.
pub async fn pull_stream(
    stream: impl Stream<Item = Result<pb::PullResponse, tonic::Status>> + Unpin,
    out: &Path,
    on_event: impl FnMut(PullEvent<'_>),
) -> Result<Pulled, Error> {
    run(stream, out, None, false, on_event).await
}

/// [`pull_stream`], with the daemon's files socket when the request asked
/// for the local file handoff.
async fn run(
    mut stream: impl Stream<Item = Result<pb::PullResponse, tonic::Status>> + Unpin,
    out: &Path,
    files_socket: Option<PathBuf>,
    verifying: bool,
    mut on_event: impl FnMut(PullEvent<'_>),
) -> Result<Pulled, Error> {
    let mut state = PullState::new(out, files_socket);
    state.verifying = verifying;
    let result = async {
        while let Some(message) = stream.next().await {
            state.step(message?, &mut on_event).await?;
        }
        state.finish()
    }
    .await;
    if let Some(p) = state.current.take() {
        p.discard().await;
    }
    result.map(|()| state.pulled)
}

/// Where a pull stands between two messages.
struct PullState<'o> {
    out: &'o Path,
    pulled: Pulled,
    /// The file being received.
    current: Option<Partial>,
    /// The output directory, once the first file started.
    dir: Option<OutDir>,
    /// The titles the manifest named that have not arrived yet; `None`
    /// until the manifest came.
    expected: Option<HashSet<String>>,
    /// Where the request asked for the local file handoff, if it did.
    files_socket: Option<PathBuf>,
    /// The handoff, once the daemon agreed to it.
    handoff: Option<Handoff>,
    /// Whether the request sent keys: then a manifest the daemon did not
    /// say it verified (one older than Verify ignores the keys) is refused
    /// before a file is written.
    verifying: bool,
}

impl<'o> PullState<'o> {
    fn new(out: &'o Path, files_socket: Option<PathBuf>) -> Self {
        PullState {
            out,
            pulled: Pulled::default(),
            current: None,
            dir: None,
            expected: None,
            files_socket,
            handoff: None,
            verifying: false,
        }
    }

    async fn step(
        &mut self,
        message: pb::PullResponse,
        on_event: &mut impl FnMut(PullEvent<'_>),
    ) -> Result<(), Error> {
        use pb::pull_response::Payload;
        match message.payload {
            Some(Payload::Manifest(m)) => self.manifest(m)?,
            Some(Payload::File(header)) => self.start(header).await?,
            Some(Payload::Chunk(data)) => {
                let p = self
                    .current
                    .as_mut()
                    .ok_or_else(|| broken("file bytes arrived outside a file"))?;
                p.write(data).await?;
            }
            Some(Payload::Progress(p)) => on_event(PullEvent::Progress(&p)),
            Some(Payload::Done(done)) => {
                let p = self
                    .current
                    .take()
                    .ok_or_else(|| broken("a file ended that never started"))?;
                let file = p.commit(&done.digest).await?;
                on_event(PullEvent::File(&file));
                self.pulled.files.push(file);
            }
            None => {}
        }
        Ok(())
    }

    fn manifest(&mut self, m: pb::PulledManifest) -> Result<(), Error> {
        if self.expected.is_some() {
            return Err(broken("a second manifest arrived"));
        }
        if self.verifying && m.signature.is_none() {
            return Err(Error::local(
                Code::FailedPrecondition,
                "the daemon did not verify the artifact although keys were given (a satcheld older than Verify?); nothing was written",
            ));
        }
        if !m.local_ticket.is_empty() {
            let socket = self
                .files_socket
                .take()
                .ok_or_else(|| broken("it offered a local file handoff nobody asked for"))?;
            if m.local_ticket.len() != 16 {
                return Err(broken("its local handoff ticket is not 16 bytes"));
            }
            self.handoff = Some(Handoff::new(socket, m.local_ticket.to_vec()));
        }
        let titles = manifest_titles(&m.content)?;
        check_titles(titles.iter().map(String::as_str))?;
        self.expected = Some(titles.into_iter().collect());
        self.pulled.manifest = m.manifest.unwrap_or_default();
        self.pulled.reference = m.reference;
        self.pulled.signature = m.signature;
        Ok(())
    }

    /// A file header: the directory is made now, then the title is checked
    /// alone and as one the manifest named and has not sent yet.
    async fn start(&mut self, header: pb::FileHeader) -> Result<(), Error> {
        if self.current.is_some() {
            return Err(broken("a file started before the last one ended"));
        }
        if self.expected.is_none() {
            return Err(broken("a file started before the manifest"));
        }
        let dir = match &self.dir {
            Some(d) => d,
            None => self.dir.insert(open_dir(self.out).await?),
        };
        let name = header.name;
        check_title(&name)?;
        let expected = self.expected.as_mut().expect("checked above");
        if !expected.remove(&name) {
            return Err(broken(&format!(
                "it sent {}, which the manifest does not name or was sent already",
                shown(&name)
            )));
        }
        let layer = header.layer.unwrap_or_default();
        let partial = Partial::create(dir, name, layer, self.handoff.is_some()).await?;
        if let (Some(handoff), Body::Handed(file)) = (&mut self.handoff, &partial.body) {
            if let Err(e) = handoff.pass(file).await {
                partial.discard().await;
                return Err(e);
            }
        }
        self.current = Some(partial);
        Ok(())
    }

    fn finish(&self) -> Result<(), Error> {
        match &self.current {
            Some(p) => Err(broken(&format!("the pull ended inside {}", shown(&p.name)))),
            None => Ok(()),
        }
    }
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
    /// The output directory, for a layer to unpack.
    out: OutDir,
    placement: Placement,
    body: Body,
    layer: pb::Descriptor,
    /// A directory layer's archive, opened for reading when it was made:
    /// what is unpacked is the file that was checked, whatever its name
    /// comes to point at.
    archive: Option<std::fs::File>,
}

/// Who writes a [`Partial`]'s bytes.
enum Body {
    /// This client, from the stream's chunks: counted, hashed and written
    /// by a [`Sink`] on a blocking thread, so the stream is read on while
    /// the disk and the hash work.
    Stream(Sink),
    /// The daemon, through the local handoff; the file is held to check
    /// its size at the end.
    Handed(std::fs::File),
}

impl Partial {
    /// Creates the temporary file for `name`, already checked, inside `out`
    /// (see [`crate::write`]).
    /// The daemon fills it if `handed`.
    async fn create(
        out: &OutDir,
        name: String,
        layer: pb::Descriptor,
        handed: bool,
    ) -> Result<Self, Error> {
        let (dir, title) = (out.clone(), name.clone());
        let scratch = unpack::is_directory(&layer);
        let (placement, file) = tokio::task::spawn_blocking(move || match scratch {
            true => dir.create_scratch(&title),
            false => dir.create(&title),
        })
        .await
        .map_err(|e| Error::local(Code::Internal, format!("file creation failed: {e}")))??;
        let archive = match scratch {
            true => Some(file.try_clone().map_err(|e| {
                Error::io(format!("cannot reopen {}", placement.path().display()), e)
            })?),
            false => None,
        };
        let body = match handed {
            true => Body::Handed(file),
            false => Body::Stream(Sink::start(file)),
        };
        Ok(Partial {
            name,
            out: out.clone(),
            placement,
            body,
            layer,
            archive,
        })
    }

    async fn write(&mut self, data: Bytes) -> Result<(), Error> {
        let Body::Stream(sink) = &mut self.body else {
            return Err(broken(
                "file bytes arrived for a file the daemon fills itself",
            ));
        };
        if sink.send(data).await {
            return Ok(());
        }
        // The writer stopped: it failed, and says why.
        let failed = std::mem::replace(sink, Sink::closed());
        match failed.finish().await {
            Err(e) => Err(self.io_error(e)),
            Ok(_) => Err(self.io_error(std::io::Error::other("the writer stopped"))),
        }
    }

    fn io_error(&self, e: std::io::Error) -> Error {
        Error::io(
            format!("cannot write {}", self.placement.path().display()),
            e,
        )
    }

    /// Why the file must not take its final name, if it must not: the
    /// daemon verified another digest than the layer's, or what was
    /// written differs from the layer in size or (when this client hashed
    /// it) SHA-256.
    fn mismatch(&self, verified: &str, written: &Written) -> Option<String> {
        let sha256_layer = self.layer.digest.starts_with("sha256:");
        let bytes_wrong = sha256_layer && written.sha256 != self.layer.digest && written.hashed;
        if verified == self.layer.digest && written.size == self.layer.size && !bytes_wrong {
            return None;
        }
        Some(format!(
            "{}: expected {} ({} bytes), the daemon verified {:?}; received {} bytes of {}",
            shown(&self.name),
            self.layer.digest,
            self.layer.size,
            verified,
            written.size,
            written.sha256
        ))
    }

    /// Renames the file into place if it checks out (see [`Self::mismatch`]),
    /// once every byte is written.
    async fn commit(mut self, verified: &str) -> Result<PulledFile, Error> {
        let written = match std::mem::replace(&mut self.body, Body::Stream(Sink::closed())) {
            Body::Stream(sink) => sink.finish().await,
            Body::Handed(file) => file.metadata().map(|m| Written {
                size: m.len(),
                sha256: "(filled by the daemon)".into(),
                hashed: false,
            }),
        };
        let written = match written {
            Ok(w) => w,
            Err(e) => {
                let e = self.io_error(e);
                self.discard().await;
                return Err(e);
            }
        };
        if let Some(message) = self.mismatch(verified, &written) {
            self.discard().await;
            return Err(Error::local(Code::DataLoss, message));
        }
        let (name, layer) = (self.name, self.layer);
        let (placement, out, archive) = (self.placement, self.out, self.archive);
        let (title, desc) = (name.clone(), layer.clone());
        let path = tokio::task::spawn_blocking(move || {
            let Some(mut archive) = archive else {
                return placement.commit();
            };
            // The archive checked out; the directory is made from it, and
            // the archive (dropped with `placement`) removed.
            std::io::Seek::rewind(&mut archive).map_err(|e| {
                Error::io(
                    format!("cannot read back {}", placement.path().display()),
                    e,
                )
            })?;
            unpack::unpack(archive, &out, &title, &desc, unpack::Limits::default())
        })
        .await
        .map_err(|e| Error::local(Code::Internal, format!("rename failed: {e}")))??;
        Ok(PulledFile { name, path, layer })
    }

    async fn discard(self) {
        if let Body::Stream(sink) = self.body {
            let _ = sink.finish().await;
        }
        let placement = self.placement;
        let _ = tokio::task::spawn_blocking(move || placement.discard()).await;
    }
}

/// What was written: its size and, when this client hashed it, SHA-256.
struct Written {
    size: u64,
    sha256: String,
    hashed: bool,
}

/// How many received pieces may wait for the disk before the stream waits.
const QUEUED_PIECES: usize = 32;

/// A writer on a blocking thread: counts and writes the pieces it is sent
/// (shared `Bytes`, not copies) while a second thread hashes them.
struct Sink {
    tx: Option<mpsc::Sender<Bytes>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<Written>>>,
}

impl Sink {
    fn start(mut file: std::fs::File) -> Sink {
        let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUED_PIECES);
        let task = tokio::task::spawn_blocking(move || {
            // The hash runs on a thread of its own, beside the writes.
            let (to_hash, hash_rx) = std::sync::mpsc::sync_channel::<Bytes>(QUEUED_PIECES);
            let hasher = std::thread::spawn(move || {
                let mut hasher = Sha256::new();
                for piece in hash_rx {
                    hasher.update(&piece);
                }
                hasher.finalize()
            });
            let mut size = 0u64;
            while let Some(piece) = rx.blocking_recv() {
                let _ = to_hash.send(piece.clone());
                file.write_all(&piece)?;
                size += piece.len() as u64;
            }
            drop(to_hash);
            let hash = hasher
                .join()
                .map_err(|_| std::io::Error::other("hashing failed"))?;
            let sha256 = format!("sha256:{}", hex::encode(hash));
            Ok(Written {
                size,
                sha256,
                hashed: true,
            })
        });
        Sink {
            tx: Some(tx),
            task: Some(task),
        }
    }

    /// A sink already finished, in the place of one taken.
    fn closed() -> Sink {
        Sink {
            tx: None,
            task: None,
        }
    }

    /// Hands a piece over; false if the writer has stopped.
    async fn send(&mut self, piece: Bytes) -> bool {
        match &self.tx {
            Some(tx) => tx.send(piece).await.is_ok(),
            None => false,
        }
    }

    /// Waits for the writer to write everything it was sent.
    async fn finish(mut self) -> std::io::Result<Written> {
        drop(self.tx.take());
        match self.task.take() {
            Some(task) => task.await.map_err(std::io::Error::other)?,
            None => Err(std::io::Error::other("the writer has finished")),
        }
    }
}

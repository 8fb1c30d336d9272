//! Push and Attach: a header naming the files, then their bytes, file by
//! file. Each file is uploaded as a layer (or skipped when the target has
//! it, or taken from the content store), then the config, the manifest and
//! the tags follow. The manifest never names bytes the daemon did not get
//! and check.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use satchel_oci::artifact::Pack;
use satchel_oci::digest::{self, Digest, Expected, Verifier};
use satchel_oci::manifest::{
    self, Descriptor, ANNOTATION_TITLE, ARTIFACT_TYPE_UNKNOWN, MEDIA_TYPE_EMPTY,
    MEDIA_TYPE_LAYER_TAR, MEDIA_TYPE_MANIFEST,
};
use satchel_oci::target::Absent;
use satchel_oci::{Error, ErrorKind, Result, Target};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::target::{Resolved, TargetSpec};
use super::{invalid, Service};

/// The largest inline config a push may carry.
const MAX_CONFIG_BYTES: usize = 4 << 20;
/// How many chunks may wait between the caller's stream and an upload.
const UPLOAD_QUEUE: usize = 4;

/// The artifact a push makes.
#[derive(Debug, Clone, Default)]
pub struct ArtifactSpec {
    /// The manifest's artifactType; empty for ORAS's unknown type.
    pub artifact_type: String,
    /// The files, in the order their bytes will arrive.
    pub files: Vec<FileSpec>,
    /// An inline config; `None` for the empty config.
    pub config: Option<ConfigSpec>,
    /// The manifest's annotations.
    pub annotations: BTreeMap<String, String>,
    /// Tags besides the one the target names.
    pub tags: Vec<String>,
}

/// One file of a push.
#[derive(Debug, Clone, Default)]
pub struct FileSpec {
    /// Its title: a relative path the puller writes it under.
    pub name: String,
    /// The layer's media type; empty for a tar layer.
    pub media_type: String,
    /// Its digest when the caller knows it ("" otherwise).
    pub digest: String,
    /// Its size when the caller knows it.
    pub size: Option<u64>,
    /// The layer's annotations (the title is added).
    pub annotations: BTreeMap<String, String>,
    /// Take the bytes from the content store; no chunks are sent.
    pub from_content_store: bool,
}

/// An inline config.
#[derive(Debug, Clone, Default)]
pub struct ConfigSpec {
    /// Its media type; empty for the empty config's.
    pub media_type: String,
    /// Its bytes.
    pub data: Bytes,
}

/// What a push made.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The manifest by digest.
    pub reference: String,
    /// The manifest's descriptor, with its artifact type and annotations.
    pub manifest: Descriptor,
    /// The layers, in file order.
    pub layers: Vec<Descriptor>,
    /// The tags now naming it.
    pub tags: Vec<String>,
    /// How many files the target had already.
    pub blobs_skipped: u32,
    /// The subject, for an attach.
    pub subject: Option<Descriptor>,
    /// What went wrong after the manifest was stored (a stale referrers
    /// index left behind, say).
    pub warnings: Vec<String>,
}

/// A push whose target is open, ready to read the caller's bytes. Made in
/// the caller's scope by [`Service::push`] or [`Service::attach`].
pub struct PushJob {
    resolved: Resolved,
    subject: Option<String>,
    artifact: ArtifactSpec,
}

/// How a push reports bytes received: file name, bytes so far, size.
pub type Progress<'a> = &'a (dyn Fn(&str, u64, Option<u64>) + Send + Sync);

impl Service {
    /// A push of a standalone artifact to the tag `target` names
    /// (`latest` when none).
    pub fn push(&self, target: TargetSpec, artifact: ArtifactSpec) -> Result<PushJob> {
        let resolved = self.target(target)?;
        if resolved.name.as_deref().is_some_and(|n| n.contains(':')) {
            return Err(invalid("push to a tag, not a digest"));
        }
        let name = Some(resolved.name_or_latest());
        Ok(PushJob {
            resolved: Resolved { name, ..resolved },
            subject: None,
            artifact,
        })
    }

    /// A push of an artifact whose subject `subject` names. The attachment
    /// itself is pushed by digest; only its explicit tags apply.
    pub fn attach(&self, subject: TargetSpec, artifact: ArtifactSpec) -> Result<PushJob> {
        if artifact.artifact_type.is_empty() {
            return Err(invalid("attach needs an artifact type"));
        }
        let resolved = self.target(subject)?;
        let subject = Some(resolved.name_or_latest());
        Ok(PushJob {
            resolved: Resolved {
                name: None,
                ..resolved
            },
            subject,
            artifact,
        })
    }
}

impl PushJob {
    /// Reads the files' bytes from `inbound` — `(file index, bytes)` in
    /// file order — and pushes the artifact, telling `progress` as bytes
    /// arrive.
    pub async fn run<S>(
        self,
        service: &Service,
        inbound: S,
        progress: Progress<'_>,
    ) -> Result<Pushed>
    where
        S: Stream<Item = Result<(u32, Bytes)>> + Send + Unpin,
    {
        let target = &self.resolved.target;
        let subject = async {
            match &self.subject {
                Some(r) => self.resolved.resolve_named(r).await.map(Some),
                None => Ok(None),
            }
        };
        let files = match check_files(&self.artifact.files) {
            Ok(files) => files,
            // A subject that does not resolve is the error reported, as
            // when it was resolved first.
            Err(e) => return Err(subject.await.err().unwrap_or(e)),
        };
        // The subject, the config and the files go at once, so their
        // round trips overlap. A file that fails is reported before the
        // config; the subject's error before either, and at once (blobs
        // already uploaded are left, as ORAS leaves them). The manifest is
        // pushed only when all three succeeded. A layout, where nothing is
        // a round trip, gets the config only after the files, so a file
        // that fails leaves no blob at all.
        let work = async {
            let config = push_config(target, self.artifact.config.clone(), files.is_empty());
            let layers = self.push_files(service, &files, inbound, progress);
            if let Target::Layout(_) = target {
                let layers = layers.await?;
                return Ok((config.await?, layers));
            }
            let (config, layers) = tokio::join!(config, layers);
            let layers = layers?;
            Ok::<_, Error>((config?, layers))
        };
        let (subject, (config, (layers, skipped))) = first_error(subject, work).await?;
        self.finish(config, layers, subject, skipped).await
    }

    /// Pushes each file in turn: their layers, and how many the target had.
    async fn push_files<S>(
        &self,
        service: &Service,
        files: &[FileInfo],
        inbound: S,
        progress: Progress<'_>,
    ) -> Result<(Vec<Descriptor>, u32)>
    where
        S: Stream<Item = Result<(u32, Bytes)>> + Send + Unpin,
    {
        let target = &self.resolved.target;
        let mut inbound = Files::new(inbound, files.len());
        let mut layers = Vec::with_capacity(files.len());
        let mut skipped = 0u32;
        for (index, file) in files.iter().enumerate() {
            let (digest, size, had) =
                push_file(service, target, file, index as u32, &mut inbound, progress).await?;
            skipped += u32::from(had);
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
        if let Some(extra) = inbound.leftover().await? {
            return Err(invalid(format!(
                "a chunk for file {extra} arrived after its turn or for a file the header does not list"
            )));
        }
        Ok((layers, skipped))
    }

    /// Stores the manifest and its tags.
    async fn finish(
        self,
        config: Descriptor,
        layers: Vec<Descriptor>,
        subject: Option<Descriptor>,
        skipped: u32,
    ) -> Result<Pushed> {
        let PushJob {
            resolved, artifact, ..
        } = self;
        let target = resolved.target;
        let artifact_type = match artifact.artifact_type.as_str() {
            "" => ARTIFACT_TYPE_UNKNOWN.to_string(),
            t => t.to_string(),
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
        let first = tags.first().map(String::as_str);
        let pushed = target
            .push_manifest(first, MEDIA_TYPE_MANIFEST, content.clone())
            .await?;
        for tag in tags.iter().skip(1) {
            target.tag(&pushed.descriptor, content.clone(), tag).await?;
        }
        for warning in &pushed.warnings {
            tracing::warn!(%warning, "push finished with a warning");
        }
        let mut desc = pushed.descriptor;
        desc.artifact_type = manifest.artifact_type.clone();
        desc.annotations = manifest.annotations.clone();
        let reference = target.reference_for(&desc.digest);
        tracing::info!(%reference, files = layers.len(), skipped, "pushed artifact");
        Ok(Pushed {
            reference,
            manifest: desc,
            layers,
            tags,
            blobs_skipped: skipped,
            subject,
            warnings: pushed.warnings,
        })
    }
}

/// Both results, or the first error of `first` as soon as it fails, else
/// the error of `second`.
async fn first_error<A, B>(
    first: impl std::future::Future<Output = Result<A>>,
    second: impl std::future::Future<Output = Result<B>>,
) -> Result<(A, B)> {
    tokio::pin!(first, second);
    tokio::select! {
        biased;
        a = &mut first => Ok((a?, second.await?)),
        b = &mut second => Ok((first.await?, b?)),
    }
}

/// A file of a push, checked.
struct FileInfo {
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

/// Checks every file's name (alone and against the others), digest and
/// size before anything is uploaded.
fn check_files(files: &[FileSpec]) -> Result<Vec<FileInfo>> {
    manifest::validate_titles(files.iter().map(|f| f.name.as_str()))?;
    files
        .iter()
        .map(|f| {
            let digest = match f.digest.as_str() {
                "" => None,
                d => Some(digest::parse(d)?),
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
                media_type: match f.media_type.as_str() {
                    "" => MEDIA_TYPE_LAYER_TAR.to_string(),
                    m => m.to_string(),
                },
                size: f.size,
                digest,
                annotations: f.annotations.clone(),
            })
        })
        .collect()
}

/// Pushes file `index` (or finds the target has it): its digest, size,
/// and whether the target had it already.
async fn push_file<S>(
    service: &Service,
    target: &Target,
    file: &FileInfo,
    index: u32,
    inbound: &mut Files<S>,
    progress: Progress<'_>,
) -> Result<(Digest, u64, bool)>
where
    S: Stream<Item = Result<(u32, Bytes)>> + Send + Unpin,
{
    let known = file.known();
    // One upload of a blob at a time; a second push of it finds it there.
    let _guard = match &known {
        Some((d, _)) => target.lock_blob(d).await,
        None => None,
    };
    // The existence check opens the upload session alongside.
    let absent = match &known {
        Some((d, _)) => target.check_blob(d).await?,
        None => None,
    };
    let already = known.is_some() && absent.is_none();
    match known {
        Some((d, size)) if file.from_store => {
            if inbound.next(index).await?.is_some() {
                return Err(invalid(format!(
                    "file {:?} comes from the content store; send no chunks for it",
                    file.name
                )));
            }
            if let Some(absent) = absent {
                let desc = Descriptor {
                    media_type: file.media_type.clone(),
                    digest: d.clone(),
                    size,
                    artifact_type: None,
                    annotations: Default::default(),
                };
                let body = service.store()?.get(&desc).await.ok_or_else(|| {
                    Error::new(
                        ErrorKind::NotFound,
                        format!("{d} is not in the content store"),
                    )
                })?;
                target
                    .push_absent(absent, Expected::exactly(&d, size), body)
                    .await?;
            }
            Ok((d, size, already))
        }
        Some((d, size)) if already => {
            // Still read (and check) what the caller sends, so the
            // manifest never names bytes it did not get.
            let mut verifier = Verifier::new(&d, Some(size))?;
            while let Some(data) = inbound.next(index).await? {
                verifier.update(&data)?;
            }
            verifier.finish()?;
            Ok((d, size, true))
        }
        _ => {
            let (d, size) = upload(target, absent, file, index, inbound, progress).await?;
            Ok((d, size, false))
        }
    }
}

/// Streams file `index` from the caller into an upload to `target`.
async fn upload<S>(
    target: &Target,
    absent: Option<Absent>,
    file: &FileInfo,
    index: u32,
    inbound: &mut Files<S>,
    progress: Progress<'_>,
) -> Result<(Digest, u64)>
where
    S: Stream<Item = Result<(u32, Bytes)>> + Send + Unpin,
{
    let (tx, rx) = mpsc::channel::<Result<Bytes>>(UPLOAD_QUEUE);
    let expected = Expected {
        digest: file.digest.as_ref(),
        size: file.size,
    };
    let body = ReceiverStream::new(rx).boxed();
    let upload = async {
        match absent {
            Some(absent) => target.push_absent(absent, expected, body).await,
            None => target.push_blob(expected, body).await,
        }
    };
    let feed = async {
        // Taken by value: dropping `tx` on return ends the upload's body.
        let tx = tx;
        let mut done = 0u64;
        loop {
            match inbound.next(index).await {
                Ok(Some(data)) => {
                    let len = data.len() as u64;
                    if tx.send(Ok(data)).await.is_err() {
                        // The upload gave up; its error is the one to report.
                        return Ok(());
                    }
                    done += len;
                    progress(&file.name, done, file.size);
                }
                Ok(None) => return Ok(()),
                Err(e) => {
                    let failed =
                        Error::new(ErrorKind::InvalidArgument, "the caller's stream failed");
                    let _ = tx.send(Err(failed)).await;
                    return Err(e);
                }
            }
        }
    };
    let (uploaded, fed) = tokio::join!(upload, feed);
    fed?;
    let stored = uploaded?;
    // An upload of a declared size stops reading at that size; bytes past
    // it mean the caller's size was wrong.
    if inbound.next(index).await?.is_some() {
        return Err(Error::new(
            ErrorKind::DataLoss,
            format!("file {:?} has more bytes than its declared size", file.name),
        ));
    }
    Ok(stored)
}

/// Pushes the config (the empty one unless given), and the empty blob the
/// manifest's placeholder layer needs when there are no files.
async fn push_config(
    target: &Target,
    config: Option<ConfigSpec>,
    no_layers: bool,
) -> Result<Descriptor> {
    let empty = || Bytes::from_static(manifest::EMPTY_JSON);
    let config = match config {
        Some(c) => {
            if c.data.len() > MAX_CONFIG_BYTES {
                return Err(invalid("the config is larger than 4 MiB"));
            }
            let media_type = match c.media_type.as_str() {
                "" => MEDIA_TYPE_EMPTY,
                m => m,
            };
            target.push_bytes(media_type, c.data).await?
        }
        None => target.push_bytes(MEDIA_TYPE_EMPTY, empty()).await?,
    };
    if no_layers {
        target.push_bytes(MEDIA_TYPE_EMPTY, empty()).await?;
    }
    Ok(config)
}

/// The caller's chunks taken file by file: each file's bytes end where a
/// chunk of a later file begins.
struct Files<S> {
    inbound: S,
    /// A chunk of a later file, read while looking for the end of this one.
    pending: Option<(u32, Bytes)>,
    declared: usize,
}

impl<S> Files<S>
where
    S: Stream<Item = Result<(u32, Bytes)>> + Send + Unpin,
{
    fn new(inbound: S, declared: usize) -> Self {
        Files {
            inbound,
            pending: None,
            declared,
        }
    }

    /// The next chunk of any file: the one put back, else the stream's; a
    /// chunk for a file the header does not declare is the caller's
    /// mistake, not a short file.
    async fn take(&mut self) -> Result<Option<(u32, Bytes)>> {
        let (file, data) = match self.pending.take() {
            Some(c) => c,
            None => match self.inbound.next().await {
                Some(c) => c?,
                None => return Ok(None),
            },
        };
        if file as usize >= self.declared {
            return Err(invalid(format!(
                "a chunk for file {file} of a push that declares {}",
                self.declared
            )));
        }
        Ok(Some((file, data)))
    }

    /// The next chunk of file `index`, or `None` when that file has ended
    /// (a chunk of a later file arrived, or the stream closed).
    async fn next(&mut self, index: u32) -> Result<Option<Bytes>> {
        let Some((file, data)) = self.take().await? else {
            return Ok(None);
        };
        if file < index {
            return Err(invalid(format!(
                "a chunk for file {file} arrived after file {index} had started"
            )));
        }
        if file > index {
            self.pending = Some((file, data));
            return Ok(None);
        }
        Ok(Some(data))
    }

    /// The file index of a chunk left after the last file, if any.
    async fn leftover(&mut self) -> Result<Option<u32>> {
        Ok(self.take().await?.map(|(file, _)| file))
    }
}

//! An OCI image layout directory as a store: `oci-layout`, `index.json` and
//! `blobs/<alg>/<hex>`, the format `oras --oci-layout` and skopeo's `oci:`
//! transport read and write.
//!
//! Every manifest pushed here is listed in `index.json`, tagged ones with an
//! `org.opencontainers.image.ref.name` annotation, so referrers can be found
//! by scanning the index. Blobs are written under `ingest/` and renamed into
//! `blobs/` only after their digest checks out.
//!
//! Every file is reached from the layout's directory without following a
//! symbolic link ([`beneath`]): a linked `index.json`, `oci-layout`, `blobs`
//! or blob is refused with PERMISSION_DENIED, never read or written
//! through. A layout opened [`OciLayout::confined`] (for callers who are not
//! the daemon's own user) also hashes a blob before its first byte is
//! served, so no byte reaches such a caller unless the file is that blob.

mod beneath;
mod delete;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;

use crate::digest::{Digest, Hasher};
use crate::error::{Error, ErrorKind, Result};
use crate::locks::KeyedLocks;
use crate::manifest::{
    referrer_descriptor, sniff_media_type, Descriptor, ImageIndex, Manifest, ANNOTATION_REF_NAME,
};
use crate::ByteStream;
use beneath::Dir;

const LAYOUT_FILE: &str = "oci-layout";
const LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// The largest `index.json` read (about 200,000 entries).
const MAX_INDEX_BYTES: u64 = 64 << 20;

/// An OCI image layout on the local filesystem.
#[derive(Clone)]
pub struct OciLayout {
    /// The layout's root directory.
    root: PathBuf,
    /// Serialises index.json updates across every user of this process.
    locks: Arc<KeyedLocks>,
    /// Blobs are verified before their first byte is served (see the
    /// module docs).
    confined: bool,
}

impl std::fmt::Debug for OciLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OciLayout({})", self.root.display())
    }
}

impl OciLayout {
    /// Opens the layout at `root`. Nothing is read or created yet.
    pub fn new(root: impl Into<PathBuf>, locks: Arc<KeyedLocks>) -> Self {
        OciLayout {
            root: root.into(),
            locks,
            confined: false,
        }
    }

    /// The same layout, with every blob verified before its first byte is
    /// served: for callers who must see nothing but this layout's blobs.
    pub fn confined(mut self) -> Self {
        self.confined = true;
        self
    }

    /// The layout's directory, opened without following links (created
    /// with `create`).
    fn dir(&self, create: bool) -> Result<Dir> {
        Dir::open_path(&self.root, create.then_some(0o777))
            .map_err(|e| fs_error(format!("OCI layout {}", self.root.display()), e))
    }

    /// The directory of blobs of `digest`'s algorithm.
    fn blob_dir(&self, digest: &Digest, create: bool) -> Result<Dir> {
        let mode = create.then_some(0o777);
        let ctx = || format!("blobs of OCI layout {}", self.root.display());
        self.dir(create)?
            .sub(OsStr::new("blobs"), mode)
            .and_then(|d| d.sub(OsStr::new(digest.algorithm().as_ref()), mode))
            .map_err(|e| fs_error(ctx(), e))
    }

    /// Opens a blob's file for reading (a plain file, no link on the way).
    fn open_blob(&self, digest: &Digest) -> Result<std::fs::File> {
        self.blob_dir(digest, false)
            .and_then(|d| {
                d.open_file(OsStr::new(digest.digest()))
                    .map_err(|e| fs_error(format!("blob {digest}"), e))
            })
            .map_err(|e| {
                Error::new(
                    e.kind(),
                    format!("blob {digest} in {}", self.root.display()),
                )
                .with_source(e)
            })
    }

    /// The layout's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the layout's skeleton if it is missing; returns its directory.
    async fn ensure(&self) -> Result<Dir> {
        let dir = self.dir(true)?;
        if dir.exists(OsStr::new(LAYOUT_FILE)) {
            return Ok(dir);
        }
        dir.sub(OsStr::new("blobs"), Some(0o777)).map_err(|e| {
            fs_error(
                format!("cannot create OCI layout {}: blobs", self.root.display()),
                e,
            )
        })?;
        write_atomically(&dir, &self.root, LAYOUT_FILE, LAYOUT_CONTENT).await?;
        if !dir.exists(OsStr::new("index.json")) {
            let empty = ImageIndex::new(vec![]).to_bytes();
            write_atomically(&dir, &self.root, "index.json", &empty).await?;
        }
        Ok(dir)
    }

    /// Replaces index.json with `index`, atomically. The caller holds the
    /// root's lock across its read of the index and this write.
    async fn write_index(&self, index: &ImageIndex) -> Result<()> {
        write_atomically(
            &self.dir(false)?,
            &self.root,
            "index.json",
            &index.to_bytes(),
        )
        .await
    }

    async fn read_index(&self) -> Result<ImageIndex> {
        let path = self.root.join("index.json");
        let not_layout = || format!("{} is not an OCI image layout", self.root.display());
        let mut file = self
            .dir(false)?
            .open_file(OsStr::new("index.json"))
            .map_err(|e| fs_error(not_layout(), e))?;
        let data = tokio::task::spawn_blocking(move || {
            let mut data = Vec::new();
            std::io::Read::read_to_end(
                &mut std::io::Read::take(&mut file, MAX_INDEX_BYTES + 1),
                &mut data,
            )
            .map(|_| data)
        })
        .await
        .map_err(|e| Error::new(ErrorKind::Internal, format!("reading index.json: {e}")))?
        .map_err(|e| Error::io(not_layout(), e))?;
        if data.len() as u64 > MAX_INDEX_BYTES {
            return Err(Error::new(
                ErrorKind::FailedPrecondition,
                format!("{} is larger than {MAX_INDEX_BYTES} bytes", path.display()),
            ));
        }
        serde_json::from_slice(&data).map_err(|e| {
            Error::new(
                ErrorKind::FailedPrecondition,
                format!(
                    "malformed {}: {}",
                    path.display(),
                    crate::text::json_failure(&e)
                ),
            )
        })
    }

    /// Whether the layout holds the blob.
    pub async fn blob_exists(&self, digest: &Digest) -> Result<bool> {
        Ok(self.blob_size(digest).await?.is_some())
    }

    /// The blob's size; `None` when the layout lacks it.
    pub async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>> {
        match self.open_blob(digest) {
            Ok(file) => Ok(Some(
                file.metadata().map_err(|e| fs_error("blob", e))?.len(),
            )),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Streams a blob's bytes; [`crate::Target`] verifies them on the way.
    /// A confined layout hashes the whole file first and serves it only if
    /// it is the blob `digest` names.
    pub async fn fetch_blob(&self, digest: &Digest) -> Result<ByteStream> {
        let mut file = self.open_blob(digest)?;
        if self.confined {
            file = verified(file, digest.clone()).await?;
        }
        let file = tokio::fs::File::from_std(file);
        Ok(tokio_util::io::ReaderStream::with_capacity(file, 256 << 10)
            .map(|r| r.map_err(|e| Error::io("reading a blob failed", e)))
            .boxed())
    }

    /// Writes a blob from a stream under `ingest/`, checks it and only then
    /// moves it into `blobs/`. Returns the digest and size.
    pub async fn push_blob<S>(
        &self,
        expected: Option<&Digest>,
        mut body: S,
    ) -> Result<(Digest, u64)>
    where
        S: Stream<Item = Result<Bytes>> + Send + Unpin,
    {
        let root = self.ensure().await?;
        let ingest = root
            .sub(OsStr::new("ingest"), Some(0o777))
            .map_err(|e| fs_error("cannot create ingest directory", e))?;
        let tmp = temp_name();
        let result = async {
            let file = ingest
                .create_new(OsStr::new(&tmp), 0o666)
                .map_err(|e| fs_error("cannot create ingest file", e))?;
            let mut file = tokio::fs::File::from_std(file);
            let mut hasher = match expected {
                Some(d) => Hasher::for_digest(d)?,
                None => Hasher::sha256(),
            };
            let mut size = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                hasher.update(&chunk);
                size += chunk.len() as u64;
                file.write_all(&chunk)
                    .await
                    .map_err(|e| Error::io("cannot write ingest file", e))?;
            }
            file.sync_data()
                .await
                .map_err(|e| Error::io("cannot sync ingest file", e))?;
            let actual = hasher.finish();
            if let Some(expected) = expected {
                if &actual != expected {
                    return Err(Error::new(
                        ErrorKind::DataLoss,
                        format!("digest mismatch: expected {expected}, got {actual}"),
                    ));
                }
            }
            let blobs = self.blob_dir(&actual, true)?;
            ingest
                .rename(OsStr::new(&tmp), &blobs, OsStr::new(actual.digest()))
                .map_err(|e| fs_error("cannot move blob into place", e))?;
            Ok((actual, size))
        }
        .await;
        if result.is_err() {
            let _ = ingest.remove(OsStr::new(&tmp));
        }
        result
    }

    /// Stores a small blob from memory.
    pub async fn push_bytes(&self, data: Bytes) -> Result<(Digest, u64)> {
        self.push_blob(None, futures::stream::iter([Ok(data)]))
            .await
    }

    /// Resolves a tag (by `org.opencontainers.image.ref.name`) or digest.
    pub async fn resolve(&self, reference: &str) -> Result<Descriptor> {
        if reference.contains(':') {
            let digest = crate::digest::parse(reference)?;
            let (desc, _) = self.fetch_manifest_by_digest(&digest).await?;
            return Ok(desc);
        }
        let index = self.read_index().await?;
        index
            .manifests
            .into_iter()
            .rev()
            .find(|d| d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str) == Some(reference))
            .map(|mut d| {
                d.annotations.remove(ANNOTATION_REF_NAME);
                d
            })
            .ok_or_else(|| {
                Error::not_found(format!(
                    "tag {reference:?} not found in OCI layout {}",
                    self.root.display()
                ))
            })
    }

    async fn fetch_manifest_by_digest(&self, digest: &Digest) -> Result<(Descriptor, Bytes)> {
        let file = self.open_blob(digest).map_err(|e| {
            Error::new(
                e.kind(),
                format!("manifest {digest} in {}", self.root.display()),
            )
            .with_source(e)
        })?;
        let max = crate::manifest::MAX_MANIFEST_BYTES as u64;
        let data = tokio::task::spawn_blocking(move || {
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut std::io::Read::take(file, max + 1), &mut data)
                .map(|_| data)
        })
        .await
        .map_err(|e| Error::new(ErrorKind::Internal, format!("reading {digest}: {e}")))?
        .map_err(|e| Error::io(format!("cannot read {digest}"), e))?;
        if data.len() as u64 > max {
            return Err(Error::new(
                ErrorKind::FailedPrecondition,
                format!("{digest} is too large to be a manifest"),
            ));
        }
        let data = Bytes::from(data);
        crate::digest::verify(&data, digest, None)?;
        let media_type = sniff_media_type(&data)?;
        Ok((
            Descriptor {
                media_type,
                digest: digest.clone(),
                size: data.len() as u64,
                artifact_type: None,
                annotations: Default::default(),
            },
            data,
        ))
    }

    /// Fetches a manifest by tag or digest, verified.
    pub async fn fetch_manifest(&self, reference: &str) -> Result<(Descriptor, Bytes)> {
        let desc = self.resolve(reference).await?;
        let (fetched, data) = self.fetch_manifest_by_digest(&desc.digest).await?;
        Ok((
            Descriptor {
                media_type: desc.media_type,
                ..fetched
            },
            data,
        ))
    }

    /// Stores a manifest and lists it in index.json, tagged with `tag`
    /// (moving the tag off any other manifest).
    pub async fn push_manifest(
        &self,
        tag: Option<&str>,
        media_type: &str,
        content: Bytes,
    ) -> Result<Descriptor> {
        let entry = index_entry(&content);
        let (digest, size) = self.push_bytes(content).await?;
        let desc = Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            artifact_type: None,
            annotations: Default::default(),
        };
        self.add_to_index(&desc, entry, tag).await?;
        Ok(desc)
    }

    /// Tags an existing manifest.
    pub async fn tag(&self, desc: &Descriptor, tag: &str) -> Result<()> {
        let (_, content) = self.fetch_manifest_by_digest(&desc.digest).await?;
        self.add_to_index(desc, index_entry(&content), Some(tag))
            .await
    }

    /// Lists `desc` in index.json; `entry` is what the entry says of it
    /// besides its descriptor ([`index_entry`]).
    async fn add_to_index(
        &self,
        desc: &Descriptor,
        entry: IndexEntry,
        tag: Option<&str>,
    ) -> Result<()> {
        let _guard = self.locks.lock(&self.root.to_string_lossy()).await;
        let mut index = self.read_index().await?;
        let mut entry = Descriptor {
            media_type: desc.media_type.clone(),
            digest: desc.digest.clone(),
            size: desc.size,
            artifact_type: entry.artifact_type,
            annotations: entry.annotations,
        };
        match tag {
            Some(tag) => {
                // The tag moves: drop it (and untagged duplicates) elsewhere.
                index.manifests.retain(|d| {
                    let name = d.annotations.get(ANNOTATION_REF_NAME);
                    name.map(String::as_str) != Some(tag)
                        && !(d.digest == desc.digest && name.is_none())
                });
                entry
                    .annotations
                    .insert(ANNOTATION_REF_NAME.to_string(), tag.to_string());
            }
            None => {
                if index.manifests.iter().any(|d| d.digest == desc.digest) {
                    return Ok(());
                }
            }
        }
        index.manifests.push(entry);
        self.write_index(&index).await
    }

    /// The layout's tags (index.json's `org.opencontainers.image.ref.name`
    /// annotations), sorted.
    pub async fn tags(&self) -> Result<Vec<String>> {
        let index = self.read_index().await?;
        let mut tags: Vec<String> = index
            .manifests
            .iter()
            .filter_map(|d| d.annotations.get(ANNOTATION_REF_NAME).cloned())
            .collect();
        tags.sort();
        tags.dedup();
        Ok(tags)
    }

    /// The manifests in index.json whose subject is `subject`.
    pub async fn referrers(&self, subject: &Digest) -> Result<Vec<Descriptor>> {
        let index = self.read_index().await?;
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for entry in index.manifests {
            if !entry.is_manifest() || !seen.insert(entry.digest.clone()) {
                continue;
            }
            let (desc, data) = match self.fetch_manifest_by_digest(&entry.digest).await {
                Ok(found) => found,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let Ok(manifest) = Manifest::parse(&desc.media_type, &data) else {
                continue;
            };
            if manifest.subject().is_some_and(|s| &s.digest == subject) {
                out.push(referrer_descriptor(desc, &manifest));
            }
        }
        Ok(out)
    }
}

/// An unpredictable name for a file about to be created with `O_EXCL`.
fn temp_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(".tmp-{}-{nanos}-{n}", std::process::id())
}

/// An I/O error as an OCI error; a refused link is PERMISSION_DENIED.
fn fs_error(context: impl Into<String>, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        Error::new(ErrorKind::PermissionDenied, context).with_source(e)
    } else {
        Error::io(context, e)
    }
}

/// Hashes `file` from its start and hands it back, rewound, only if it
/// holds the blob `digest`: DATA_LOSS otherwise, before any byte is served.
/// A file with other hard links is refused first: it may be a file of
/// someone else's, linked in where links are not followed.
async fn verified(file: std::fs::File, digest: Digest) -> Result<std::fs::File> {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Seek};
        use std::os::unix::fs::MetadataExt;
        let mut file = file;
        let links = file
            .metadata()
            .map_err(|e| Error::io("reading a blob failed", e))?
            .nlink();
        if links > 1 {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!("the layout's file for blob {digest} has {links} hard links; it is not served to this caller"),
            ));
        }
        let mut hasher = Hasher::for_digest(&digest)?;
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| Error::io("reading a blob failed", e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let actual = hasher.finish();
        if actual != digest {
            return Err(Error::new(
                ErrorKind::DataLoss,
                format!(
                    "the layout's file for blob {digest} holds other bytes; nothing was served"
                ),
            ));
        }
        file.rewind()
            .map_err(|e| Error::io("reading a blob failed", e))?;
        Ok(file)
    })
    .await
    .map_err(|e| Error::new(ErrorKind::Internal, format!("verifying a blob: {e}")))?
}

/// Writes `name` in `dir` (the layout at `root`) through a temporary file
/// and a rename, so readers see the old content or the new, never a part.
async fn write_atomically(dir: &Dir, root: &Path, name: &str, data: &[u8]) -> Result<()> {
    let tmp = temp_name();
    let res = async {
        let f = dir.create_new(OsStr::new(&tmp), 0o666)?;
        let mut f = tokio::fs::File::from_std(f);
        f.write_all(data).await?;
        f.sync_data().await?;
        dir.rename(OsStr::new(&tmp), dir, OsStr::new(name))
    }
    .await;
    if let Err(e) = res {
        let _ = dir.remove(OsStr::new(&tmp));
        return Err(fs_error(
            format!("cannot write {}", root.join(name).display()),
            e,
        ));
    }
    Ok(())
}

/// What an index.json entry says of a manifest besides its descriptor.
struct IndexEntry {
    artifact_type: Option<String>,
    annotations: std::collections::BTreeMap<String, String>,
}

/// The ORAS CLI's index.json entry for a manifest: its `artifactType` and
/// all its annotations, `org.opencontainers.image.created` among them.
/// Content without them gives a bare entry.
fn index_entry(content: &[u8]) -> IndexEntry {
    #[derive(serde::Deserialize, Default)]
    struct Fields {
        #[serde(rename = "artifactType")]
        artifact_type: Option<String>,
        #[serde(default)]
        annotations: std::collections::BTreeMap<String, String>,
    }
    let mut fields: Fields = serde_json::from_slice(content).unwrap_or_default();
    // Only index.json's own tags name an entry.
    fields.annotations.remove(ANNOTATION_REF_NAME);
    IndexEntry {
        artifact_type: fields.artifact_type.filter(|t| !t.is_empty()),
        annotations: fields.annotations,
    }
}

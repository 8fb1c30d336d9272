//! An OCI image layout directory as a store: `oci-layout`, `index.json` and
//! `blobs/<alg>/<hex>`, the format `oras --oci-layout` and skopeo's `oci:`
//! transport read and write.
//!
//! Every manifest pushed here is listed in `index.json`, tagged ones with an
//! `org.opencontainers.image.ref.name` annotation, so referrers can be found
//! by scanning the index. Blobs are written under `ingest/` and renamed into
//! `blobs/` only after their digest checks out.

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

const LAYOUT_FILE: &str = "oci-layout";
const LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// An OCI image layout on the local filesystem.
#[derive(Clone)]
pub struct OciLayout {
    /// The layout's root directory.
    root: PathBuf,
    /// Serialises index.json updates across every user of this process.
    locks: Arc<KeyedLocks>,
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
        }
    }

    /// The layout's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().as_ref())
            .join(digest.digest())
    }

    /// Creates the layout's skeleton if it is missing.
    async fn ensure(&self) -> Result<()> {
        let marker = self.root.join(LAYOUT_FILE);
        if tokio::fs::try_exists(&marker).await.unwrap_or(false) {
            return Ok(());
        }
        let ctx = |what: &str| format!("cannot create OCI layout {}: {what}", self.root.display());
        tokio::fs::create_dir_all(self.root.join("blobs"))
            .await
            .map_err(|e| Error::io(ctx("blobs"), e))?;
        write_atomically(&self.root, LAYOUT_FILE, LAYOUT_CONTENT).await?;
        if !tokio::fs::try_exists(self.root.join("index.json"))
            .await
            .unwrap_or(false)
        {
            write_atomically(
                &self.root,
                "index.json",
                &ImageIndex::new(vec![]).to_bytes(),
            )
            .await?;
        }
        Ok(())
    }

    async fn read_index(&self) -> Result<ImageIndex> {
        let path = self.root.join("index.json");
        let data = tokio::fs::read(&path).await.map_err(|e| {
            Error::io(
                format!("{} is not an OCI image layout", self.root.display()),
                e,
            )
        })?;
        serde_json::from_slice(&data).map_err(|e| {
            Error::new(
                ErrorKind::FailedPrecondition,
                format!("malformed {}", path.display()),
            )
            .with_source(e)
        })
    }

    /// Whether the layout holds the blob.
    pub async fn blob_exists(&self, digest: &Digest) -> Result<bool> {
        Ok(tokio::fs::try_exists(self.blob_path(digest))
            .await
            .unwrap_or(false))
    }

    /// Streams a blob's bytes, unverified: [`crate::Target`] verifies.
    pub async fn fetch_blob(&self, digest: &Digest) -> Result<ByteStream> {
        let file = tokio::fs::File::open(self.blob_path(digest))
            .await
            .map_err(|e| Error::io(format!("blob {digest} in {}", self.root.display()), e))?;
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
        self.ensure().await?;
        let ingest = self.root.join("ingest");
        tokio::fs::create_dir_all(&ingest)
            .await
            .map_err(|e| Error::io("cannot create ingest directory", e))?;
        let tmp = tempfile_in(&ingest)?;
        let result = async {
            let mut file = tokio::fs::File::create(&tmp)
                .await
                .map_err(|e| Error::io("cannot create ingest file", e))?;
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
            let dest = self.blob_path(&actual);
            let dir = dest.parent().expect("blob path has a parent");
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| Error::io("cannot create blob directory", e))?;
            tokio::fs::rename(&tmp, &dest)
                .await
                .map_err(|e| Error::io("cannot move blob into place", e))?;
            Ok((actual, size))
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
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
        let path = self.blob_path(digest);
        let meta = tokio::fs::metadata(&path).await.map_err(|e| {
            Error::io(
                format!("manifest {digest} not found in {}", self.root.display()),
                e,
            )
        })?;
        if meta.len() > crate::registry::MAX_MANIFEST_BYTES as u64 {
            return Err(Error::new(
                ErrorKind::FailedPrecondition,
                format!("{digest} is too large to be a manifest"),
            ));
        }
        let data = Bytes::from(
            tokio::fs::read(&path)
                .await
                .map_err(|e| Error::io(format!("cannot read {digest}"), e))?,
        );
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
        let (digest, size) = self.push_bytes(content).await?;
        let desc = Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            artifact_type: None,
            annotations: Default::default(),
        };
        self.add_to_index(&desc, tag).await?;
        Ok(desc)
    }

    /// Tags an existing manifest.
    pub async fn tag(&self, desc: &Descriptor, tag: &str) -> Result<()> {
        self.add_to_index(desc, Some(tag)).await
    }

    async fn add_to_index(&self, desc: &Descriptor, tag: Option<&str>) -> Result<()> {
        let _guard = self.locks.lock(&self.root.to_string_lossy()).await;
        let mut index = self.read_index().await?;
        let mut entry = Descriptor {
            media_type: desc.media_type.clone(),
            digest: desc.digest.clone(),
            size: desc.size,
            artifact_type: None,
            annotations: Default::default(),
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
        write_atomically(&self.root, "index.json", &index.to_bytes()).await
    }

    /// Removes a manifest from index.json (its blob stays, as with
    /// `oras manifest delete --oci-layout`).
    pub async fn delete_manifest(&self, digest: &Digest) -> Result<()> {
        let _guard = self.locks.lock(&self.root.to_string_lossy()).await;
        let mut index = self.read_index().await?;
        let before = index.manifests.len();
        index.manifests.retain(|d| &d.digest != digest);
        if index.manifests.len() == before {
            return Err(Error::not_found(format!(
                "manifest {digest} not found in {}",
                self.root.display()
            )));
        }
        write_atomically(&self.root, "index.json", &index.to_bytes()).await
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

fn tempfile_in(dir: &Path) -> Result<PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Ok(dir.join(format!(".tmp-{}-{nanos}-{n}", std::process::id())))
}

/// Writes `name` in `dir` through a temporary file and a rename, so readers
/// see the old content or the new, never a part.
async fn write_atomically(dir: &Path, name: &str, data: &[u8]) -> Result<()> {
    let tmp = tempfile_in(dir)?;
    let res = async {
        let mut f = tokio::fs::File::create(&tmp).await?;
        f.write_all(data).await?;
        f.sync_data().await?;
        tokio::fs::rename(&tmp, dir.join(name)).await
    }
    .await;
    if let Err(e) = res {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(Error::io(
            format!("cannot write {}", dir.join(name).display()),
            e,
        ));
    }
    Ok(())
}

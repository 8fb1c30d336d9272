//! Uploads into the content store by ref ([`ContentStore::open_upload`],
//! [`ContentStore::commit_upload`]), the pins that spare a committed upload
//! from eviction, and the sweep that expires what nobody finished.
//!
//! An upload lives at `ingest/upload-<sha256 of its ref>` until it is
//! committed. Files under `ingest/` (uploads and the tees of pulls) count
//! against the store's bound while they exist, and one left idle for the
//! expiry (default [`UPLOAD_EXPIRY`]) is removed by the next sweep.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::private::{file_options, private_dir, restrict_file};
use super::{ContentStore, Index};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::Descriptor;

/// How long an upload (or a pull's ingest file) may sit untouched before a
/// sweep removes it.
pub const UPLOAD_EXPIRY: Duration = Duration::from_secs(60 * 60);

/// An upload in progress, open for appending.
pub struct Upload {
    file: tokio::fs::File,
    offset: u64,
    path: PathBuf,
    /// The store's count of bytes under `ingest/`, grown as this writes.
    ingest_bytes: Arc<AtomicU64>,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Upload {
    /// How many bytes the upload holds.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Appends `data`, which must start at `offset`, the current end.
    pub async fn write(&mut self, offset: u64, data: &[u8]) -> Result<u64> {
        if offset != self.offset {
            return Err(Error::new(
                crate::ErrorKind::FailedPrecondition,
                format!(
                    "the upload stands at byte {}, not {offset}; resume from there",
                    self.offset
                ),
            ));
        }
        // tokio hands the write to a blocking thread and returns at once;
        // flush waits for it, so an offset we acknowledge is in the file and
        // a reopened upload (or `upload_offset`) sees it.
        self.file
            .write_all(data)
            .await
            .map_err(|e| Error::io("cannot write the upload", e))?;
        self.file
            .flush()
            .await
            .map_err(|e| Error::io("cannot write the upload", e))?;
        self.offset += data.len() as u64;
        self.ingest_bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(self.offset)
    }
}

/// Takes `n` off a byte count, stopping at zero.
pub(super) fn release(count: &AtomicU64, n: u64) {
    let _ = count.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_sub(n))
    });
}

impl ContentStore {
    /// Sets how long a file under `ingest/` may sit untouched before it is
    /// removed (default [`UPLOAD_EXPIRY`]), and sweeps with it at once.
    pub fn with_upload_expiry(mut self, expiry: Duration) -> Self {
        self.upload_expiry = expiry;
        self.sweep();
        self
    }

    /// How long idle ingest files are kept.
    pub fn upload_expiry(&self) -> Duration {
        self.upload_expiry
    }

    /// Removes files under `ingest/` untouched for longer than the expiry,
    /// recounts those that stay, and evicts blobs if they no longer fit
    /// beside them. Returns the bytes left under `ingest/`.
    pub fn sweep(&self) -> u64 {
        let now = SystemTime::now();
        let mut kept = 0u64;
        let ingest = self.root.join("ingest");
        for entry in std::fs::read_dir(&ingest).into_iter().flatten().flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            let idle = meta
                .modified()
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .unwrap_or_default();
            if !meta.is_file() || idle > self.upload_expiry {
                let removed = if meta.is_dir() {
                    std::fs::remove_dir_all(entry.path())
                } else {
                    std::fs::remove_file(entry.path())
                };
                if removed.is_ok() {
                    tracing::info!(file = %entry.file_name().to_string_lossy(), idle_secs = idle.as_secs(), "expired an abandoned ingest file");
                    continue;
                }
            }
            restrict_file(&entry.path(), &meta);
            kept += meta.len();
        }
        self.ingest_bytes.store(kept, Ordering::Relaxed);
        self.evict(None);
        kept
    }

    /// Bytes held under `ingest/` (uploads not committed, pulls under way).
    pub fn ingest_bytes(&self) -> u64 {
        self.ingest_bytes.load(Ordering::Relaxed)
    }

    pub(super) fn pin_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("pins")
            .join(digest.algorithm().as_ref())
            .join(digest.digest())
    }

    /// Restores the pins of committed uploads that have not run out, and
    /// removes the rest: each is a file naming its blob, holding the
    /// wall-clock second it runs out.
    pub(super) fn load_pins(root: &std::path::Path, index: &mut Index) {
        let now = SystemTime::now();
        for alg in ["sha256", "sha512"] {
            let Ok(dir) = std::fs::read_dir(root.join("pins").join(alg)) else {
                continue;
            };
            for entry in dir.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let until = std::fs::read_to_string(entry.path())
                    .ok()
                    .and_then(|t| t.trim().parse::<u64>().ok())
                    .map(|secs| std::time::UNIX_EPOCH + Duration::from_secs(secs));
                let left = until.and_then(|t| t.duration_since(now).ok());
                let pinned = crate::digest::parse(&format!("{alg}:{name}"))
                    .ok()
                    .and_then(|d| index.entries.get_mut(&d));
                match (pinned, left) {
                    (Some(e), Some(left)) => {
                        e.pinned_until = Some(Instant::now() + left);
                        if let Ok(meta) = entry.metadata() {
                            restrict_file(&entry.path(), &meta);
                        }
                    }
                    _ => {
                        let _ = std::fs::remove_file(entry.path());
                    }
                }
            }
        }
    }

    /// Records that `digest` is pinned for `pin` from now, for a store
    /// reopened after a restart. A pin that cannot be written only lasts
    /// until then.
    async fn persist_pin(&self, digest: &Digest, pin: Duration) {
        let path = self.pin_path(digest);
        let until = SystemTime::now() + pin;
        let secs = until
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let earlier = tokio::fs::read_to_string(&path)
            .await
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if secs <= earlier {
            return;
        }
        if let Some(dir) = path.parent() {
            let pins = dir.parent().expect("pins/<alg> has a parent");
            if private_dir(pins).and_then(|()| private_dir(dir)).is_err() {
                return;
            }
        }
        let tmp = path.with_extension("tmp");
        let written = async {
            let mut f = file_options()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .await?;
            f.write_all(secs.to_string().as_bytes()).await?;
            f.flush().await
        };
        if written.await.is_ok() {
            let _ = tokio::fs::rename(&tmp, &path).await;
        }
    }

    /// Opens the upload named `reference`, creating it if new. Hold the
    /// returned guard's lock for the whole call: one writer per ref.
    pub async fn open_upload(&self, reference: &str) -> Result<Upload> {
        if reference.is_empty() || reference.len() > 256 {
            return Err(Error::invalid("an upload ref must be 1 to 256 characters"));
        }
        let guard = self.upload_locks.lock(reference).await;
        let path = self.upload_path(reference);
        let file = file_options()
            .create(true)
            .append(true)
            .open(&path)
            .await
            .map_err(|e| Error::io("cannot open the upload", e))?;
        let offset = file
            .metadata()
            .await
            .map_err(|e| Error::io("cannot stat the upload", e))?
            .len();
        Ok(Upload {
            file,
            offset,
            path,
            ingest_bytes: self.ingest_bytes.clone(),
            _guard: guard,
        })
    }

    /// How many bytes the upload named `reference` holds, if it exists.
    pub async fn upload_offset(&self, reference: &str) -> Option<u64> {
        tokio::fs::metadata(self.upload_path(reference))
            .await
            .ok()
            .map(|m| m.len())
    }

    pub(super) fn upload_path(&self, reference: &str) -> PathBuf {
        let key = crate::digest::sha256(reference.as_bytes());
        self.root
            .join("ingest")
            .join(format!("upload-{}", key.digest()))
    }

    /// Verifies a finished upload and moves it into the store. Returns its
    /// digest and size.
    pub async fn commit_upload(
        &self,
        upload: Upload,
        expected: Option<&Digest>,
        expected_size: Option<u64>,
    ) -> Result<(Digest, u64)> {
        upload
            .file
            .sync_data()
            .await
            .map_err(|e| Error::io("cannot sync the upload", e))?;
        let mut hasher = match expected {
            Some(d) => crate::digest::Hasher::for_digest(d)?,
            None => crate::digest::Hasher::sha256(),
        };
        let file = tokio::fs::File::open(&upload.path)
            .await
            .map_err(|e| Error::io("cannot reopen the upload", e))?;
        let mut reader = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20);
        while let Some(chunk) = reader.next().await {
            hasher.update(&chunk.map_err(|e| Error::io("cannot read the upload", e))?);
        }
        let digest = hasher.finish();
        let size = upload.offset;
        let mismatch = |what: String| Error::new(crate::ErrorKind::DataLoss, what);
        if let Some(expected) = expected {
            if &digest != expected {
                return Err(mismatch(format!(
                    "upload has digest {digest}, expected {expected}"
                )));
            }
        }
        if let Some(want) = expected_size {
            if want != size {
                return Err(mismatch(format!(
                    "upload has {size} bytes, expected {want}"
                )));
            }
        }
        let desc = Descriptor {
            media_type: String::new(),
            digest: digest.clone(),
            size,
            artifact_type: None,
            annotations: Default::default(),
        };
        let path = upload.path.clone();
        drop(upload);
        self.persist_pin(&digest, self.upload_pin).await;
        release(&self.ingest_bytes, size);
        self.commit_now(&path, &desc, Some(Instant::now() + self.upload_pin));
        if tokio::fs::try_exists(self.path(&digest))
            .await
            .unwrap_or(false)
        {
            Ok((digest, size))
        } else {
            Err(Error::new(
                crate::ErrorKind::Internal,
                "cannot move the upload into the store",
            ))
        }
    }
}

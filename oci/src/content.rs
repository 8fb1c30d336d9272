//! The daemon's local content store: blobs by digest under `blobs/<alg>/`,
//! bounded in total size, evicted least recently used first.
//!
//! [`ContentStore::fetch_through`] serves a blob from the store, or
//! downloads it once however many callers ask at the same time: the first
//! caller's stream is teed into `ingest/` and committed when it ends
//! cleanly (the stream it tees is already digest-verified); the others wait
//! for that and then read the stored copy. Every byte is hashed once, on
//! its way in: reads trust the store's files, which only the daemon can
//! write (below), and check only their size ([`read`]).
//!
//! The store is the daemon's alone: its directories are 0700 and its files
//! 0600 ([`private`]), even in a directory that existed with a wider mode.
//! Uploads, pins and the expiry of abandoned ingest files are in
//! [`uploads`].

pub(crate) mod private;
mod read;
mod tee;
mod uploads;

pub use uploads::{Upload, UPLOAD_EXPIRY};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::digest::Digest;
use crate::error::Result;
use crate::manifest::Descriptor;
use crate::ByteStream;

/// How long a blob committed by an upload is spared from eviction, so that
/// a Push can still name it after large pulls have filled the store.
pub const UPLOAD_PIN: Duration = Duration::from_secs(60 * 60);

/// One stored blob's bookkeeping.
struct Entry {
    size: u64,
    /// Larger is more recent.
    used: u64,
    /// Not evicted before this instant (uploads; see [`UPLOAD_PIN`]).
    pinned_until: Option<Instant>,
}

#[derive(Default)]
struct Index {
    entries: HashMap<Digest, Entry>,
    total: u64,
    clock: u64,
}

/// A bounded, content-addressed blob store on local disk.
pub struct ContentStore {
    root: PathBuf,
    max_bytes: u64,
    index: Mutex<Index>,
    /// Downloads in progress: waiters learn when they end.
    inflight: Mutex<HashMap<Digest, watch::Receiver<bool>>>,
    /// One writer per upload ref.
    upload_locks: crate::locks::KeyedLocks,
    /// How long committed uploads stay pinned.
    upload_pin: Duration,
    /// How long an ingest file may sit untouched before a sweep removes it.
    upload_expiry: Duration,
    /// Bytes under `ingest/`; they count against `max_bytes` too.
    ingest_bytes: Arc<AtomicU64>,
}

impl std::fmt::Debug for ContentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ContentStore({}, max {} bytes)",
            self.root.display(),
            self.max_bytes
        )
    }
}

impl ContentStore {
    /// Opens (creating) a store at `root` holding at most `max_bytes`;
    /// half-done pulls in `ingest/` are removed (uploads stay, to be
    /// resumed, until they expire) and existing blobs indexed, with the
    /// pins of committed uploads that have not run out. Directories are
    /// made (or narrowed to) 0700 and files found narrowed to 0600.
    pub fn open(root: impl Into<PathBuf>, max_bytes: u64) -> Result<Self> {
        let root = root.into();
        let ingest = root.join("ingest");
        private::private_dir(&root)?;
        for dir in ["ingest", "blobs", "pins"] {
            private::private_dir(&root.join(dir))?;
        }
        for entry in std::fs::read_dir(&ingest).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().starts_with("pull-") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let mut index = Index::default();
        let mut found: Vec<(std::time::SystemTime, Digest, u64)> = Vec::new();
        for alg in ["sha256", "sha512"] {
            let alg_dir = root.join("blobs").join(alg);
            let Ok(dir) = std::fs::read_dir(&alg_dir) else {
                continue;
            };
            private::private_dir(&alg_dir)?;
            for entry in dir.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let (Ok(digest), Ok(meta)) = (
                    crate::digest::parse(&format!("{alg}:{name}")),
                    entry.metadata(),
                ) else {
                    continue;
                };
                private::restrict_file(&entry.path(), &meta);
                found.push((
                    meta.modified().unwrap_or(std::time::UNIX_EPOCH),
                    digest,
                    meta.len(),
                ));
            }
        }
        found.sort_by_key(|(t, _, _)| *t);
        for (_, digest, size) in found {
            index.clock += 1;
            index.total += size;
            index.entries.insert(
                digest,
                Entry {
                    size,
                    used: index.clock,
                    pinned_until: None,
                },
            );
        }
        Self::load_pins(&root, &mut index);
        for alg in ["sha256", "sha512"] {
            if root.join("pins").join(alg).is_dir() {
                private::private_dir(&root.join("pins").join(alg))?;
            }
        }
        let store = ContentStore {
            root,
            max_bytes,
            index: Mutex::new(index),
            inflight: Mutex::new(HashMap::new()),
            upload_locks: crate::locks::KeyedLocks::default(),
            upload_pin: UPLOAD_PIN,
            upload_expiry: UPLOAD_EXPIRY,
            ingest_bytes: Arc::new(AtomicU64::new(0)),
        };
        store.sweep();
        Ok(store)
    }

    /// Sets how long committed uploads are spared from eviction (default
    /// [`UPLOAD_PIN`]).
    pub fn with_upload_pin(mut self, pin: Duration) -> Self {
        self.upload_pin = pin;
        self
    }

    fn path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().as_ref())
            .join(digest.digest())
    }

    /// The size of a stored blob.
    pub fn size_of(&self, digest: &Digest) -> Option<u64> {
        self.index
            .lock()
            .expect("content index")
            .entries
            .get(digest)
            .map(|e| e.size)
    }

    /// The bytes stored, in total.
    pub fn total_bytes(&self) -> u64 {
        self.index.lock().expect("content index").total
    }

    /// A stream of a stored blob, if the store has it. The bytes are not
    /// hashed again: they were verified on their way in, and the store's
    /// files are the daemon's alone. A file of the wrong size is dropped
    /// from the store and reported missing.
    pub async fn get(&self, desc: &Descriptor) -> Option<ByteStream> {
        self.read_range(desc, 0, 0).await
    }

    /// A stored blob's file, opened for reading and marked used, if the
    /// store has `desc` (its size checked, as [`Self::get`] does), for a
    /// caller that copies it whole.
    pub async fn open_blob(&self, desc: &Descriptor) -> Option<std::fs::File> {
        self.open_stored(desc).await
    }

    /// Opens a stored blob, marking it used. A descriptor of another size
    /// than the stored blob's finds nothing; a file of another size than
    /// the one stored is forgotten.
    async fn open_stored(&self, desc: &Descriptor) -> Option<std::fs::File> {
        let size = {
            let mut index = self.index.lock().expect("content index");
            index.clock += 1;
            let clock = index.clock;
            let Some(entry) = index.entries.get_mut(&desc.digest) else {
                crate::metrics::STORE_MISSES.inc();
                return None;
            };
            entry.used = clock;
            entry.size
        };
        crate::metrics::STORE_HITS.inc();
        if size != desc.size {
            return None;
        }
        let path = self.path(&desc.digest);
        let opened = tokio::task::spawn_blocking(move || read::open_sized(&path, size)).await;
        match opened {
            Ok(Ok(file)) => Some(file),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                tracing::warn!(digest = %desc.digest, error = %e, "dropping a damaged blob from the content store");
                self.forget(&desc.digest);
                None
            }
            _ => None,
        }
    }

    /// Removes a blob from the index and the disk.
    fn forget(&self, digest: &Digest) {
        let mut index = self.index.lock().expect("content index");
        if let Some(entry) = index.entries.remove(digest) {
            index.total -= entry.size;
            let _ = std::fs::remove_file(self.path(digest));
        }
    }

    /// Serves `desc` from the store, or through `fetch` (a verified stream
    /// from the source), storing what passes. Concurrent callers for one
    /// digest share a single download.
    pub async fn fetch_through<F>(
        self: &Arc<Self>,
        desc: &Descriptor,
        fetch: F,
    ) -> Result<ByteStream>
    where
        F: std::future::Future<Output = Result<ByteStream>>,
    {
        loop {
            if let Some(stream) = self.get(desc).await {
                return Ok(stream);
            }
            // Decide under the lock, act after it: the guard must not live
            // across an await.
            let role = {
                let mut inflight = self.inflight.lock().expect("inflight");
                match inflight.get(&desc.digest) {
                    Some(rx) => Err(rx.clone()),
                    None => {
                        let (tx, rx) = watch::channel(false);
                        inflight.insert(desc.digest.clone(), rx);
                        Ok(tx)
                    }
                }
            };
            match role {
                Ok(tx) => {
                    return match fetch.await {
                        Ok(source) => Ok(self.tee(desc.clone(), source, tx).await),
                        Err(e) => {
                            self.inflight.lock().expect("inflight").remove(&desc.digest);
                            let _ = tx.send(true);
                            Err(e)
                        }
                    };
                }
                Err(mut rx) => {
                    // Wait for the leader; then look again (it may have
                    // failed, in which case this caller leads).
                    let _ = rx.wait_for(|done| *done).await;
                }
            }
        }
    }

    /// Moves a verified blob into place and indexes it, pinned until `pin`
    /// if given, then evicts what no longer fits.
    /// (A rename and a lock: quick enough to call from a task.)
    fn commit_now(&self, tmp: &Path, desc: &Descriptor, pin: Option<Instant>) {
        let dest = self.path(&desc.digest);
        if let Some(dir) = dest.parent() {
            let _ = private::private_dir(dir);
        }
        if std::fs::rename(tmp, &dest).is_err() {
            let _ = std::fs::remove_file(tmp);
            return;
        }
        {
            let mut index = self.index.lock().expect("content index");
            index.clock += 1;
            let clock = index.clock;
            // A blob stored again keeps the later of its pins.
            let earlier = index.entries.get(&desc.digest).and_then(|e| e.pinned_until);
            if index
                .entries
                .insert(
                    desc.digest.clone(),
                    Entry {
                        size: desc.size,
                        used: clock,
                        pinned_until: pin.max(earlier),
                    },
                )
                .is_none()
            {
                index.total += desc.size;
            }
        }
        self.evict(Some(&desc.digest));
    }

    /// A stream of `length` bytes (0: to the end) of a stored blob from
    /// `offset`, from a copy that was verified when it was stored.
    pub async fn read_range(
        &self,
        desc: &Descriptor,
        offset: u64,
        length: u64,
    ) -> Option<ByteStream> {
        let file = self.open_stored(desc).await?;
        let rest = desc.size.saturating_sub(offset);
        let take = if length == 0 { rest } else { length.min(rest) };
        Some(read::file_stream(
            file,
            offset,
            take,
            "reading a stored blob failed",
        ))
    }

    /// Removes least recently used blobs until the store fits, sparing `keep`
    /// and pinned uploads (which may hold the store over its bound until
    /// their pins run out).
    fn evict(&self, keep: Option<&Digest>) {
        let now = Instant::now();
        let mut index = self.index.lock().expect("content index");
        while index.total + self.ingest_bytes.load(Ordering::Relaxed) > self.max_bytes {
            let victim = index
                .entries
                .iter()
                .filter(|(d, e)| Some(*d) != keep && e.pinned_until.is_none_or(|t| t <= now))
                .min_by_key(|(_, e)| e.used)
                .map(|(d, _)| d.clone());
            let Some(victim) = victim else { break };
            let entry = index.entries.remove(&victim).expect("present");
            index.total -= entry.size;
            crate::metrics::STORE_EVICTIONS.inc();
            // Open readers keep their copy: unlinking does not cut them off.
            let _ = std::fs::remove_file(self.path(&victim));
            let _ = std::fs::remove_file(self.pin_path(&victim));
        }
    }
}

/// A tee's file under `ingest/`: counted while it exists, removed when the
/// tee ends without committing it.
struct Partial {
    path: PathBuf,
    bytes: Arc<AtomicU64>,
    written: u64,
    /// Set once the file has been moved into the store.
    kept: bool,
}

impl Partial {
    fn grow(&mut self, n: u64) {
        self.written += n;
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// The file is about to become a blob (counted as one from then on).
    fn hand_over(&mut self) {
        uploads::release(&self.bytes, std::mem::take(&mut self.written));
        self.kept = true;
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        uploads::release(&self.bytes, self.written);
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Clears the in-flight mark and wakes waiters when a tee ends.
struct Release {
    store: Arc<ContentStore>,
    digest: Digest,
    done: watch::Sender<bool>,
}

impl Drop for Release {
    fn drop(&mut self) {
        self.store
            .inflight
            .lock()
            .expect("inflight")
            .remove(&self.digest);
        let _ = self.done.send(true);
    }
}

#[cfg(test)]
mod tests;

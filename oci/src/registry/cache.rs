//! What the registry client remembers between calls, so a warm daemon asks
//! a registry only what it cannot know.
//!
//! - Manifests by digest, per repository: content addressed by digest never
//!   changes. Their bytes go to the daemon's content store when it has one
//!   (read back verified), else to a bounded in-memory map; the repository
//!   key records that this repository served the digest.
//! - Tags (what a tag resolves to) and referrer listings change: they are
//!   kept for a short time-to-live ([`DEFAULT_TAG_TTL`]; zero keeps none),
//!   and forgotten on this daemon's own writes. A value fetched before a
//!   write it could have missed is not kept.
//! - Single flight: a fetch takes the key's lock ([`Cache::flight`]), so
//!   concurrent identical fetches wait for the first and take its answer,
//!   which counts as fresh for every caller that asked before it began,
//!   whatever the time-to-live.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use crate::content::ContentStore;
use crate::digest::Digest;
use crate::locks::KeyedLocks;
use crate::manifest::Descriptor;

/// How long tags and referrer listings are kept unless configured.
pub const DEFAULT_TAG_TTL: Duration = Duration::from_secs(3);
/// The most manifest bytes kept in memory (without a content store).
const MAX_MEMORY_BYTES: usize = 32 << 20;
/// The most entries of each map; past it, the oldest go.
const MAX_ENTRIES: usize = 8192;

/// The client's memory of manifests, tags and referrer listings.
pub(crate) struct Cache {
    /// How long tags and listings are kept.
    ttl: Duration,
    /// Where manifest bytes go, if the daemon has a content store.
    store: Option<Arc<ContentStore>>,
    manifests: Mutex<Manifests>,
    /// Tag to descriptor, by `registry/repo:tag`.
    tags: Mutex<Timed<Descriptor>>,
    /// Referrer listings, by `registry/repo@subject#type`, grouped by
    /// `registry/repo@subject`.
    listings: Mutex<Timed<Vec<Descriptor>>>,
    /// Tag listings, by `registry/repo`.
    tag_lists: Mutex<Timed<Vec<String>>>,
    /// One fetch per key at a time.
    flights: KeyedLocks,
}

/// Manifests by `registry/repo@digest`.
#[derive(Default)]
struct Manifests {
    entries: HashMap<String, Kept>,
    /// Bytes held in memory.
    bytes: usize,
    clock: u64,
}

struct Kept {
    descriptor: Descriptor,
    /// The bytes, when there is no content store.
    data: Option<Bytes>,
    /// Whether the bytes went to the content store (a HEAD gives only the
    /// descriptor).
    in_store: bool,
    used: u64,
}

/// Values that change, with when they were fetched, and when each group
/// was last written by this daemon.
struct Timed<V> {
    entries: HashMap<String, (Instant, String, V)>,
    writes: HashMap<String, Instant>,
}

impl<V> Default for Timed<V> {
    fn default() -> Self {
        Timed {
            entries: HashMap::new(),
            writes: HashMap::new(),
        }
    }
}

impl<V: Clone> Timed<V> {
    /// The value of `key` if it is younger than `ttl` or was fetched after
    /// `asked`.
    fn get(&self, key: &str, asked: Instant, ttl: Duration) -> Option<V> {
        let (fetched, _, value) = self.entries.get(key)?;
        (fetched.elapsed() < ttl || *fetched >= asked).then(|| value.clone())
    }

    /// Keeps `value`, fetched at `fetched`, unless its group was written
    /// since (the value may predate the write).
    fn put(&mut self, group: &str, key: &str, fetched: Instant, value: V) {
        if self.writes.get(group).is_some_and(|w| *w >= fetched) {
            return;
        }
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.clear();
            self.writes
                .retain(|_, w| w.elapsed() < Duration::from_secs(60));
        }
        self.entries
            .insert(key.to_string(), (fetched, group.to_string(), value));
    }

    /// Forgets every value of `group` and refuses those fetched before now.
    fn forget(&mut self, group: &str) {
        self.entries.retain(|_, (_, g, _)| g != group);
        self.writes.insert(group.to_string(), Instant::now());
    }
}

impl Cache {
    /// A cache keeping tags and listings for `ttl`, manifest bytes in
    /// `store` when given.
    pub(crate) fn new(ttl: Duration, store: Option<Arc<ContentStore>>) -> Self {
        Cache {
            ttl,
            store,
            manifests: Mutex::default(),
            tags: Mutex::default(),
            listings: Mutex::default(),
            tag_lists: Mutex::default(),
            flights: KeyedLocks::default(),
        }
    }

    /// Holds the fetch of `key`: concurrent fetches of one key wait here
    /// and then find the first one's answer.
    pub(crate) async fn flight(&self, key: &str) -> tokio::sync::OwnedMutexGuard<()> {
        self.flights.lock(key).await
    }

    /// The descriptor of a manifest this repository served (`key` is
    /// `registry/repo@digest`).
    pub(crate) fn manifest_descriptor(&self, key: &str) -> Option<Descriptor> {
        let mut m = self.manifests.lock().expect("manifest cache");
        m.clock += 1;
        let clock = m.clock;
        let kept = m.entries.get_mut(key)?;
        kept.used = clock;
        Some(kept.descriptor.clone())
    }

    /// A manifest this repository served, with its bytes.
    pub(crate) async fn manifest(&self, key: &str) -> Option<(Descriptor, Bytes)> {
        let descriptor = self.manifest_descriptor(key)?;
        let (data, in_store) = {
            let m = self.manifests.lock().expect("manifest cache");
            let kept = m.entries.get(key)?;
            (kept.data.clone(), kept.in_store)
        };
        if let Some(data) = data {
            return Some((descriptor, data));
        }
        let store = self.store.as_ref().filter(|_| in_store)?;
        let Some(mut stream) = store.get(&descriptor).await else {
            // Evicted from the store: forget it here too.
            self.forget_manifest(key);
            return None;
        };
        let mut out = BytesMut::with_capacity(descriptor.size as usize);
        while let Some(piece) = stream.next().await {
            match piece {
                Ok(piece) => out.extend_from_slice(&piece),
                Err(e) => {
                    tracing::warn!(%key, error = %e, "a cached manifest failed its check");
                    self.forget_manifest(key);
                    return None;
                }
            }
        }
        Some((descriptor, out.freeze()))
    }

    /// Forgets a manifest (deleted, or failing its check).
    pub(crate) fn forget_manifest(&self, key: &str) {
        let mut m = self.manifests.lock().expect("manifest cache");
        if let Some(gone) = m.entries.remove(key) {
            m.bytes -= gone.data.map_or(0, |d| d.len());
        }
    }

    /// Keeps the descriptor of a manifest this repository has (from a HEAD
    /// by digest), unless more is known already.
    pub(crate) fn keep_descriptor(&self, key: &str, descriptor: &Descriptor) {
        if self.manifest_descriptor(key).is_none() {
            self.insert(key, descriptor, None, false);
        }
    }

    /// Keeps a manifest whose bytes were checked against `descriptor`'s
    /// digest.
    pub(crate) async fn keep_manifest(&self, key: &str, descriptor: &Descriptor, data: &Bytes) {
        let in_memory = match &self.store {
            Some(store) => {
                if store.size_of(&descriptor.digest).is_none() {
                    let body = futures::stream::iter([Ok(data.clone())]).boxed();
                    match store.fetch_through(descriptor, async { Ok(body) }).await {
                        // Reading the tee to its end commits it.
                        Ok(mut tee) => while let Some(Ok(_)) = tee.next().await {},
                        Err(e) => tracing::debug!(error = %e, "manifest not stored"),
                    }
                }
                None
            }
            None => Some(data.clone()),
        };
        let in_store = in_memory.is_none();
        self.insert(key, descriptor, in_memory, in_store);
    }

    fn insert(&self, key: &str, descriptor: &Descriptor, in_memory: Option<Bytes>, in_store: bool) {
        let descriptor = Descriptor {
            artifact_type: None,
            annotations: Default::default(),
            ..descriptor.clone()
        };
        let mut m = self.manifests.lock().expect("manifest cache");
        let added = in_memory.as_ref().map_or(0, Bytes::len);
        while !m.entries.is_empty()
            && (m.entries.len() >= MAX_ENTRIES || m.bytes + added > MAX_MEMORY_BYTES)
        {
            let oldest = m
                .entries
                .iter()
                .min_by_key(|(_, k)| k.used)
                .map(|(key, _)| key.clone())
                .expect("not empty");
            let gone = m.entries.remove(&oldest).expect("present");
            m.bytes -= gone.data.map_or(0, |d| d.len());
        }
        m.clock += 1;
        let used = m.clock;
        m.bytes += added;
        if let Some(old) = m.entries.insert(
            key.to_string(),
            Kept {
                descriptor,
                data: in_memory,
                in_store,
                used,
            },
        ) {
            m.bytes -= old.data.map_or(0, |d| d.len());
        }
    }

    /// Forgets everything of `registry` (after a logout: what its
    /// credentials fetched is not served without them).
    pub(crate) fn forget_registry(&self, registry: &str) {
        let prefix = format!("{registry}/");
        {
            let mut m = self.manifests.lock().expect("manifest cache");
            m.entries.retain(|k, _| !k.starts_with(&prefix));
            m.bytes = m
                .entries
                .values()
                .map(|k| k.data.as_ref().map_or(0, Bytes::len))
                .sum();
        }
        let mut tags = self.tags.lock().expect("tag cache");
        tags.entries.retain(|k, _| !k.starts_with(&prefix));
        let mut listings = self.listings.lock().expect("listing cache");
        listings.entries.retain(|k, _| !k.starts_with(&prefix));
        let mut lists = self.tag_lists.lock().expect("tag list cache");
        lists.entries.retain(|k, _| !k.starts_with(&prefix));
    }

    /// What `key` (`registry/repo:tag`) resolved to, if fresh enough for a
    /// caller who asked at `asked`.
    pub(crate) fn tag(&self, key: &str, asked: Instant) -> Option<Descriptor> {
        let tags = self.tags.lock().expect("tag cache");
        tags.get(key, asked, self.ttl)
    }

    /// Keeps what a tag resolved to, by a fetch that began at `fetched`.
    pub(crate) fn keep_tag(&self, key: &str, fetched: Instant, descriptor: &Descriptor) {
        let mut tags = self.tags.lock().expect("tag cache");
        tags.put(key, key, fetched, descriptor.clone());
    }

    /// Forgets a tag this daemon wrote or deleted.
    pub(crate) fn forget_tag(&self, key: &str) {
        self.tags.lock().expect("tag cache").forget(key);
    }

    /// Forgets every tag of `repo` (`registry/repo`) that named `digest`.
    pub(crate) fn forget_tags_of(&self, repo: &str, digest: &Digest) {
        let mut tags = self.tags.lock().expect("tag cache");
        let prefix = format!("{repo}:");
        let gone: Vec<String> = tags
            .entries
            .iter()
            .filter(|(k, (_, _, d))| k.starts_with(&prefix) && &d.digest == digest)
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            tags.forget(&key);
        }
    }

    /// A referrer listing (`key` names subject and filter, `group` the
    /// subject), if fresh enough for a caller who asked at `asked`.
    pub(crate) fn listing(&self, key: &str, asked: Instant) -> Option<Vec<Descriptor>> {
        let listings = self.listings.lock().expect("listing cache");
        listings.get(key, asked, self.ttl)
    }

    /// Keeps a referrer listing fetched at `fetched`.
    pub(crate) fn keep_listing(
        &self,
        group: &str,
        key: &str,
        fetched: Instant,
        list: &[Descriptor],
    ) {
        let mut listings = self.listings.lock().expect("listing cache");
        listings.put(group, key, fetched, list.to_vec());
    }

    /// Forgets every listing of a subject (`group`) this daemon changed.
    pub(crate) fn forget_listings(&self, group: &str) {
        self.listings.lock().expect("listing cache").forget(group);
    }

    /// The tags of `repo` (`registry/repo`), if fresh enough for a caller
    /// who asked at `asked`.
    pub(crate) fn tag_list(&self, repo: &str, asked: Instant) -> Option<Vec<String>> {
        let lists = self.tag_lists.lock().expect("tag list cache");
        lists.get(repo, asked, self.ttl)
    }

    /// Keeps the tags of `repo`, listed by a fetch that began at `fetched`.
    pub(crate) fn keep_tag_list(&self, repo: &str, fetched: Instant, tags: &[String]) {
        let mut lists = self.tag_lists.lock().expect("tag list cache");
        lists.put(repo, repo, fetched, tags.to_vec());
    }

    /// Forgets the tags of `repo` after this daemon tagged or deleted there.
    pub(crate) fn forget_tag_list(&self, repo: &str) {
        self.tag_lists.lock().expect("tag list cache").forget(repo);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(data: &[u8]) -> Descriptor {
        Descriptor::for_bytes(crate::manifest::MEDIA_TYPE_MANIFEST, data)
    }

    #[tokio::test]
    async fn manifests_in_memory_by_repository_and_digest() {
        let cache = Cache::new(Duration::ZERO, None);
        let data = Bytes::from_static(b"{\"schemaVersion\":2}");
        let d = desc(&data);
        let key = format!("r/a@{}", d.digest);
        cache.keep_manifest(&key, &d, &data).await;
        assert_eq!(cache.manifest(&key).await.unwrap().1, data);
        assert!(cache.manifest(&format!("r/b@{}", d.digest)).await.is_none());
    }

    #[tokio::test]
    async fn manifests_in_the_content_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(ContentStore::open(dir.path(), 1 << 20).unwrap());
        let cache = Cache::new(Duration::ZERO, Some(store.clone()));
        let data = Bytes::from_static(b"{\"schemaVersion\":2,\"x\":1}");
        let d = desc(&data);
        let key = format!("r/a@{}", d.digest);
        cache.keep_manifest(&key, &d, &data).await;
        assert_eq!(store.size_of(&d.digest), Some(data.len() as u64));
        assert_eq!(cache.manifest(&key).await.unwrap().1, data);
    }

    #[test]
    fn tags_live_for_the_ttl_and_die_on_writes() {
        let cache = Cache::new(Duration::from_secs(60), None);
        let d = desc(b"x");
        let before = Instant::now();
        cache.keep_tag("r/a:t", Instant::now(), &d);
        assert!(cache.tag("r/a:t", Instant::now()).is_some());
        cache.forget_tags_of("r/a", &d.digest);
        assert!(cache.tag("r/a:t", Instant::now()).is_none());
        // A fetch that began before the write is not kept.
        cache.keep_tag("r/a:t", before, &d);
        assert!(cache.tag("r/a:t", Instant::now()).is_none());
    }

    #[test]
    fn tag_lists_live_for_the_ttl_and_die_on_writes_and_logouts() {
        let cache = Cache::new(Duration::from_secs(60), None);
        let tags = vec!["v1".to_string()];
        let before = Instant::now();
        cache.keep_tag_list("r/a", Instant::now(), &tags);
        assert_eq!(cache.tag_list("r/a", Instant::now()), Some(tags.clone()));
        cache.forget_tag_list("r/a");
        assert!(cache.tag_list("r/a", Instant::now()).is_none());
        cache.keep_tag_list("r/a", before, &tags);
        assert!(cache.tag_list("r/a", Instant::now()).is_none());
        cache.keep_tag_list("r/b", Instant::now(), &tags);
        cache.forget_registry("r");
        assert!(cache.tag_list("r/b", Instant::now()).is_none());
    }

    #[test]
    fn a_zero_ttl_still_shares_one_flight() {
        let cache = Cache::new(Duration::ZERO, None);
        let asked = Instant::now();
        let fetched = Instant::now();
        cache.keep_listing("r/a@s", "r/a@s#", fetched, &[desc(b"x")]);
        // Asked before the fetch began: its answer will do.
        assert!(cache.listing("r/a@s#", asked).is_some());
        // Asked after: not kept at all.
        assert!(cache.listing("r/a@s#", Instant::now()).is_none());
        cache.forget_listings("r/a@s");
        assert!(cache.listing("r/a@s#", asked).is_none());
    }
}

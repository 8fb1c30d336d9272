//! The reconciler: no referrer this daemon wrote to a tag-schema index is
//! lost to another writer's read-modify-write of the same tag.
//!
//! A registry cannot make that read-modify-write atomic, so two writers
//! (replicas of this daemon, the ORAS CLI) can each write an index missing
//! the other's entry. Every entry this daemon adds is first written to the
//! [journal](super::journal), and its subject watched: the index is read
//! again after 0.5 s, then at growing intervals (at most 15 s apart) for a
//! window (default a minute) after the last change. An entry missing from
//! the index on two looks in a row whose manifest still exists is merged
//! back; one whose manifest is gone was deleted and leaves the journal. An
//! entry leaves the journal when the index has held it across the window,
//! when it is deleted through Satchel, or when its index could not be read
//! for an hour (logged as an error). A daemon that starts watches every
//! journalled subject again, so an attach that returned survives a crash
//! of its daemon (its journal entry was synced before the answer).
//!
//! The journal directory is locked (flock) by the daemon using it: two
//! daemons never share one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::fallback::Change;
use super::journal::{Entry, Journal};
use super::{ReferrersMode, RegistryClient, Repository};
use crate::digest::Digest;
use crate::error::{ErrorKind, Result};
use crate::manifest::Descriptor;
use crate::reference::Reference;

/// How long a written referrer is watched after its last change.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
/// The first look, and the shortest wait between looks.
const FIRST_LOOK: Duration = Duration::from_millis(500);
/// The longest wait between looks.
const MAX_WAIT: Duration = Duration::from_secs(15);
/// How long a subject whose index cannot be read is retried before its
/// entries are given up (and logged as errors).
const GIVE_UP: Duration = Duration::from_secs(3600);

/// The journal and the subjects being watched; one per registry client.
#[derive(Default)]
pub(super) struct Reconciler {
    journal: Option<Journal>,
    /// Watched subjects by `registry/repository@subject`.
    watches: Mutex<HashMap<String, Watch>>,
}

/// One subject's journalled referrers, by digest.
#[derive(Default)]
struct Watch {
    pending: HashMap<Digest, Pending>,
}

struct Pending {
    entry: Entry,
    /// When it was written or last merged back.
    since: Instant,
    /// Whether the last look found it missing from the index. An entry is
    /// merged back only when two looks in a row miss it: a tool that
    /// deletes a referrer (the ORAS CLI) takes it out of the index first
    /// and deletes its manifest after, and one look between the two would
    /// otherwise put back an entry about to point at nothing.
    missed: bool,
}

impl Reconciler {
    /// A reconciler journalling in `dir`.
    pub(super) fn open(dir: &std::path::Path) -> Result<Reconciler> {
        Ok(Reconciler {
            journal: Some(Journal::open(dir)?),
            watches: Mutex::default(),
        })
    }

    /// How many referrers wait to be seen in their indexes.
    pub(super) fn backlog(&self) -> usize {
        let watches = self.watches.lock().expect("watches lock");
        watches.values().map(|w| w.pending.len()).sum()
    }
}

impl RegistryClient {
    /// Watches every subject the journal names again: for a daemon that
    /// starts. Returns how many entries it found.
    pub fn resume_journal(self: &Arc<Self>) -> usize {
        let Some(journal) = &self.reconciler.journal else {
            return 0;
        };
        let entries = journal.load();
        let found = entries.len();
        for entry in entries {
            let name = format!("{}/{}", entry.registry, entry.repository);
            let Ok(reference) = Reference::parse(&name) else {
                tracing::warn!(%name, "a journal entry names no repository; set aside");
                journal.forget(&entry);
                continue;
            };
            Repository::new(self.clone(), &reference, entry.plain_http)
                .with_referrers_mode(ReferrersMode::TagSchema)
                .watch(entry);
        }
        found
    }

    /// How many referrers wait to be seen in their indexes.
    pub fn journal_backlog(&self) -> usize {
        self.reconciler.backlog()
    }
}

impl Repository {
    fn watch_key(&self, subject: &Digest) -> String {
        format!("{}@{subject}", self.name.name())
    }

    fn window(&self) -> Duration {
        self.client
            .options
            .reconcile_window
            .unwrap_or(DEFAULT_WINDOW)
    }

    /// Journals `referrer` of `subject` durably and watches the subject;
    /// returns a warning, for the caller, when the journal cannot be
    /// written (the index is still updated, but not guarded).
    pub(super) async fn journal(&self, subject: &Digest, referrer: &Descriptor) -> Option<String> {
        self.client.reconciler.journal.as_ref()?;
        let entry = Entry::new(
            self.name.registry(),
            self.name.repository(),
            self.scheme == "http",
            subject,
            referrer,
        );
        let client = self.client.clone();
        let record = entry.clone();
        let recorded = tokio::task::spawn_blocking(move || {
            let journal = client.reconciler.journal.as_ref().expect("a journal");
            journal.record(&record)
        })
        .await
        .expect("the journal write does not panic");
        match recorded {
            Ok(()) => {
                self.watch(entry);
                None
            }
            Err(e) => {
                tracing::warn!(%subject, error = %e, "the referrer is not journalled");
                Some(format!(
                    "{} was not journalled, so another writer may drop it unnoticed: {e}",
                    referrer.digest
                ))
            }
        }
    }

    /// Drops `referrer` of `subject` from the journal, after a failed push
    /// or a delete through Satchel.
    pub(super) fn unjournal(&self, subject: &Digest, referrer: &Digest) {
        let key = self.watch_key(subject);
        let mut watches = self.client.reconciler.watches.lock().expect("watches lock");
        let gone = watches
            .get_mut(&key)
            .and_then(|w| w.pending.remove(referrer));
        drop(watches);
        if let (Some(journal), Some(gone)) = (&self.client.reconciler.journal, gone) {
            journal.forget(&gone.entry);
        }
    }

    /// Adds `entry` to its subject's watch, starting the watch's task when
    /// the subject was not watched.
    fn watch(&self, entry: Entry) {
        let key = self.watch_key(&entry.subject);
        let subject = entry.subject.clone();
        let mut watches = self.client.reconciler.watches.lock().expect("watches lock");
        let fresh = !watches.contains_key(&key);
        let watch = watches.entry(key).or_default();
        let pending = Pending {
            entry,
            since: Instant::now(),
            missed: false,
        };
        watch
            .pending
            .insert(pending.entry.referrer.digest.clone(), pending);
        if fresh {
            tokio::spawn(self.clone().watch_subject(subject));
        }
    }

    /// The watch of one subject: look, wait, look again, until nothing it
    /// journalled is left to see.
    async fn watch_subject(self, subject: Digest) {
        let key = self.watch_key(&subject);
        let mut last_read = Instant::now();
        loop {
            let newest = {
                let watches = self.client.reconciler.watches.lock().expect("watches lock");
                let Some(watch) = watches.get(&key) else {
                    return;
                };
                watch.pending.values().map(|p| p.since).max()
            };
            let age = newest.map_or(MAX_WAIT, |n| n.elapsed());
            tokio::time::sleep(age.clamp(FIRST_LOOK, MAX_WAIT)).await;
            match self.reconcile(&subject).await {
                Ok(()) => last_read = Instant::now(),
                Err(e) if last_read.elapsed() < GIVE_UP => {
                    tracing::warn!(%subject, error = %e, "cannot check the referrers index; will retry");
                }
                Err(e) => {
                    tracing::error!(%subject, error = %e, "gave up checking the referrers index");
                    self.retire_stale(&subject).await;
                }
            }
            let mut watches = self.client.reconciler.watches.lock().expect("watches lock");
            if watches.get(&key).is_none_or(|w| w.pending.is_empty()) {
                watches.remove(&key);
                return;
            }
        }
    }

    /// One look at `subject`'s index, holding the subject's lock: merges
    /// back journalled entries another writer dropped (whose manifests
    /// still exist), forgets those whose manifests were deleted, and
    /// retires those held across the window.
    async fn reconcile(&self, subject: &Digest) -> Result<()> {
        let key = self.watch_key(subject);
        let _guard = self.client.fallback_locks.lock(&key).await;
        let read = self.fallback_index(subject, true).await?;
        let pending: Vec<(Descriptor, bool)> = {
            let watches = self.client.reconciler.watches.lock().expect("watches lock");
            let Some(watch) = watches.get(&key) else {
                return Ok(());
            };
            watch
                .pending
                .values()
                .map(|p| (p.entry.referrer.clone(), p.missed))
                .collect()
        };
        let mut look = Look::default();
        for (referrer, missed_before) in pending {
            if read
                .index
                .manifests
                .iter()
                .any(|d| d.digest == referrer.digest)
            {
                continue;
            }
            match self.resolve_fresh(referrer.digest.as_ref()).await {
                Ok(_) if missed_before => look.missing.push(referrer),
                Ok(_) => look.missed.push(referrer.digest),
                Err(e) if e.kind() == ErrorKind::NotFound => look.deleted.push(referrer.digest),
                // One referrer the registry cannot answer for does not hold
                // up the others; it is asked about again next look.
                Err(e) => {
                    tracing::warn!(%subject, referrer = %referrer.digest, error = %e, "cannot tell whether a journalled referrer exists");
                    look.missed.push(referrer.digest);
                }
            }
        }
        let missing = look.missing.clone();
        if !missing.is_empty() {
            let mut change = Change::adding(subject, missing.clone());
            let mut warnings = Vec::new();
            let superseded = self.write_read(&mut change, read, &mut warnings).await?;
            self.forget_referrers(subject);
            crate::metrics::REPAIRS.inc_by(missing.len() as u64);
            tracing::info!(
                %subject, merged_back = missing.len(),
                "merged back referrers another writer's index dropped"
            );
            for warning in warnings {
                tracing::warn!(%warning, "referrers index");
            }
            if let Some(superseded) = superseded {
                self.delete_superseded(subject, superseded).await;
            }
        }
        self.settle(&key, &look);
        Ok(())
    }

    /// Deletes the index a merge-back replaced, once a fresh read shows the
    /// tag on another index that holds all its entries: another writer may
    /// have tagged the very same bytes meanwhile, and on docker-registry
    /// deleting those by digest would take the tag with them.
    async fn delete_superseded(&self, subject: &Digest, (old, had): super::fallback::Superseded) {
        let now = match self.fallback_index(subject, true).await {
            Ok(now) => now,
            Err(e) => {
                tracing::debug!(%subject, %old, error = %e, "the old referrers index was left behind");
                return;
            }
        };
        let holds = had
            .iter()
            .all(|d| now.index.manifests.iter().any(|m| &m.digest == d));
        if now.digest.as_ref() == Some(&old) || !holds {
            tracing::debug!(%subject, %old, "kept the old referrers index: the tag still needs it");
            return;
        }
        if let Err(e) = self.delete_manifest(&old).await {
            tracing::debug!(%subject, %old, error = %e, "the old referrers index was left behind");
        }
    }

    /// After a look: entries merged back start their window again, deleted
    /// ones leave, those missed once wait for the next look, and those held
    /// across the window retire.
    fn settle(&self, key: &str, look: &Look) {
        let window = self.window();
        let mut gone = Vec::new();
        let mut watches = self.client.reconciler.watches.lock().expect("watches lock");
        let Some(watch) = watches.get_mut(key) else {
            return;
        };
        watch.pending.retain(|digest, p| {
            p.missed = look.missed.contains(digest);
            if look.missing.iter().any(|m| &m.digest == digest) {
                p.since = Instant::now();
                return true;
            }
            if p.missed {
                return true;
            }
            let leaves = look.deleted.contains(digest) || p.since.elapsed() >= window;
            if leaves {
                gone.push(p.entry.clone());
            }
            !leaves
        });
        drop(watches);
        if let Some(journal) = &self.client.reconciler.journal {
            for entry in &gone {
                journal.forget(entry);
            }
        }
    }

    /// Gives up the entries of `subject` journalled more than [`GIVE_UP`]
    /// ago, holding the subject's lock; younger ones get their own time.
    async fn retire_stale(&self, subject: &Digest) {
        let key = self.watch_key(subject);
        let _guard = self.client.fallback_locks.lock(&key).await;
        let mut gone = Vec::new();
        {
            let mut watches = self.client.reconciler.watches.lock().expect("watches lock");
            if let Some(watch) = watches.get_mut(&key) {
                watch.pending.retain(|_, p| {
                    let stale = p.since.elapsed() >= GIVE_UP;
                    if stale {
                        gone.push(p.entry.clone());
                    }
                    !stale
                });
            }
        }
        if let Some(journal) = &self.client.reconciler.journal {
            for entry in &gone {
                journal.forget(entry);
            }
        }
    }
}

/// What one look at an index found of the journalled entries it lacks.
#[derive(Default)]
struct Look {
    /// Missing twice in a row, manifest there: merged back.
    missing: Vec<Descriptor>,
    /// Missing for the first time (or unknown): looked at again.
    missed: Vec<Digest>,
    /// Manifest gone: deleted on purpose.
    deleted: Vec<Digest>,
}

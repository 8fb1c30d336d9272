//! The reconciler: no referrer this daemon wrote to a tag-schema index is
//! lost to another writer's read-modify-write of the same tag.
//!
//! A registry cannot make that read-modify-write atomic, so two writers
//! (replicas of this daemon, the ORAS CLI) can each write an index missing
//! the other's entry. Every entry this daemon adds is first written to the
//! [journal](super::journal), and its subject watched: the index is read
//! again after 0.5 s, then at growing intervals (at most 15 s apart) for a
//! window (default a minute) after the last change. An entry missing from
//! the index whose manifest still exists is merged back; one whose manifest
//! is gone was deleted and leaves the journal. An entry leaves the journal
//! when the index has held it across the window, or when it is deleted
//! through Satchel. A daemon that starts watches every journalled subject
//! again, so a crash loses nothing that had returned.

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
                    self.retire_all(&key);
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
        let pending: Vec<Descriptor> = {
            let watches = self.client.reconciler.watches.lock().expect("watches lock");
            let Some(watch) = watches.get(&key) else {
                return Ok(());
            };
            watch
                .pending
                .values()
                .map(|p| p.entry.referrer.clone())
                .collect()
        };
        let mut missing = Vec::new();
        let mut deleted = Vec::new();
        for referrer in pending {
            if read
                .index
                .manifests
                .iter()
                .any(|d| d.digest == referrer.digest)
            {
                continue;
            }
            match self.resolve_fresh(referrer.digest.as_ref()).await {
                Ok(_) => missing.push(referrer),
                Err(e) if e.kind() == ErrorKind::NotFound => deleted.push(referrer.digest),
                Err(e) => return Err(e),
            }
        }
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
            // The new index holds every entry of the one it replaced.
            if let Some((old, _)) = superseded {
                if let Err(e) = self.delete_manifest(&old).await {
                    tracing::debug!(%subject, %old, error = %e, "the old referrers index was left behind");
                }
            }
        }
        self.settle(&key, &missing, &deleted);
        Ok(())
    }

    /// After a look: entries merged back start their window again, deleted
    /// ones leave, and those held across the window retire.
    fn settle(&self, key: &str, merged: &[Descriptor], deleted: &[Digest]) {
        let window = self.window();
        let mut gone = Vec::new();
        let mut watches = self.client.reconciler.watches.lock().expect("watches lock");
        let Some(watch) = watches.get_mut(key) else {
            return;
        };
        watch.pending.retain(|digest, p| {
            if merged.iter().any(|m| &m.digest == digest) {
                p.since = Instant::now();
                return true;
            }
            let leaves = deleted.contains(digest) || p.since.elapsed() >= window;
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

    /// Gives up every entry of the watch `key`.
    fn retire_all(&self, key: &str) {
        let gone = {
            let mut watches = self.client.reconciler.watches.lock().expect("watches lock");
            watches.remove(key).map(|w| w.pending).unwrap_or_default()
        };
        if let Some(journal) = &self.client.reconciler.journal {
            for p in gone.values() {
                journal.forget(&p.entry);
            }
        }
    }
}

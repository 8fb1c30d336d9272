//! Keeping the referrers tag schema's index of a subject up to date on a
//! registry without the referrers API.
//!
//! On the caller's path: journal the new entry (see `reconcile`), read the
//! index (fresh, never from the cache; for a push, while the manifest goes
//! up), merge, write the new one. After the answer, in a task that holds
//! the subject's lock: read the index back to confirm the change landed,
//! and write it again, re-read just before, when another writer overtook
//! us. Every rewrite keeps each entry seen in any version read during the
//! update whose manifest still exists, so a writer that raced us does not
//! lose its entry to our rewrite either. Only then go the superseded
//! indexes, and only those whose every entry the index now holds. A
//! refused delete, or an index that keeps changing, is logged as a
//! warning; the reconciler repairs what this daemon wrote either way.

use bytes::Bytes;

use super::referrers::{merge_referrers, referrers_tag, IndexRead, ReferrersMode};
use super::Repository;
use crate::digest::Digest;
use crate::error::Result;
use crate::manifest::{Descriptor, ImageIndex, MEDIA_TYPE_INDEX};

/// How often a fallback update is retried when a write by someone else
/// overtook ours.
const FALLBACK_ATTEMPTS: usize = 5;

/// One change to a subject's index, and what the update has seen.
pub(super) struct Change {
    subject: Digest,
    add: Vec<Descriptor>,
    remove: Option<Digest>,
    /// Every entry of every version of the index read during the update.
    seen: Vec<Descriptor>,
}

impl Change {
    fn new(subject: &Digest, add: Option<Descriptor>, remove: Option<&Digest>) -> Change {
        Change {
            subject: subject.clone(),
            add: add.into_iter().collect(),
            remove: remove.cloned(),
            seen: Vec::new(),
        }
    }

    /// A change that adds `add` to the index of `subject`.
    pub(super) fn adding(subject: &Digest, add: Vec<Descriptor>) -> Change {
        Change {
            subject: subject.clone(),
            add,
            remove: None,
            seen: Vec::new(),
        }
    }

    /// Whether the index listing `listed` shows the change.
    fn shown_by(&self, listed: &[Descriptor]) -> bool {
        let has = |digest: &Digest| listed.iter().any(|d| &d.digest == digest);
        self.add.iter().all(|a| has(&a.digest)) && self.remove.as_ref().is_none_or(|r| !has(r))
    }
}

/// An index this update replaced: its digest and its entries' digests.
pub(super) type Superseded = (Digest, Vec<Digest>);

impl Repository {
    /// Adds `add` to and removes `remove` from the tag-schema index of
    /// `subject`, holding a per-subject lock until the change is confirmed
    /// by reading the index back (off the caller's path, see the module
    /// documentation). Returns warnings, e.g. an emptied index the registry
    /// would not delete.
    pub(crate) async fn update_fallback(
        &self,
        subject: &Digest,
        add: Option<Descriptor>,
        remove: Option<&Digest>,
    ) -> Result<Vec<String>> {
        let guard = self
            .client
            .fallback_locks
            .lock(&format!("{}@{subject}", self.name.name()))
            .await;
        let journalled = async {
            match &add {
                Some(added) => self.journal(subject, added).await,
                None => None,
            }
        };
        let (read, warning) = tokio::join!(self.fallback_index(subject, true), journalled);
        let mut change = Change::new(subject, add, remove);
        let mut warnings: Vec<String> = warning.into_iter().collect();
        let superseded = self.write_read(&mut change, read?, &mut warnings).await?;
        if let Some(removed) = remove {
            self.unjournal(subject, removed);
        }
        self.confirm_later(guard, change, superseded);
        Ok(warnings)
    }

    /// Whether this repository is known, without asking, to keep the
    /// referrers tag schema (configured, or learned from a probe).
    pub(crate) fn known_tag_schema(&self) -> bool {
        self.known_mode() == ReferrersMode::TagSchema
    }

    /// Pushes the manifest `content` (one with `subject`, on a registry
    /// [known](Repository::known_tag_schema) to keep the tag schema) and
    /// adds `entry` to the subject's index: the index is read while the
    /// manifest's PUT is in flight, and the new one written only once that
    /// PUT succeeded; confirmed as [`Repository::update_fallback`] does.
    /// Returns the manifest's descriptor and warnings.
    pub(crate) async fn push_with_fallback(
        &self,
        reference: &str,
        media_type: &str,
        content: Bytes,
        subject: &Digest,
        entry: Descriptor,
    ) -> Result<(Descriptor, Vec<String>)> {
        let guard = self
            .client
            .fallback_locks
            .lock(&format!("{}@{subject}", self.name.name()))
            .await;
        let (pushed, read, warning) = tokio::join!(
            self.push_manifest(reference, media_type, content),
            self.fallback_index(subject, true),
            self.journal(subject, &entry)
        );
        let (desc, _) = pushed.inspect_err(|_| self.unjournal(subject, &entry.digest))?;
        self.forget_referrers(subject);
        let mut change = Change::new(subject, Some(entry), None);
        let mut warnings: Vec<String> = warning.into_iter().collect();
        let written = match read {
            Ok(read) => self.write_read(&mut change, read, &mut warnings).await,
            Err(e) => Err(e),
        };
        self.forget_referrers(subject);
        let superseded = written?;
        self.confirm_later(guard, change, superseded);
        Ok((desc, warnings))
    }

    /// Confirms `change` after the answer, in a task that holds the
    /// subject's lock `guard` (see the module documentation).
    fn confirm_later(
        &self,
        guard: tokio::sync::OwnedMutexGuard<()>,
        change: Change,
        superseded: Option<Superseded>,
    ) {
        let repo = self.clone();
        tokio::spawn(async move {
            let _guard = guard;
            repo.confirm_fallback(change, superseded).await;
        });
    }

    /// Reads, merges and writes the index once; returns the superseded
    /// index to delete once the new one is confirmed.
    async fn write_fallback(
        &self,
        change: &mut Change,
        warnings: &mut Vec<String>,
    ) -> Result<Option<Superseded>> {
        let read = self.fallback_index(&change.subject, true).await?;
        self.write_read(change, read, warnings).await
    }

    /// Merges `change` into the index `read` and writes the result, as
    /// [`Repository::write_fallback`]. The write requires the version read
    /// where the registry allows (`If-Match`); one that refuses it because
    /// another writer came between (412) gets the merge again with a fresh
    /// read, and after [`FALLBACK_ATTEMPTS`] refusals, an unconditional
    /// write (the confirmation and the reconciler still follow).
    pub(super) async fn write_read(
        &self,
        change: &mut Change,
        mut read: IndexRead,
        warnings: &mut Vec<String>,
    ) -> Result<Option<Superseded>> {
        let subject = change.subject.clone();
        let tag = referrers_tag(&subject);
        let mut refusals = 0;
        loop {
            let had: Vec<Digest> = read
                .index
                .manifests
                .iter()
                .map(|d| d.digest.clone())
                .collect();
            let manifests = self.merged(change, read.index).await?;
            // An index left empty is deleted rather than rewritten, as ORAS
            // does, unless the registry refuses deletes; otherwise the new
            // index is written before the old one goes.
            match read.digest {
                Some(old) if manifests.is_empty() => {
                    if let Err(e) = self.delete_manifest(&old).await {
                        let empty = Bytes::from(ImageIndex::new(vec![]).to_bytes());
                        self.push_manifest(&tag, MEDIA_TYPE_INDEX, empty).await?;
                        warnings.push(format!(
                            "the emptied referrers index {old} of {subject} was left behind: {e}"
                        ));
                    }
                    return Ok(None);
                }
                None if manifests.is_empty() => return Ok(None),
                _ => {}
            }
            let precondition = read.precondition.filter(|_| refusals < FALLBACK_ATTEMPTS);
            let fresh = Bytes::from(ImageIndex::new(manifests).to_bytes());
            match self
                .push_manifest_if(&tag, MEDIA_TYPE_INDEX, fresh, precondition)
                .await?
            {
                Some((desc, _)) => {
                    let old = read.digest.filter(|old| *old != desc.digest);
                    return Ok(old.map(|old| (old, had)));
                }
                None => {
                    refusals += 1;
                    tracing::debug!(%subject, "the referrers index changed since it was read (412); merging again");
                    read = self.fallback_index(&subject, true).await?;
                }
            }
        }
    }

    /// The entries of `index` with `change` applied. Entries seen in an
    /// earlier version read during the update and missing from this one are
    /// kept when their manifests still exist (one that is gone was deleted
    /// on purpose); what this version holds is remembered as seen.
    async fn merged(&self, change: &mut Change, index: ImageIndex) -> Result<Vec<Descriptor>> {
        let mut manifests = index.manifests;
        for earlier in std::mem::take(&mut change.seen) {
            let dropped = !manifests.iter().any(|d| d.digest == earlier.digest)
                && change.remove.as_ref() != Some(&earlier.digest)
                && !change.add.iter().any(|a| a.digest == earlier.digest);
            if dropped && self.referrer_exists(&earlier.digest).await? {
                tracing::debug!(subject = %change.subject, referrer = %earlier.digest, "kept an entry another writer dropped");
                manifests.push(earlier);
            }
        }
        change.seen.clone_from(&manifests);
        let mut manifests = merge_referrers(manifests, None, change.remove.as_ref());
        for added in &change.add {
            manifests = merge_referrers(manifests, Some(added), None);
        }
        Ok(manifests)
    }

    /// Whether the referrer manifest `digest` still exists, asking the
    /// registry.
    async fn referrer_exists(&self, digest: &Digest) -> Result<bool> {
        match self.resolve_fresh(digest.as_ref()).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == crate::error::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Reads the index back until it shows `change` (writing it again when
    /// someone outside this daemon overtook us), then deletes every index
    /// it superseded whose entries the index now holds.
    async fn confirm_fallback(&self, mut change: Change, superseded: Option<Superseded>) {
        let subject = change.subject.clone();
        let mut stale: Vec<Superseded> = superseded.into_iter().collect();
        let mut current = None;
        let mut listed = Vec::new();
        for attempt in 0..FALLBACK_ATTEMPTS {
            match self.fallback_index(&subject, true).await {
                Ok(read) => {
                    current = read.digest;
                    listed = read.index.manifests;
                }
                Err(e) => {
                    tracing::warn!(%subject, error = %e, "could not read back the referrers index");
                    return;
                }
            };
            if change.shown_by(&listed) {
                break;
            }
            if attempt + 1 == FALLBACK_ATTEMPTS {
                tracing::warn!(%subject, "the referrers index kept changing under concurrent writers");
                return;
            }
            tracing::debug!(%subject, "referrers index changed under us; writing again");
            let mut warnings = Vec::new();
            match self.write_fallback(&mut change, &mut warnings).await {
                Ok(more) => stale.extend(more),
                Err(e) => {
                    tracing::warn!(%subject, error = %e, "could not rewrite the referrers index");
                    return;
                }
            }
            for warning in warnings {
                tracing::warn!(%warning, "referrers index");
            }
        }
        self.forget_referrers(&subject);
        let holds = |d: &Digest| listed.iter().any(|l| &l.digest == d);
        for (old, entries) in stale {
            if Some(&old) == current.as_ref() {
                continue;
            }
            let kept = entries
                .iter()
                .filter(|d| change.remove.as_ref() != Some(*d))
                .all(holds);
            if !kept {
                tracing::debug!(%subject, %old, "kept a superseded referrers index holding entries the current one lacks");
                continue;
            }
            if let Err(e) = self.delete_manifest(&old).await {
                tracing::warn!(
                    %subject, %old, error = %e,
                    "the old referrers index was left behind"
                );
            }
        }
    }
}

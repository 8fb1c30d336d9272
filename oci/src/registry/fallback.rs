//! Keeping the referrers tag schema's index of a subject up to date on a
//! registry without the referrers API.
//!
//! On the caller's path: read the index (fresh, never from the cache),
//! merge, write the new one. After the answer, in a task that holds the
//! subject's lock: read the index back to confirm the change landed (and
//! write it again when another writer overtook us), and only then delete
//! the superseded index. A refused delete, or an index that keeps changing,
//! is logged as a warning.

use bytes::Bytes;

use super::referrers::{merge_referrers, referrers_tag, ReferrersMode};
use super::Repository;
use crate::digest::Digest;
use crate::error::Result;
use crate::manifest::{Descriptor, ImageIndex, MEDIA_TYPE_INDEX};

/// How often a fallback update is retried when a write by someone else
/// overtook ours.
const FALLBACK_ATTEMPTS: usize = 5;

/// One change to a subject's index.
#[derive(Clone)]
struct Change {
    subject: Digest,
    add: Option<Descriptor>,
    remove: Option<Digest>,
}

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
        let change = Change {
            subject: subject.clone(),
            add,
            remove: remove.cloned(),
        };
        let mut warnings = Vec::new();
        let superseded = self.write_fallback(&change, &mut warnings).await?;
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
        let (pushed, read) = tokio::join!(
            self.push_manifest(reference, media_type, content),
            self.fallback_index(subject, true)
        );
        let (desc, _) = pushed?;
        self.forget_referrers(subject);
        let change = Change {
            subject: subject.clone(),
            add: Some(entry),
            remove: None,
        };
        let mut warnings = Vec::new();
        let written = match read {
            Ok(read) => self.write_read(&change, read, &mut warnings).await,
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
        superseded: Option<Digest>,
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
        change: &Change,
        warnings: &mut Vec<String>,
    ) -> Result<Option<Digest>> {
        let read = self.fallback_index(&change.subject, true).await?;
        self.write_read(change, read, warnings).await
    }

    /// Merges `change` into the index `read` (its digest and content) and
    /// writes the result, as [`Repository::write_fallback`].
    async fn write_read(
        &self,
        change: &Change,
        (old, index): (Option<Digest>, ImageIndex),
        warnings: &mut Vec<String>,
    ) -> Result<Option<Digest>> {
        let subject = &change.subject;
        let tag = referrers_tag(subject);
        let manifests =
            merge_referrers(index.manifests, change.add.as_ref(), change.remove.as_ref());
        // An index left empty is deleted rather than rewritten, as ORAS
        // does, unless the registry refuses deletes; otherwise the new
        // index is written before the old one goes.
        match old {
            Some(old) if manifests.is_empty() => {
                if let Err(e) = self.delete_manifest(&old).await {
                    let empty = Bytes::from(ImageIndex::new(vec![]).to_bytes());
                    self.push_manifest(&tag, MEDIA_TYPE_INDEX, empty).await?;
                    warnings.push(format!(
                        "the emptied referrers index {old} of {subject} was left behind: {e}"
                    ));
                }
                Ok(None)
            }
            None if manifests.is_empty() => Ok(None),
            old => {
                let fresh = Bytes::from(ImageIndex::new(manifests).to_bytes());
                let (desc, _) = self.push_manifest(&tag, MEDIA_TYPE_INDEX, fresh).await?;
                Ok(old.filter(|old| *old != desc.digest))
            }
        }
    }

    /// Reads the index back until it shows `change` (writing it again when
    /// someone outside this daemon overtook us), then deletes every index
    /// it superseded.
    async fn confirm_fallback(&self, change: Change, superseded: Option<Digest>) {
        let subject = &change.subject;
        let mut stale: Vec<Digest> = superseded.into_iter().collect();
        let mut current = None;
        for attempt in 0..FALLBACK_ATTEMPTS {
            let now = match self.fallback_index(subject, true).await {
                Ok((digest, now)) => {
                    current = digest;
                    now
                }
                Err(e) => {
                    tracing::warn!(%subject, error = %e, "could not read back the referrers index");
                    return;
                }
            };
            let added = change
                .add
                .as_ref()
                .is_none_or(|a| now.manifests.iter().any(|d| d.digest == a.digest));
            let removed = change
                .remove
                .as_ref()
                .is_none_or(|r| now.manifests.iter().all(|d| &d.digest != r));
            if added && removed {
                break;
            }
            if attempt + 1 == FALLBACK_ATTEMPTS {
                tracing::warn!(%subject, "the referrers index kept changing under concurrent writers");
                return;
            }
            tracing::debug!(%subject, "referrers index changed under us; writing again");
            let mut warnings = Vec::new();
            match self.write_fallback(&change, &mut warnings).await {
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
        self.forget_referrers(subject);
        for old in stale
            .into_iter()
            .filter(|old| Some(old) != current.as_ref())
        {
            if let Err(e) = self.delete_manifest(&old).await {
                tracing::warn!(
                    %subject, %old, error = %e,
                    "the old referrers index was left behind"
                );
            }
        }
    }
}

//! Copying a manifest's graph from one [`Target`] to another, as `oras cp`
//! does: what a manifest references (an index's manifests, a config, the
//! layers, a subject) goes first and the manifest last, so the destination
//! never lists a manifest whose content it lacks. A manifest the
//! destination has already is taken to have its graph there too and is
//! not walked. Blobs stream from source to destination, each checked
//! against its descriptor on the way, a few at a time.

use std::collections::HashSet;
use std::sync::Mutex;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use tokio::sync::mpsc;

use crate::digest::{Digest, Expected};
use crate::error::{ErrorKind, Result};
use crate::manifest::{Descriptor, Manifest};
use crate::target::Target;

/// What happened to one blob or manifest of a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Its bytes started to move.
    Copying,
    /// Its bytes reached the destination, verified.
    Copied,
    /// The destination had it already.
    Exists,
    /// The destination's registry mounted it from the source's repository.
    Mounted,
}

/// One event of a copy.
#[derive(Debug, Clone)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// To what.
    pub descriptor: Descriptor,
}

/// Copies graphs from `source` to `destination`, reporting each blob and
/// manifest on `events`. One copier remembers the manifests it has found
/// in the destination or pushed there, so one that two graphs share (a
/// subject, an index's child) goes once. Its copies run one after another,
/// and a manifest is remembered only once it is in place.
pub struct Copier<'a> {
    source: &'a Target,
    destination: &'a Target,
    concurrency: usize,
    events: Option<mpsc::Sender<Event>>,
    done: Mutex<HashSet<Digest>>,
    warnings: Mutex<Vec<String>>,
}

impl<'a> Copier<'a> {
    /// A copier moving `concurrency` blobs at once (at least one).
    pub fn new(source: &'a Target, destination: &'a Target, concurrency: usize) -> Self {
        Copier {
            source,
            destination,
            concurrency: concurrency.max(1),
            events: None,
            done: Mutex::new(HashSet::new()),
            warnings: Mutex::new(Vec::new()),
        }
    }

    /// Reports events on `events`, waiting while its buffer is full.
    pub fn with_events(mut self, events: mpsc::Sender<Event>) -> Self {
        self.events = Some(events);
        self
    }

    /// What went wrong without failing the copy (an old referrers index
    /// left behind on the destination).
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.lock().expect("warnings").clone()
    }

    /// Copies the manifest `desc` (whose verified bytes are `content`) and
    /// its graph, and gives it `tag` in the destination if one is named.
    pub async fn copy(&self, desc: &Descriptor, content: Bytes, tag: Option<&str>) -> Result<()> {
        match (self.node(desc, content.clone()).await?, tag) {
            (false, tag) => self.push_manifest(desc, content, tag).await,
            (true, Some(tag)) => self.destination.tag(desc, content, tag).await,
            (true, None) => Ok(()),
        }
    }

    /// Copies one manifest's graph and, unless `tag`ging it is left to the
    /// caller, the manifest. Returns whether the destination had it before.
    fn node(&self, desc: &Descriptor, content: Bytes) -> BoxFuture<'_, Result<bool>> {
        let desc = desc.clone();
        Box::pin(async move {
            if self.is_done(&desc.digest) {
                return Ok(true);
            }
            if self.manifest_exists(&desc).await? {
                self.mark_done(&desc.digest);
                self.event(EventKind::Exists, &desc).await;
                return Ok(true);
            }
            let manifest = Manifest::parse(&desc.media_type, &content)?;
            let (manifests, blobs) = successors(&manifest);
            // Manifests one at a time (each fans out below); blobs at once.
            for child in manifests {
                let (_, bytes) = self.source.fetch_manifest(child.digest.as_ref()).await?;
                if !self.node(&child, bytes.clone()).await? {
                    self.push_manifest(&child, bytes, None).await?;
                }
            }
            futures::stream::iter(blobs)
                .map(|b| self.blob(b))
                .buffer_unordered(self.concurrency)
                .try_collect::<Vec<()>>()
                .await?;
            Ok(false)
        })
    }

    /// Pushes a manifest whose graph is in the destination.
    async fn push_manifest(
        &self,
        desc: &Descriptor,
        content: Bytes,
        tag: Option<&str>,
    ) -> Result<()> {
        self.event(EventKind::Copying, desc).await;
        let pushed = self
            .destination
            .push_manifest(tag, &desc.media_type, content)
            .await?;
        self.mark_done(&desc.digest);
        self.warnings
            .lock()
            .expect("warnings")
            .extend(pushed.warnings);
        self.event(EventKind::Copied, desc).await;
        Ok(())
    }

    fn is_done(&self, digest: &Digest) -> bool {
        self.done.lock().expect("done set").contains(digest)
    }

    fn mark_done(&self, digest: &Digest) {
        self.done.lock().expect("done set").insert(digest.clone());
    }

    async fn manifest_exists(&self, desc: &Descriptor) -> Result<bool> {
        match self.destination.resolve(desc.digest.as_ref()).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Copies one blob unless the destination has it or mounts it.
    async fn blob(&self, desc: Descriptor) -> Result<()> {
        let _guard = self.destination.lock_blob(&desc.digest).await;
        if self.destination.blob_exists(&desc.digest).await? {
            self.event(EventKind::Exists, &desc).await;
            return Ok(());
        }
        if self
            .destination
            .mount_from(&desc.digest, self.source)
            .await?
        {
            self.event(EventKind::Mounted, &desc).await;
            return Ok(());
        }
        self.event(EventKind::Copying, &desc).await;
        let body = self.source.fetch_blob(&desc).await?;
        self.destination
            .push_blob(Expected::exactly(&desc.digest, desc.size), body)
            .await?;
        self.event(EventKind::Copied, &desc).await;
        Ok(())
    }

    /// Reports an event. A caller that went away is not an error here: its
    /// answer's task is aborted with it.
    async fn event(&self, kind: EventKind, desc: &Descriptor) {
        if let Some(events) = &self.events {
            let descriptor = desc.clone();
            let _ = events.send(Event { kind, descriptor }).await;
        }
    }
}

/// What a manifest references, as manifests and as blobs, each once: a
/// subject and an index's entries are manifests; a config and layers are
/// blobs.
fn successors(manifest: &Manifest) -> (Vec<Descriptor>, Vec<Descriptor>) {
    let mut seen = HashSet::new();
    let mut once = |d: &Descriptor| seen.insert(d.digest.clone());
    let mut manifests: Vec<Descriptor> = manifest.subject().into_iter().cloned().collect();
    manifests.retain(|d| once(d));
    let mut blobs = Vec::new();
    match manifest {
        Manifest::Image(m) => {
            for d in std::iter::once(&m.config).chain(&m.layers) {
                if once(d) {
                    blobs.push(d.clone());
                }
            }
        }
        Manifest::Index(i) => {
            for d in &i.manifests {
                if once(d) {
                    manifests.push(d.clone());
                }
            }
        }
    }
    (manifests, blobs)
}

#[cfg(test)]
mod tests;

//! Copy, as `oras cp`: a manifest and its graph from one target to another
//! ([`satchel_oci::copy`]), with `recursive` its referrers at every level
//! (and, for an index, its manifests' referrers), each after its subject,
//! so the destination records it by its referrers API or tag schema.

use satchel_oci::copy::{Copier, Event};
use satchel_oci::manifest::{Descriptor, Manifest};
use satchel_oci::{Error, ErrorKind, Result, Target};
use tokio::sync::mpsc;

use super::manifests::{referrer_tree, Node};
use super::target::{Resolved, TargetSpec};
use super::{invalid, Service};

/// How many levels of referrers a recursive copy follows (ORAS has no
/// bound; the walk's visited set already stops cycles).
pub const COPY_DEPTH: u32 = 64;

/// A copy with its targets open, ready to run.
pub struct CopyJob {
    source: Resolved,
    destination: Resolved,
    recursive: bool,
    tags: Vec<String>,
    concurrency: usize,
}

/// What a copy did.
#[derive(Debug, Clone)]
pub struct Copied {
    /// The copied manifest.
    pub manifest: Descriptor,
    /// Its reference by digest in the destination.
    pub reference: String,
    /// The tags it was given.
    pub tags: Vec<String>,
    /// How many referrers came with it.
    pub referrers: u32,
}

impl Service {
    /// Opens the targets of a copy from `source` to `destination` (in the
    /// caller's scope; see [`Service::target`]). The destination's tag or
    /// digest and `extra_tags` are checked here, before anything moves.
    pub fn copy(
        &self,
        source: TargetSpec,
        mut destination: TargetSpec,
        recursive: bool,
        extra_tags: Vec<String>,
    ) -> Result<CopyJob> {
        for tag in &extra_tags {
            satchel_oci::reference::validate_tag(tag).map_err(invalid)?;
        }
        destination.platform.clear();
        let source = self.target(source)?;
        let destination = self.target(destination)?;
        Ok(CopyJob {
            source,
            destination,
            recursive,
            tags: extra_tags,
            concurrency: self.concurrency,
        })
    }
}

impl CopyJob {
    /// Copies, reporting each blob and manifest on `events`.
    pub async fn run(self, events: mpsc::Sender<Event>) -> Result<Copied> {
        let (root, content) = self
            .source
            .fetch_named(&self.source.name_or_latest())
            .await?;
        let mut tags = Vec::new();
        match self.destination.name.as_deref() {
            Some(d) if d.contains(':') && d != root.digest.as_ref() => {
                return Err(invalid(format!(
                    "the destination names {d}, but the source is {}",
                    root.digest
                )))
            }
            Some(d) if !d.contains(':') => tags.push(d.to_string()),
            _ => {}
        }
        tags.extend(self.tags.iter().cloned());
        let (src, dst) = (&self.source.target, &self.destination.target);
        let copier = Copier::new(src, dst, self.concurrency).with_events(events);
        // The root's tags move last, once everything below it is in place.
        copier.copy(&root, content.clone(), None).await?;
        let referrers = match self.recursive {
            true => copy_referrers(&copier, src, &root, &content).await?,
            false => 0,
        };
        for tag in &tags {
            copier.copy(&root, content.clone(), Some(tag)).await?;
        }
        for warning in copier.warnings() {
            tracing::warn!(%warning, "copy finished with a warning");
        }
        let reference = dst.reference_for(&root.digest);
        tracing::info!(from = %src.reference_for(&root.digest), to = %reference, referrers, "copied");
        Ok(Copied {
            manifest: root,
            reference,
            tags,
            referrers,
        })
    }
}

/// Copies the referrer trees of `root` and, when it is an index, of its
/// manifests; returns how many referrers that was.
async fn copy_referrers(
    copier: &Copier<'_>,
    source: &Target,
    root: &Descriptor,
    content: &[u8],
) -> Result<u32> {
    let mut subjects = vec![root.clone()];
    if let Manifest::Index(index) = Manifest::parse(&root.media_type, content)? {
        subjects.extend(index.manifests);
    }
    let mut count = 0;
    for subject in &subjects {
        let tree = referrer_tree(source, &subject.digest, None, COPY_DEPTH).await?;
        // A registry that reads the tag `sha256-<hex>` as the digest answers
        // an index's own manifests as its referrers; none can be one.
        let tree = tree
            .into_iter()
            .filter(|n| !subjects.iter().any(|s| s.digest == n.manifest.digest));
        for node in tree {
            count += copy_tree(copier, source, node).await?;
        }
    }
    Ok(count)
}

/// Copies a referrer, then the referrers below it; returns how many.
fn copy_tree<'a>(
    copier: &'a Copier<'_>,
    source: &'a Target,
    node: Node,
) -> futures::future::BoxFuture<'a, Result<u32>> {
    Box::pin(async move {
        let (desc, content) = source.fetch_manifest(node.manifest.digest.as_ref()).await?;
        if desc.digest != node.manifest.digest {
            return Err(Error::new(
                ErrorKind::DataLoss,
                format!("{} arrived as {}", node.manifest.digest, desc.digest),
            ));
        }
        copier.copy(&desc, content, None).await?;
        let mut count = 1;
        for below in node.referrers {
            count += copy_tree(copier, source, below).await?;
        }
        Ok(count)
    })
}

//! Manifests by name: resolve a tag or digest, delete a manifest (and its
//! entry in a referrers index), and the referrer tree of discover.

use std::collections::HashSet;
use std::sync::Mutex;

use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use satchel_oci::digest::Digest;
use satchel_oci::manifest::Descriptor;
use satchel_oci::registry::referrers_tag;
use satchel_oci::{Result, Target};

use super::target::TargetSpec;
use super::{invalid, Service};

/// The deepest discover a caller may ask for.
pub const MAX_DEPTH: u32 = 16;
/// How many referrer listings one discover fetches at once.
const DISCOVER_CONCURRENCY: usize = 8;

/// A manifest and its canonical reference by digest.
#[derive(Debug, Clone)]
pub struct Named {
    /// The manifest by digest.
    pub reference: String,
    /// Its descriptor.
    pub descriptor: Descriptor,
}

/// What a delete removed.
#[derive(Debug, Clone)]
pub struct Deleted {
    /// The deleted manifest.
    pub manifest: Named,
    /// What went wrong after the delete (a referrers index left stale).
    pub warnings: Vec<String>,
}

/// A referrer and the referrers below it.
#[derive(Debug, Clone)]
pub struct Node {
    /// The referrer's manifest.
    pub manifest: Descriptor,
    /// Its own referrers, as deep as asked.
    pub referrers: Vec<Node>,
    /// Whether it verifies, when the caller asked (first level only).
    pub verification: Option<super::verify::Verdict>,
}

/// A discover's answer.
#[derive(Debug, Clone)]
pub struct Discovered {
    /// The subject.
    pub subject: Named,
    /// Its referrers.
    pub referrers: Vec<Node>,
}

impl Service {
    /// The descriptor of the manifest `spec` names (`latest` when none).
    pub async fn resolve(&self, spec: TargetSpec) -> Result<Named> {
        Ok(self.resolve_in(spec).await?.1)
    }

    /// Deletes the manifest `spec` names by tag or digest.
    pub async fn delete(&self, spec: TargetSpec) -> Result<Deleted> {
        let resolved = self.target(spec)?;
        let Some(name) = resolved.name.as_deref() else {
            return Err(invalid("name the manifest to delete by digest or tag"));
        };
        let deleted = resolved.target.delete_manifest(name).await?;
        let reference = resolved.target.reference_for(&deleted.descriptor.digest);
        for warning in &deleted.warnings {
            tracing::warn!(%warning, "delete finished with a warning");
        }
        tracing::info!(%reference, "deleted manifest");
        Ok(Deleted {
            manifest: Named {
                reference,
                descriptor: deleted.descriptor,
            },
            warnings: deleted.warnings,
        })
    }

    /// The referrers of the manifest `spec` names, `depth` levels deep
    /// (clamped to 1..=[`MAX_DEPTH`]); `artifact_type` filters the first
    /// level only. With `verify`, whether each first-level referrer
    /// verifies under those keys (the policy's when empty).
    pub async fn discover(
        &self,
        spec: TargetSpec,
        artifact_type: Option<&str>,
        depth: u32,
        verify: Option<&[bytes::Bytes]>,
    ) -> Result<Discovered> {
        let requested = verify.map(super::verify::KeySet::from_pems).transpose()?;
        let (target, named) = self.resolve_in(spec).await?;
        let depth = depth.clamp(1, MAX_DEPTH);
        let mut referrers =
            referrer_tree(&target, &named.descriptor.digest, artifact_type, depth).await?;
        if let Some(keys) = requested {
            self.verify_nodes(&target, &mut referrers, &keys).await?;
        }
        Ok(Discovered {
            subject: named,
            referrers,
        })
    }

    /// Whether each of `nodes` verifies, under `requested` or the policy.
    async fn verify_nodes(
        &self,
        target: &Target,
        nodes: &mut [Node],
        requested: &super::verify::KeySet,
    ) -> Result<()> {
        for node in nodes.iter_mut() {
            let kind = node.manifest.artifact_type.clone().unwrap_or_default();
            let needed = self.required(requested, target, &kind)?;
            let verdict = match needed.is_empty() {
                true => super::verify::Verdict::Refused {
                    permission: false,
                    message: format!("no trusted key applies to {kind:?} artifacts here"),
                },
                false => {
                    self.verifier
                        .verify_all(target, &node.manifest.digest, &needed)
                        .await?
                }
            };
            node.verification = Some(verdict);
        }
        Ok(())
    }

    /// The target `spec` names and the manifest it resolves to.
    pub(super) async fn resolve_in(&self, spec: TargetSpec) -> Result<(Target, Named)> {
        let resolved = self.target(spec)?;
        let descriptor = resolved.resolve_named(&resolved.name_or_latest()).await?;
        let reference = resolved.target.reference_for(&descriptor.digest);
        Ok((
            resolved.target,
            Named {
                reference,
                descriptor,
            },
        ))
    }
}

/// The referrers of `root`, `depth` levels deep. `filter` applies to the
/// first level only; a visited set stops cycles and repeats. Below the
/// first level, on a registry using the tag schema, one tag listing says
/// which manifests have an index at all, so the walk fetches only those
/// (a listing that fails leaves every manifest to be asked). The listing
/// is a snapshot: an index tagged after it is missed, as it would be if
/// its manifest had been asked a moment earlier.
pub(super) async fn referrer_tree(
    target: &Target,
    root: &Digest,
    filter: Option<&str>,
    depth: u32,
) -> Result<Vec<Node>> {
    let visited = Mutex::new(HashSet::from([root.clone()]));
    let first = target.referrers(root, filter).await?;
    let tagged = match depth > 1 && !first.is_empty() {
        true => match target.referrers_tags().await {
            Ok(tags) => tags,
            Err(e) => {
                tracing::debug!(error = %e, "no tag listing; asking each manifest");
                None
            }
        },
        false => None,
    };
    let walk = Walk {
        target,
        visited,
        tagged,
    };
    walk.children(first, depth - 1).await
}

/// What a referrer tree walk shares.
struct Walk<'a> {
    target: &'a Target,
    visited: Mutex<HashSet<Digest>>,
    /// The tag schema's tags, when one listing gave them.
    tagged: Option<HashSet<String>>,
}

impl Walk<'_> {
    /// Turns `list` into nodes, fetching `depth` more levels below each,
    /// skipping manifests already seen.
    fn children(&self, list: Vec<Descriptor>, depth: u32) -> BoxFuture<'_, Result<Vec<Node>>> {
        Box::pin(async move {
            let fresh: Vec<Descriptor> = {
                let mut seen = self.visited.lock().expect("visited set");
                list.into_iter()
                    .filter(|d| seen.insert(d.digest.clone()))
                    .collect()
            };
            futures::stream::iter(fresh)
                .map(|d| async move {
                    let referrers = match depth == 0 || !self.may_have_referrers(&d.digest) {
                        true => Vec::new(),
                        false => {
                            let list = self.target.referrers(&d.digest, None).await?;
                            self.children(list, depth - 1).await?
                        }
                    };
                    Ok::<_, satchel_oci::Error>(Node {
                        manifest: d,
                        referrers,
                        verification: None,
                    })
                })
                .buffered(DISCOVER_CONCURRENCY)
                .try_collect()
                .await
        })
    }

    /// False only when the tag listing shows `digest` has no index.
    fn may_have_referrers(&self, digest: &Digest) -> bool {
        self.tagged
            .as_ref()
            .is_none_or(|tags| tags.contains(&referrers_tag(digest)))
    }
}

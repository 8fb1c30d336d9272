//! Manifests fetched whole and tags listed and added: FetchManifest,
//! ListTags and Tag, as `oras manifest fetch`, `oras repo tags` and `oras
//! tag`.

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use satchel_oci::{Result, Target};

use super::manifests::Named;
use super::target::TargetSpec;
use super::{invalid, Service};

/// A fetched manifest.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// What it is and where.
    pub manifest: Named,
    /// Its bytes, verified against its digest.
    pub content: Bytes,
}

/// Which of a repository's tags ListTags gives.
#[derive(Debug, Clone, Default)]
pub struct TagFilter {
    /// Leave out `sha256-<hex>` and the like.
    pub exclude_digest_tags: bool,
    /// Only tags after this one ("" for all), as the registry reads
    /// `last`.
    pub last: String,
    /// Only the tags of the manifest the target's tag or digest names.
    pub same_manifest: bool,
}

/// A tagged manifest.
#[derive(Debug, Clone)]
pub struct Tagged {
    /// The manifest.
    pub manifest: Named,
    /// The tags it was given.
    pub tags: Vec<String>,
}

impl Service {
    /// The manifest `spec` names (`latest` when none), with its bytes.
    pub async fn fetch_manifest(&self, spec: TargetSpec) -> Result<Fetched> {
        let resolved = self.target(spec)?;
        let (descriptor, content) = resolved.fetch_named(&resolved.name_or_latest()).await?;
        let reference = resolved.target.reference_for(&descriptor.digest);
        Ok(Fetched {
            manifest: Named {
                reference,
                descriptor,
            },
            content,
        })
    }

    /// The tags of the repository or layout `spec` names, narrowed as
    /// `filter` asks.
    pub async fn list_tags(&self, spec: TargetSpec, filter: TagFilter) -> Result<Vec<String>> {
        let resolved = self.target(spec)?;
        let target = &resolved.target;
        let mut tags = match filter.last.as_str() {
            "" => target.tags().await?,
            last => target.tags_after(last).await?,
        };
        if filter.exclude_digest_tags {
            tags.retain(|t| !is_digest_tag(t));
        }
        let named = match (&resolved.name, filter.same_manifest) {
            (Some(name), true) => name.clone(),
            (None, true) => {
                return Err(invalid("name a tag or digest to list its manifest's tags"))
            }
            (_, false) => return Ok(tags),
        };
        let digest = target.resolve(&named).await?.digest;
        let same = futures::stream::iter(tags)
            .map(|tag| async {
                let keep = tag == named || target.resolve(&tag).await?.digest == digest;
                Ok::<_, satchel_oci::Error>(keep.then_some(tag))
            })
            .buffered(8)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(same.into_iter().flatten().collect())
    }

    /// The repositories of `registry` (`host[:port][/namespace]`: with a
    /// namespace, only those under it).
    pub async fn list_repositories(&self, registry: &str, plain_http: bool) -> Result<Vec<String>> {
        let (host, namespace) = match registry.split_once('/') {
            Some((host, ns)) => (host, Some(ns.trim_end_matches('/'))),
            None => (registry, None),
        };
        if host.is_empty() || namespace == Some("") {
            return Err(invalid(format!(
                "bad registry {registry:?}: expected host[:port][/namespace]"
            )));
        }
        // The catalog is the registry's; the repository named here only
        // carries the host and scheme.
        let spec = TargetSpec {
            reference: format!("{host}/catalog"),
            plain_http,
            ..Default::default()
        };
        let Target::Registry(repo) = self.target(spec)?.target else {
            unreachable!("a reference without a layout is a registry");
        };
        let mut names = repo.repositories().await?;
        if let Some(ns) = namespace {
            let prefix = format!("{ns}/");
            names.retain(|n| n.starts_with(&prefix));
        }
        Ok(names)
    }

    /// Gives the manifest `spec` names each of `tags`. Every tag is checked
    /// before the first is written.
    pub async fn tag(&self, spec: TargetSpec, tags: Vec<String>) -> Result<Tagged> {
        if tags.is_empty() {
            return Err(invalid("name at least one tag"));
        }
        for tag in &tags {
            satchel_oci::reference::validate_tag(tag).map_err(invalid)?;
        }
        let resolved = self.target(spec)?;
        let (descriptor, content) = resolved.fetch_named(&resolved.name_or_latest()).await?;
        for tag in &tags {
            resolved
                .target
                .tag(&descriptor, content.clone(), tag)
                .await?;
        }
        let reference = resolved.target.reference_for(&descriptor.digest);
        tracing::info!(%reference, tags = ?tags, "tagged manifest");
        Ok(Tagged {
            manifest: Named {
                reference,
                descriptor,
            },
            tags,
        })
    }
}

/// Whether `tag` reads as a digest with its `:` made a `-` (`sha256-<hex>`),
/// as the referrers tag schema and cosign name theirs: what `oras repo
/// tags --exclude-digest-tags` leaves out.
fn is_digest_tag(tag: &str) -> bool {
    tag.split_once('-')
        .is_some_and(|(alg, hex)| satchel_oci::digest::parse(&format!("{alg}:{hex}")).is_ok())
}

#[cfg(test)]
mod tests {
    use super::is_digest_tag;

    #[test]
    fn digest_tags_are_those_that_parse_as_digests() {
        let hex = "a".repeat(64);
        assert!(is_digest_tag(&format!("sha256-{hex}")));
        assert!(!is_digest_tag(&format!("sha256-{}", &hex[..63])));
        assert!(!is_digest_tag("v1"));
        assert!(!is_digest_tag("release-1.0"));
        assert!(!is_digest_tag(&format!("sha256-{hex}.sig")));
    }
}

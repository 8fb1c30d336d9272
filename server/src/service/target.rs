//! A caller's target — a registry reference, or an OCI layout on the
//! daemon's machine and a tag or digest inside it — made into a
//! [`Target`]. Which layouts a caller may name is decided here, through
//! [`crate::callers`], before any file is opened.

use std::path::Path;

use bytes::Bytes;
use satchel_oci::manifest::Descriptor;
use satchel_oci::platform::Platform;
use satchel_oci::registry::{ReferrersMode, Repository};
use satchel_oci::{digest, Reference, Result, Target};

use super::{invalid, Service};

/// What a request names as its target.
#[derive(Debug, Clone, Default)]
pub struct TargetSpec {
    /// A registry reference; with `oci_layout`, the tag or digest inside
    /// the layout (`@` allowed before a digest).
    pub reference: String,
    /// The absolute path of an OCI image layout; empty for a registry.
    pub oci_layout: String,
    /// Talk plain HTTP to the registry.
    pub plain_http: bool,
    /// How the registry's referrers are found and recorded.
    pub referrers_mode: ReferrersMode,
    /// `os[/arch[/variant]][:os_version]` to pick from an index; empty for
    /// none.
    pub platform: String,
}

/// A target and the tag or digest named inside it.
pub struct Resolved {
    /// Where the call reads and writes.
    pub target: Target,
    /// The tag or digest named, if any.
    pub name: Option<String>,
    /// The platform whose manifest a name stands for, when one was asked.
    pub platform: Option<Platform>,
}

impl Resolved {
    /// The tag or digest to read, `latest` when none was named.
    pub fn name_or_latest(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| satchel_oci::reference::DEFAULT_TAG.to_string())
    }

    /// The descriptor of the manifest `name` stands for: with a platform,
    /// its manifest of an index (see [`satchel_oci::platform`]).
    pub async fn resolve_named(&self, name: &str) -> Result<Descriptor> {
        match &self.platform {
            None => self.target.resolve(name).await,
            Some(_) => Ok(self.fetch_named(name).await?.0),
        }
    }

    /// The manifest `name` stands for and its bytes, as
    /// [`Self::resolve_named`] picks it.
    pub async fn fetch_named(&self, name: &str) -> Result<(Descriptor, Bytes)> {
        let (desc, content) = self.target.fetch_manifest(name).await?;
        let Some(platform) = &self.platform else {
            return Ok((desc, content));
        };
        let chosen = satchel_oci::platform::select(&self.target, desc, &content, platform).await?;
        self.target.fetch_manifest(chosen.digest.as_ref()).await
    }
}

impl Service {
    /// Opens what `spec` names. Runs in the caller's scope (see
    /// [`crate::callers`]): call it before handing work to a task.
    pub fn target(&self, spec: TargetSpec) -> Result<Resolved> {
        let platform = match spec.platform.as_str() {
            "" => None,
            p => Some(Platform::parse(p)?),
        };
        if spec.oci_layout.is_empty() {
            let reference = Reference::parse(&spec.reference)?;
            let repo = Repository::new(self.registry.clone(), &reference, spec.plain_http)
                .with_referrers_mode(spec.referrers_mode);
            let name = reference
                .digest()
                .map(|d| d.to_string())
                .or_else(|| reference.tag().map(str::to_string));
            return Ok(Resolved {
                target: Target::Registry(repo),
                name,
                platform,
            });
        }
        let path = Path::new(&spec.oci_layout);
        if !path.is_absolute() {
            return Err(invalid(format!(
                "oci_layout must be an absolute path, got {:?}",
                spec.oci_layout
            )));
        }
        let name = match spec.reference.trim_start_matches('@') {
            "" => None,
            r if r.contains(':') => Some(digest::parse(r)?.to_string()),
            r => {
                satchel_oci::reference::validate_tag(r).map_err(invalid)?;
                Some(r.to_string())
            }
        };
        let layout = crate::callers::open_layout(path, self.layout_locks.clone())?;
        Ok(Resolved {
            target: Target::Layout(layout),
            name,
            platform,
        })
    }
}

//! Blobs and manifests by hand, as `oras manifest push` and `oras blob
//! fetch|push|delete`: PushManifest, FetchBlob, PushBlob and DeleteBlob.

use bytes::Bytes;
use satchel_oci::digest::{self, Digest, Expected};
use satchel_oci::manifest::{Descriptor, Manifest, MAX_MANIFEST_BYTES};
use satchel_oci::{ByteStream, Error, ErrorKind, Result, Target};

use super::manifests::Named;
use super::target::{Resolved, TargetSpec};
use super::{invalid, Service};

/// The media type of a blob nobody described.
const OCTET_STREAM: &str = "application/octet-stream";

/// A manifest PushManifest stored.
#[derive(Debug, Clone)]
pub struct PushedManifest {
    /// The manifest.
    pub manifest: Named,
    /// The tags it was given.
    pub tags: Vec<String>,
    /// Whether the target had it under the name asked already.
    pub existed: bool,
}

/// A blob FetchBlob streams.
pub struct FetchedBlob {
    /// Its descriptor.
    pub descriptor: Descriptor,
    /// Its bytes, checked against the descriptor as they go.
    pub body: ByteStream,
}

/// A blob PushBlob put in place.
#[derive(Debug, Clone)]
pub struct PushedBlob {
    /// The blob.
    pub blob: Named,
    /// Whether the target had it already.
    pub existed: bool,
}

impl Service {
    /// Stores `content` as a manifest of `media_type` (the document's own
    /// `mediaType` when empty) under the name `spec` gives, then
    /// `extra_tags`.
    pub async fn push_manifest_bytes(
        &self,
        spec: TargetSpec,
        content: Bytes,
        media_type: &str,
        extra_tags: Vec<String>,
    ) -> Result<PushedManifest> {
        if content.len() > MAX_MANIFEST_BYTES {
            return Err(invalid(format!(
                "a manifest of {} bytes is over the {MAX_MANIFEST_BYTES}-byte limit",
                content.len()
            )));
        }
        for tag in &extra_tags {
            satchel_oci::reference::validate_tag(tag).map_err(invalid)?;
        }
        let declared = declared_media_type(&content)?;
        let media_type = match (media_type, declared) {
            ("", Some(d)) => d,
            ("", None) => return Err(invalid("the manifest has no mediaType; name one")),
            (m, Some(d)) if m != d => {
                return Err(invalid(format!("the manifest says it is {d}, not {m}")))
            }
            (m, _) => m.to_string(),
        };
        Manifest::parse(&media_type, &content).map_err(|e| invalid(e.to_string()))?;
        let desc = Descriptor::for_bytes(&media_type, &content);
        let resolved = self.target(spec)?;
        let tag = match resolved.name.as_deref() {
            Some(name) if name.contains(':') => {
                if name != desc.digest.as_ref() {
                    return Err(invalid(format!(
                        "the content's digest is {}, not {name}",
                        desc.digest
                    )));
                }
                None
            }
            name => name,
        };
        let name = tag.map_or_else(|| desc.digest.to_string(), str::to_string);
        let existed = match resolved.target.resolve(&name).await {
            Ok(found) => found.digest == desc.digest,
            Err(e) if e.kind() == ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        };
        let target = &resolved.target;
        if !existed {
            if let Target::Layout(_) = target {
                all_present(target, &Manifest::parse(&media_type, &content)?).await?;
            }
            let pushed = target
                .push_manifest(tag, &media_type, content.clone())
                .await?;
            for warning in &pushed.warnings {
                tracing::warn!(%warning, "manifest push finished with a warning");
            }
        }
        let mut tags: Vec<String> = tag.map(str::to_string).into_iter().collect();
        for extra in extra_tags {
            target.tag(&desc, content.clone(), &extra).await?;
            tags.push(extra);
        }
        let reference = target.reference_for(&desc.digest);
        tracing::info!(%reference, existed, "pushed manifest");
        Ok(PushedManifest {
            manifest: Named {
                reference,
                descriptor: desc,
            },
            tags,
            existed,
        })
    }

    /// The blob `spec` names by digest, with its verified bytes.
    pub async fn fetch_blob(&self, spec: TargetSpec) -> Result<FetchedBlob> {
        let (resolved, digest) = self.blob_target(spec)?;
        let size = resolved
            .target
            .blob_size(&digest)
            .await?
            .ok_or_else(|| not_found(format!("blob {digest} not found")))?;
        let descriptor = octet_stream(digest, size);
        let body = resolved.target.fetch_blob(&descriptor).await?;
        Ok(FetchedBlob { descriptor, body })
    }

    /// Puts the content store's blob `digest` into the target `spec` names.
    pub async fn push_stored_blob(
        &self,
        spec: TargetSpec,
        digest: &str,
        media_type: &str,
    ) -> Result<PushedBlob> {
        let store = self.store()?;
        let digest = digest::parse(digest)?;
        let size = store.size_of(&digest).ok_or_else(|| {
            not_found(format!(
                "{digest} is not in the content store; upload it first"
            ))
        })?;
        let mut descriptor = octet_stream(digest, size);
        if !media_type.is_empty() {
            descriptor.media_type = media_type.to_string();
        }
        let resolved = self.target(spec)?;
        if let Some(named) = resolved.name.as_deref().filter(|n| n.contains(':')) {
            if named != descriptor.digest.as_ref() {
                return Err(invalid(format!(
                    "the blob is {}, not {named}",
                    descriptor.digest
                )));
            }
        }
        let target = resolved.target;
        let _guard = target.lock_blob(&descriptor.digest).await;
        let existed = target.blob_exists(&descriptor.digest).await?;
        if !existed {
            let body = store.read_range(&descriptor, 0, 0).await.ok_or_else(|| {
                not_found(format!("{} left the content store", descriptor.digest))
            })?;
            let expected = Expected::exactly(&descriptor.digest, size);
            target.push_blob(expected, body).await?;
        }
        let reference = target.reference_for(&descriptor.digest);
        tracing::info!(%reference, existed, "pushed blob");
        Ok(PushedBlob {
            blob: Named {
                reference,
                descriptor,
            },
            existed,
        })
    }

    /// Deletes the blob `spec` names by digest; returns its reference.
    pub async fn delete_blob(&self, spec: TargetSpec) -> Result<String> {
        let (resolved, digest) = self.blob_target(spec)?;
        if resolved.target.blob_size(&digest).await?.is_none() {
            return Err(not_found(format!("blob {digest} not found")));
        }
        resolved.target.delete_blob(&digest).await?;
        let reference = resolved.target.reference_for(&digest);
        tracing::info!(%reference, "deleted blob");
        Ok(reference)
    }

    /// The target `spec` names and the blob digest it must carry.
    fn blob_target(&self, spec: TargetSpec) -> Result<(Resolved, Digest)> {
        let resolved = self.target(spec)?;
        let digest = match resolved.name.as_deref() {
            Some(name) if name.contains(':') => digest::parse(name)?,
            _ => return Err(invalid("name the blob by digest: REPOSITORY@sha256:...")),
        };
        Ok((resolved, digest))
    }
}

fn octet_stream(digest: Digest, size: u64) -> Descriptor {
    Descriptor {
        media_type: OCTET_STREAM.into(),
        digest,
        size,
        artifact_type: None,
        annotations: Default::default(),
    }
}

/// Fails FAILED_PRECONDITION unless `target` (a layout: a registry checks
/// this itself) holds everything `manifest` names.
async fn all_present(target: &Target, manifest: &Manifest) -> Result<()> {
    let named: Vec<&Descriptor> = match manifest {
        Manifest::Image(m) => std::iter::once(&m.config).chain(&m.layers).collect(),
        Manifest::Index(i) => i.manifests.iter().collect(),
    };
    for d in named {
        if !target.blob_exists(&d.digest).await? {
            return Err(Error::new(
                ErrorKind::FailedPrecondition,
                format!(
                    "the manifest names {}, which is not there; push it first",
                    d.digest
                ),
            ));
        }
    }
    Ok(())
}

/// The `mediaType` field of a manifest document, as `oras manifest push`
/// reads it when no media type is given.
fn declared_media_type(content: &[u8]) -> Result<Option<String>> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    let probe: Probe = serde_json::from_slice(content)
        .map_err(|e| invalid(format!("the manifest is not a JSON object: {e}")))?;
    Ok(probe.media_type.filter(|m| !m.is_empty()))
}

fn not_found(message: String) -> Error {
    Error::new(ErrorKind::NotFound, message)
}

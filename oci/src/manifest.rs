//! The OCI manifest and index documents Satchel reads and writes.
//!
//! These are our own serde types rather than `oci_spec`'s: `oci_spec` keeps
//! annotations in a `HashMap`, whose random iteration order would make the
//! serialised manifest, and so its digest, differ from run to run. Here
//! annotations are a `BTreeMap` and field order is fixed, so the same input
//! always gives the same bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::{self, Digest};
use crate::error::{Error, ErrorKind, Result};
pub use crate::title::{validate_title, validate_titles};

/// The largest manifest read, from a registry or a layout (distribution
/// 2.8 caps them at 4 MiB).
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// OCI image manifest.
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema 2 manifest, read but never written.
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list, read but never written.
pub const MEDIA_TYPE_DOCKER_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// The empty JSON object `{}`, used as config when an artifact has none.
pub const MEDIA_TYPE_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// The default layer media type for a file.
pub const MEDIA_TYPE_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// The artifact type Push uses when the caller names none (as ORAS does).
pub const ARTIFACT_TYPE_UNKNOWN: &str = "application/vnd.unknown.artifact.v1";

/// Annotation naming a layer's file.
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";
/// Annotation with the creation time of an artifact (RFC 3339).
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
/// Annotation naming a tag in an OCI layout's index.json.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The media types accepted for manifests, for `Accept` headers.
pub const MANIFEST_MEDIA_TYPES: &[&str] = &[
    MEDIA_TYPE_MANIFEST,
    MEDIA_TYPE_INDEX,
    MEDIA_TYPE_DOCKER_MANIFEST,
    MEDIA_TYPE_DOCKER_LIST,
];

/// The content of the empty config blob.
pub const EMPTY_JSON: &[u8] = b"{}";

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the content.
    pub media_type: String,
    /// The digest of the content.
    pub digest: Digest,
    /// The size of the content in bytes.
    pub size: u64,
    /// For manifests: their artifact type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// Describes `data` of `media_type`.
    pub fn for_bytes(media_type: &str, data: &[u8]) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest: digest::sha256(data),
            size: data.len() as u64,
            artifact_type: None,
            annotations: BTreeMap::new(),
        }
    }

    /// The descriptor of the empty config `{}`.
    pub fn empty_config() -> Descriptor {
        Descriptor::for_bytes(MEDIA_TYPE_EMPTY, EMPTY_JSON)
    }

    /// The file name this layer carries, if any.
    pub fn title(&self) -> Option<&str> {
        self.annotations.get(ANNOTATION_TITLE).map(String::as_str)
    }

    /// Whether this describes a manifest or index.
    pub fn is_manifest(&self) -> bool {
        MANIFEST_MEDIA_TYPES.contains(&self.media_type.as_str())
    }
}

/// An OCI image manifest (artifacts are image manifests with `artifactType`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's own media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The type of artifact this manifest describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers; for artifacts, one per file.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Manifest annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ImageManifest {
    /// The artifact type by the OCI rule: `artifactType`, else the config
    /// media type.
    pub fn effective_artifact_type(&self) -> &str {
        self.artifact_type
            .as_deref()
            .unwrap_or(&self.config.media_type)
    }

    /// Serialises to the exact bytes that are pushed.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a manifest always serialises")
    }
}

/// An OCI image index; also the shape of a referrers response and of a
/// referrers tag-schema index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// The index's own media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The type of artifact this index describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The manifests; serialised as `[]` when empty, never `null`.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Index annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Descriptor>, D::Error> {
    Ok(Option::<Vec<Descriptor>>::deserialize(d)?.unwrap_or_default())
}

impl ImageIndex {
    /// An index listing `manifests`.
    pub fn new(manifests: Vec<Descriptor>) -> ImageIndex {
        ImageIndex {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_INDEX.to_string()),
            artifact_type: None,
            manifests,
            subject: None,
            annotations: BTreeMap::new(),
        }
    }

    /// Serialises to the exact bytes that are pushed.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an index always serialises")
    }
}

/// A manifest or index, as fetched.
#[derive(Debug, Clone)]
pub enum Manifest {
    /// An image (or artifact) manifest.
    Image(ImageManifest),
    /// An image index.
    Index(ImageIndex),
}

impl Manifest {
    /// Parses manifest bytes of `media_type`.
    pub fn parse(media_type: &str, data: &[u8]) -> Result<Manifest> {
        let bad = |e: serde_json::Error| {
            Error::new(
                ErrorKind::FailedPrecondition,
                format!(
                    "malformed {media_type} document: {}",
                    crate::text::json_failure(&e)
                ),
            )
        };
        match media_type {
            MEDIA_TYPE_MANIFEST | MEDIA_TYPE_DOCKER_MANIFEST => serde_json::from_slice(data)
                .map(Manifest::Image)
                .map_err(bad),
            MEDIA_TYPE_INDEX | MEDIA_TYPE_DOCKER_LIST => serde_json::from_slice(data)
                .map(Manifest::Index)
                .map_err(bad),
            other => Err(Error::new(
                ErrorKind::FailedPrecondition,
                format!(
                    "unsupported manifest media type {}",
                    crate::text::quoted(other)
                ),
            )),
        }
    }

    /// The subject, if this manifest refers to one.
    pub fn subject(&self) -> Option<&Descriptor> {
        match self {
            Manifest::Image(m) => m.subject.as_ref(),
            Manifest::Index(i) => i.subject.as_ref(),
        }
    }

    /// The artifact type by the OCI rule.
    pub fn artifact_type(&self) -> Option<&str> {
        match self {
            Manifest::Image(m) => Some(m.effective_artifact_type()),
            Manifest::Index(i) => i.artifact_type.as_deref(),
        }
    }

    /// The manifest annotations.
    pub fn annotations(&self) -> &BTreeMap<String, String> {
        match self {
            Manifest::Image(m) => &m.annotations,
            Manifest::Index(i) => &i.annotations,
        }
    }
}

/// Reads the `mediaType` field of a manifest whose type is not otherwise
/// known (an OCI layout gives only the digest).
pub fn sniff_media_type(data: &[u8]) -> Result<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(data).map_err(|e| {
        Error::new(
            ErrorKind::FailedPrecondition,
            format!(
                "content is not a JSON manifest: {}",
                crate::text::json_failure(&e)
            ),
        )
    })?;
    Ok(match (probe.media_type, probe.manifests) {
        (Some(mt), _) => mt,
        (None, Some(_)) => MEDIA_TYPE_INDEX.to_string(),
        (None, None) => MEDIA_TYPE_MANIFEST.to_string(),
    })
}

/// The descriptor a referrers listing carries for a manifest: its artifact
/// type and annotations copied up from the manifest.
pub fn referrer_descriptor(mut desc: Descriptor, manifest: &Manifest) -> Descriptor {
    desc.artifact_type = manifest.artifact_type().map(str::to_string);
    desc.annotations = manifest.annotations().clone();
    desc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_serialises_empty_manifests_as_array() {
        let bytes = ImageIndex::new(vec![]).to_bytes();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#
        );
        let parsed: ImageIndex =
            serde_json::from_slice(br#"{"schemaVersion":2,"manifests":null}"#).unwrap();
        assert!(parsed.manifests.is_empty());
    }

    #[test]
    fn manifest_bytes_are_deterministic() {
        let mut m = ImageManifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_MANIFEST.into()),
            artifact_type: Some("application/x".into()),
            config: Descriptor::empty_config(),
            layers: vec![],
            subject: None,
            annotations: BTreeMap::new(),
        };
        for i in 0..20 {
            m.annotations.insert(format!("k{i}"), "v".into());
        }
        let a = m.to_bytes();
        let b = m.clone().to_bytes();
        assert_eq!(a, b);
        assert!(std::str::from_utf8(&a)
            .unwrap()
            .starts_with(r#"{"schemaVersion":2,"mediaType":"#));
    }
}

//! Packing files into an artifact manifest, the way ORAS 1.1+ does: an image
//! manifest with `artifactType`, one layer per file and the empty config
//! unless one is given.

use std::collections::BTreeMap;

use crate::manifest::{Descriptor, ImageManifest, ANNOTATION_CREATED, MEDIA_TYPE_MANIFEST};

/// Everything needed to build an artifact manifest.
#[derive(Debug, Clone)]
pub struct Pack {
    /// The artifact type.
    pub artifact_type: String,
    /// The config descriptor; the empty config when `None`.
    pub config: Option<Descriptor>,
    /// The layer descriptors, one per file, in order.
    pub layers: Vec<Descriptor>,
    /// The subject, for attachments.
    pub subject: Option<Descriptor>,
    /// Manifest annotations; `created` is added unless present.
    pub annotations: BTreeMap<String, String>,
}

impl Pack {
    /// Builds the manifest. An artifact with no files gets the empty blob
    /// as its one layer, as the image spec recommends.
    pub fn manifest(self) -> ImageManifest {
        let mut annotations = self.annotations;
        annotations
            .entry(ANNOTATION_CREATED.to_string())
            .or_insert_with(now_rfc3339);
        let layers = if self.layers.is_empty() {
            vec![Descriptor::empty_config()]
        } else {
            self.layers
        };
        let config = self.config.unwrap_or_else(Descriptor::empty_config);
        ImageManifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_MANIFEST.to_string()),
            artifact_type: Some(self.artifact_type),
            config,
            layers,
            subject: self.subject.map(|mut s| {
                // A subject descriptor names content; it carries no extras.
                s.artifact_type = None;
                s.annotations.clear();
                s
            }),
            annotations,
        }
    }
}

/// The current UTC time in RFC 3339, to the second.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("zero nanoseconds is valid");
    now.format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339 formatting of a UTC time cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_created_gives_reproducible_digest() {
        let pack = || Pack {
            artifact_type: "application/x".into(),
            config: None,
            layers: vec![],
            subject: None,
            annotations: [(
                ANNOTATION_CREATED.to_string(),
                "2020-01-01T00:00:00Z".to_string(),
            )]
            .into(),
        };
        let a = pack().manifest().to_bytes();
        assert_eq!(a, pack().manifest().to_bytes());
        let m: ImageManifest = serde_json::from_slice(&a).unwrap();
        assert_eq!(m.layers, vec![Descriptor::empty_config()]);
        assert!(now_rfc3339().ends_with('Z'));
    }
}

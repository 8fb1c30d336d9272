//! Packing files into an artifact manifest, the way ORAS 1.1+ does: an image
//! manifest with `artifactType`, one layer per file and the empty config
//! unless one is given.

use std::collections::BTreeMap;

use crate::error::{Error, ErrorKind, Result};
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

/// The current UTC time in RFC 3339 with microseconds
/// (`2026-12-02T12:38:51.123456Z`): two attachments made in one second
/// still sort by time. ORAS and regctl parse the fraction.
pub fn now_rfc3339() -> String {
    // Always six digits, so the strings sort as the times do.
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    time::OffsetDateTime::now_utc()
        .format(&format)
        .expect("formatting a UTC time cannot fail")
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
        let now = now_rfc3339();
        assert!(
            now.ends_with('Z') && now.len() == "2026-12-02T12:38:51.123456Z".len(),
            "{now}"
        );
        time::OffsetDateTime::parse(&now, &time::format_description::well_known::Rfc3339).unwrap();
    }
}

/// Picks the attachment with the newest `org.opencontainers.image.created`.
/// Equal times (every tool once wrote whole seconds) go to the entry later
/// in `candidates`, the referrers listing's order (the tag schema's index
/// appends); the digest is compared last, for a listing that names one
/// manifest twice. A single candidate needs no date;
/// when one of several has no parseable date, fails with
/// `FailedPrecondition` and lists the candidates.
pub fn select_newest<'a>(candidates: &'a [Descriptor], what: &str) -> Result<&'a Descriptor> {
    use time::format_description::well_known::Rfc3339;
    let listing = || {
        candidates
            .iter()
            .map(|d| {
                let created = d
                    .annotations
                    .get(ANNOTATION_CREATED)
                    .map_or("no creation time", String::as_str);
                format!("{} ({created})", d.digest)
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    match candidates {
        [] => Err(Error::new(ErrorKind::NotFound, format!("no {what} found"))),
        [only] => Ok(only),
        _ => {
            let mut dated = Vec::with_capacity(candidates.len());
            for d in candidates {
                let created = d
                    .annotations
                    .get(ANNOTATION_CREATED)
                    .and_then(|c| time::OffsetDateTime::parse(c, &Rfc3339).ok());
                match created {
                    Some(t) => dated.push((t, d)),
                    None => {
                        return Err(Error::new(
                            ErrorKind::FailedPrecondition,
                            format!(
                                "cannot tell which {what} is newest ({} has no valid {ANNOTATION_CREATED}); pull one by digest: {}",
                                d.digest,
                                listing()
                            ),
                        ))
                    }
                }
            }
            let newest = dated
                .into_iter()
                .enumerate()
                .max_by(|(i, (t, d)), (j, (u, e))| {
                    t.cmp(u)
                        .then(i.cmp(j))
                        .then_with(|| d.digest.to_string().cmp(&e.digest.to_string()))
                })
                .map(|(_, (_, d))| d);
            Ok(newest.expect("two or more candidates"))
        }
    }
}

#[cfg(test)]
mod select_tests {
    use super::*;
    use crate::manifest::MEDIA_TYPE_MANIFEST;

    fn att(data: &[u8], created: Option<&str>) -> Descriptor {
        let mut d = Descriptor::for_bytes(MEDIA_TYPE_MANIFEST, data);
        if let Some(c) = created {
            d.annotations.insert(ANNOTATION_CREATED.into(), c.into());
        }
        d
    }

    #[test]
    fn newest_wins_and_ambiguity_fails() {
        let a = att(b"a", Some("2026-01-01T00:00:00Z"));
        let b = att(b"b", Some("2026-01-02T00:00:00+01:00"));
        let list = [a.clone(), b.clone()];
        assert_eq!(select_newest(&list, "x").unwrap(), &b);
        // A tie goes to the later entry of the listing, in either order.
        let c = att(b"c", Some("2026-01-01T00:00:00Z"));
        assert_eq!(select_newest(&[a.clone(), c.clone()], "x").unwrap(), &c);
        assert_eq!(select_newest(&[c.clone(), a.clone()], "x").unwrap(), &a);
        // Sub-second times sort by their fraction.
        let late = att(b"f", Some("2026-01-01T00:00:00.5Z"));
        assert_eq!(
            select_newest(&[late.clone(), c.clone()], "x").unwrap(),
            &late
        );
        let undated = [a.clone(), att(b"d", None)];
        let err = select_newest(&undated, "x").unwrap_err();
        assert!(err.to_string().contains(&a.digest.to_string()));
        assert_eq!(select_newest(&[att(b"e", None)], "x").unwrap().size, 1);
        assert_eq!(
            select_newest(&[], "x").unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }
}

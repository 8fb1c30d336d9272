//! Polls of a watched subject's referrers that cost the registry little
//! when nothing changed: on the tag schema, the index is asked for with
//! `If-None-Match` its last ETag, and a `304 Not Modified` answers without
//! a body. A registry that sends no ETag, or ignores the header, is read
//! whole each time, and the caller compares what it lists (by digest, so
//! a rewritten index with the same entries is no change either). The
//! referrers API is read whole (its pages carry no validator to reuse).

use http::{header, HeaderMap, Method, StatusCode};

use super::{header_value, referrers_tag, Access, ReferrersMode, Repository};
use crate::digest::Digest;
use crate::error::Result;
use crate::manifest::{Descriptor, MANIFEST_MEDIA_TYPES};

/// What one poll of a subject's referrers found.
#[derive(Debug)]
pub enum Polled {
    /// The index is still the version the validator named (304).
    Unchanged,
    /// The referrers now, and the validator of this version (the index's
    /// ETag) when the registry sent one.
    Listed {
        /// The referrers, as the registry lists them.
        referrers: Vec<Descriptor>,
        /// What to send as `If-None-Match` next time.
        validator: Option<String>,
    },
}

impl Repository {
    /// The referrers of `subject` now, past every cache, unless the
    /// registry says its index is still the one `validator` names.
    pub async fn poll_referrers(
        &self,
        subject: &Digest,
        validator: Option<&str>,
    ) -> Result<Polled> {
        let tag_schema = self.known_mode() == ReferrersMode::TagSchema;
        if let (Some(etag), true) = (validator, tag_schema) {
            let url = self.url(&format!("manifests/{}", referrers_tag(subject)))?;
            let mut headers = HeaderMap::new();
            headers.insert(
                header::ACCEPT,
                header_value(&MANIFEST_MEDIA_TYPES.join(", "))?,
            );
            headers.insert(header::IF_NONE_MATCH, header_value(etag)?);
            let resp = self
                .send(Method::GET, url, Access::Pull, headers, None)
                .await?;
            if resp.status() == StatusCode::NOT_MODIFIED {
                return Ok(Polled::Unchanged);
            }
            // Changed, or the header was ignored: read it as always below
            // (a second request, only when something moved).
        }
        if tag_schema {
            let read = self.fallback_index(subject, true).await?;
            let validator = read
                .precondition
                .filter(|(name, _)| name == header::IF_MATCH)
                .and_then(|(_, etag)| etag.to_str().ok().map(str::to_string));
            return Ok(Polled::Listed {
                referrers: read.index.manifests,
                validator,
            });
        }
        let referrers = self.referrers_fresh(subject, None, true).await?;
        Ok(Polled::Listed {
            referrers,
            validator: None,
        })
    }
}

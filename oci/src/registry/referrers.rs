//! Referrers on a registry: detecting the referrers API, listing through it
//! (with pagination), and keeping the referrers tag schema's index right on
//! registries without it.
//!
//! Detection probes `GET /v2/<repo>/referrers/<digest>` once per repository:
//! 200 with an OCI index means the API exists; a 404 that is not a JSON
//! `NAME_UNKNOWN` (docker-registry 2.8 answers a plain-text 404) means it
//! does not; `NAME_UNKNOWN` decides nothing; anything else is an error. An
//! `OCI-Subject` header on a manifest PUT also proves the API.

use std::collections::HashSet;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use url::Url;

use super::{error_codes, read_limited, Access, Repository, MAX_ERROR_BODY, MAX_MANIFEST_BYTES};
use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::{Descriptor, ImageIndex, MEDIA_TYPE_INDEX};

/// The most pages of one referrers listing we follow.
const MAX_PAGES: usize = 64;
/// The most bytes of one referrers listing we read, over all pages.
const MAX_LISTING_BYTES: usize = 32 << 20;

/// How referrers are found and recorded, as ORAS's `--distribution-spec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReferrersMode {
    /// Detect: the API where the registry has it, the tag schema otherwise.
    #[default]
    Auto,
    /// The referrers API (`v1.1-referrers-api`).
    Api,
    /// The referrers tag schema (`v1.1-referrers-tag`).
    TagSchema,
}

impl std::str::FromStr for ReferrersMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(ReferrersMode::Auto),
            "api" | "v1.1-referrers-api" => Ok(ReferrersMode::Api),
            "tag" | "v1.1-referrers-tag" => Ok(ReferrersMode::TagSchema),
            other => Err(Error::invalid(format!(
                "unknown referrers mode {other:?}: use auto, v1.1-referrers-api or v1.1-referrers-tag"
            ))),
        }
    }
}

/// What a referrers probe found.
enum Probe {
    /// The API answered with this listing.
    Supported(Vec<Descriptor>),
    /// The registry has no referrers API.
    Unsupported,
    /// The repository is unknown, so nothing can be said yet.
    Unknown,
}

/// What one page of a referrers listing gave.
enum Page {
    /// The probe is decided without a listing.
    Verdict(Probe),
    /// A listing page, and the next page's URL if the registry named one.
    Listing { next: Option<Url>, body: Bytes },
}

/// The referrers tag schema's tag for `digest`: `<alg>-<hex>`, the
/// algorithm cut to 32 and the hex to 64 characters, other characters
/// replaced by `-`.
pub fn referrers_tag(digest: &Digest) -> String {
    let clean = |s: &str, max: usize| -> String {
        s.chars()
            .take(max)
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    format!(
        "{}-{}",
        clean(digest.algorithm().as_ref(), 32),
        clean(digest.digest(), 64)
    )
}

impl Repository {
    fn support_key(&self) -> String {
        self.name.name()
    }

    pub(super) fn learn_referrers_mode(&self, mode: ReferrersMode) {
        self.client
            .referrers_support
            .lock()
            .expect("referrers support lock")
            .insert(self.support_key(), mode);
    }

    /// The mode in force without probing: the call's, else the config's,
    /// else what was learned; `Auto` when nothing is known.
    pub(super) fn known_mode(&self) -> ReferrersMode {
        if self.referrers_mode != ReferrersMode::Auto {
            return self.referrers_mode;
        }
        if let Some(mode) = self
            .client
            .options
            .referrers_modes
            .get(self.name.registry())
        {
            if *mode != ReferrersMode::Auto {
                return *mode;
            }
        }
        self.client
            .referrers_support
            .lock()
            .expect("referrers support lock")
            .get(&self.support_key())
            .copied()
            .unwrap_or(ReferrersMode::Auto)
    }

    /// Lists the referrers of `subject`; `artifact_type` is passed to the
    /// API as a hint, and the caller filters either way. A listing is kept
    /// for the cache's time-to-live (until this daemon changes it), and
    /// concurrent identical listings share one fetch.
    pub(crate) async fn referrers(
        &self,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        let asked = std::time::Instant::now();
        let group = self.cache_key(subject.as_ref());
        let key = format!("{group}#{}", artifact_type.unwrap_or(""));
        let cache = &self.client.cache;
        if let Some(hit) = cache.listing(&key, asked) {
            return Ok(hit);
        }
        let _flight = cache.flight(&format!("LIST {key}")).await;
        if let Some(hit) = cache.listing(&key, asked) {
            return Ok(hit);
        }
        let fetched = std::time::Instant::now();
        let list = self.referrers_fresh(subject, artifact_type, false).await?;
        cache.keep_listing(&group, &key, fetched, &list);
        Ok(list)
    }

    /// Lists the referrers of `subject`, asking the registry; a tag-schema
    /// index cached by digest is used unless `uncached`.
    pub(crate) async fn referrers_fresh(
        &self,
        subject: &Digest,
        artifact_type: Option<&str>,
        uncached: bool,
    ) -> Result<Vec<Descriptor>> {
        match self.known_mode() {
            ReferrersMode::TagSchema => {}
            ReferrersMode::Api => {
                return match self.probe(subject, artifact_type).await? {
                    Probe::Supported(list) => Ok(list),
                    Probe::Unknown => Err(Error::not_found(format!(
                        "repository {} not found",
                        self.name.name()
                    ))),
                    Probe::Unsupported => Err(Error::new(
                        ErrorKind::FailedPrecondition,
                        format!("{} has no referrers API", self.name.registry()),
                    )),
                }
            }
            ReferrersMode::Auto => match self.probe(subject, artifact_type).await? {
                Probe::Supported(list) => return Ok(list),
                Probe::Unsupported | Probe::Unknown => {}
            },
        }
        Ok(self
            .fallback_index(subject, uncached)
            .await?
            .index
            .manifests)
    }

    /// Asks the referrers API, following `Link: <…>; rel="next"` pages on
    /// the same origin, within page and byte caps. Records the verdict.
    async fn probe(&self, subject: &Digest, artifact_type: Option<&str>) -> Result<Probe> {
        let mut url = self.url(&format!("referrers/{subject}"))?;
        if let Some(t) = artifact_type {
            url.query_pairs_mut().append_pair("artifactType", t);
        }
        let origin = url.origin();
        let mut out = Vec::new();
        let mut read = 0usize;
        for page in 0.. {
            if page == MAX_PAGES {
                return Err(Error::new(
                    ErrorKind::FailedPrecondition,
                    format!("the referrers listing of {subject} has more than {MAX_PAGES} pages"),
                ));
            }
            let (next, body) = match self.referrers_page(&url, page == 0, subject).await? {
                Page::Verdict(probe) => return Ok(probe),
                Page::Listing { next, body } => (next, body),
            };
            read += body.len();
            if read > MAX_LISTING_BYTES {
                return Err(Error::new(
                    ErrorKind::FailedPrecondition,
                    format!("the referrers listing of {subject} is larger than {MAX_LISTING_BYTES} bytes"),
                ));
            }
            let index: ImageIndex = serde_json::from_slice(&body).map_err(|e| {
                Error::new(
                    ErrorKind::Unavailable,
                    format!(
                        "malformed referrers response: {}",
                        crate::text::json_failure(&e)
                    ),
                )
            })?;
            out.extend(index.manifests);
            match next {
                Some(next) if next.origin() == origin => url = next,
                Some(next) => {
                    return Err(Error::new(
                        ErrorKind::Unavailable,
                        format!(
                            "the referrers listing points to another origin ({}); not following",
                            next.origin().ascii_serialization()
                        ),
                    ))
                }
                None => break,
            }
        }
        Ok(Probe::Supported(out))
    }

    /// One page of a referrers listing. On the `first` page, a 404 is the
    /// verdict: `Unknown` for `NAME_UNKNOWN`, else `Unsupported` (recorded).
    /// An OCI index records the API as supported.
    async fn referrers_page(&self, url: &Url, first: bool, subject: &Digest) -> Result<Page> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static(MEDIA_TYPE_INDEX));
        let resp = self
            .send(Method::GET, url.clone(), Access::Pull, headers, None)
            .await?;
        let status = resp.status();
        let is_index = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with(MEDIA_TYPE_INDEX));
        if first && status == StatusCode::NOT_FOUND {
            let body = read_limited(resp, MAX_ERROR_BODY, self.client.options.idle())
                .await
                .unwrap_or_default();
            if error_codes(&body).iter().any(|c| c == "NAME_UNKNOWN") {
                return Ok(Page::Verdict(Probe::Unknown));
            }
            self.learn_referrers_mode(ReferrersMode::TagSchema);
            return Ok(Page::Verdict(Probe::Unsupported));
        }
        if status != StatusCode::OK || !is_index {
            let what = format!("referrers of {subject}");
            return Err(match status {
                StatusCode::OK => Error::new(
                    ErrorKind::Unavailable,
                    format!(
                        "{}: {what}: the answer is not an OCI index",
                        self.name.registry()
                    ),
                ),
                _ => self.error(resp, &what).await,
            });
        }
        self.learn_referrers_mode(ReferrersMode::Api);
        let next = next_link(resp.headers(), resp.url());
        let body = read_limited(resp, MAX_MANIFEST_BYTES, self.client.options.idle()).await?;
        Ok(Page::Listing { next, body })
    }

    /// Whether a manifest pushed with `subject` needs the tag schema kept
    /// up to date by us. `indexed` says the registry answered the push with
    /// `OCI-Subject`. Probes the API at most once per repository.
    pub(crate) async fn needs_fallback(&self, subject: &Digest, indexed: bool) -> Result<bool> {
        Ok(match self.known_mode() {
            ReferrersMode::Api => false,
            ReferrersMode::TagSchema => true,
            ReferrersMode::Auto if indexed => false,
            ReferrersMode::Auto => match self.probe(subject, None).await? {
                Probe::Supported(_) => false,
                Probe::Unsupported => true,
                // The subject exists (we resolved it), so its repository
                // does too; a registry that still says NAME_UNKNOWN is not
                // serving referrers for it.
                Probe::Unknown => true,
            },
        })
    }

    /// Reads the tag-schema index of `subject` (empty when the tag does not
    /// exist); `fresh` asks the registry whatever the cache holds, and
    /// learns what a write must require to replace this version only.
    pub(super) async fn fallback_index(&self, subject: &Digest, fresh: bool) -> Result<IndexRead> {
        let tag = referrers_tag(subject);
        let fetched = match fresh {
            true => self.fetch_manifest_tagged(&tag).await,
            false => self.fetch_manifest(&tag).await.map(|(d, b)| (d, b, None)),
        };
        match fetched {
            Ok((desc, body, etag)) => {
                if &desc.digest == subject {
                    return Err(Error::new(
                        ErrorKind::FailedPrecondition,
                        format!(
                            "the registry resolves the referrers tag {tag} to the subject itself"
                        ),
                    ));
                }
                if desc.media_type != MEDIA_TYPE_INDEX {
                    return Err(Error::new(
                        ErrorKind::FailedPrecondition,
                        format!(
                            "the referrers tag {tag} holds {}, not an OCI index",
                            desc.media_type
                        ),
                    ));
                }
                let index: ImageIndex = serde_json::from_slice(&body).map_err(|e| {
                    Error::new(
                        ErrorKind::FailedPrecondition,
                        format!(
                            "malformed referrers index {tag}: {}",
                            crate::text::json_failure(&e)
                        ),
                    )
                })?;
                Ok(IndexRead {
                    digest: Some(desc.digest),
                    index,
                    precondition: etag.map(|etag| (header::IF_MATCH, etag)),
                })
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(IndexRead {
                digest: None,
                index: ImageIndex::new(vec![]),
                precondition: fresh.then(|| (header::IF_NONE_MATCH, HeaderValue::from_static("*"))),
            }),
            Err(e) => Err(e),
        }
    }
}

/// A read of a subject's tag-schema index.
pub(super) struct IndexRead {
    /// The index's digest; `None` when the tag does not exist.
    pub digest: Option<Digest>,
    /// Its content (empty when the tag does not exist).
    pub index: ImageIndex,
    /// What a write must require so that it replaces only this version:
    /// `If-Match` the answer's ETag, or `If-None-Match: *` where there was
    /// no tag. `None` for a cached read, or an answer without an ETag.
    pub precondition: Option<(header::HeaderName, HeaderValue)>,
}

/// The tag-schema index's new list of referrers: `remove` dropped, `add`
/// appended unless its digest is listed already, and every later entry with
/// a digest listed before it dropped. Public for the fuzz targets in
/// `oci/fuzz`.
#[doc(hidden)]
pub fn merge_referrers(
    mut manifests: Vec<Descriptor>,
    add: Option<&Descriptor>,
    remove: Option<&Digest>,
) -> Vec<Descriptor> {
    if let Some(gone) = remove {
        manifests.retain(|d| &d.digest != gone);
    }
    if let Some(entry) = add {
        if !manifests.iter().any(|d| d.digest == entry.digest) {
            manifests.push(entry.clone());
        }
    }
    let mut seen = HashSet::new();
    manifests.retain(|d| seen.insert(d.digest.clone()));
    manifests
}

/// The `rel="next"` target of a `Link` header, resolved against `base`.
/// Public for the fuzz targets in `oci/fuzz`.
#[doc(hidden)]
pub fn next_link(headers: &HeaderMap, base: &Url) -> Option<Url> {
    headers
        .get_all(header::LINK)
        .iter()
        .filter_map(|value| next_target(std::str::from_utf8(value.as_bytes()).ok()?))
        .next()
        .and_then(|target| base.join(target).ok())
}

/// The target of the first link with relation `next` in one `Link` value
/// (RFC 8288): `<target>` may hold `,` and `;`, parameters are split outside
/// quotes, and `rel` is a case-insensitive, space-separated list.
fn next_target(value: &str) -> Option<&str> {
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        let (target, after) = rest.strip_prefix('<')?.split_once('>')?;
        let params = split_unquoted(after, ',').next().unwrap_or("");
        rest = &after[params.len()..];
        let is_next = split_unquoted(params, ';').any(|param| {
            param.split_once('=').is_some_and(|(key, value)| {
                key.trim().eq_ignore_ascii_case("rel")
                    && value
                        .trim()
                        .trim_matches('"')
                        .split_ascii_whitespace()
                        .any(|rel| rel.eq_ignore_ascii_case("next"))
            })
        });
        if is_next {
            return Some(target);
        }
        if rest.is_empty() {
            return None;
        }
    }
}

/// `s` split at every `sep` outside a quoted string.
fn split_unquoted(s: &str, sep: char) -> impl Iterator<Item = &str> {
    let (mut quoted, mut escaped, mut start) = (false, false, 0);
    let mut cuts = s.char_indices().filter_map(move |(i, c)| {
        let was_escaped = std::mem::take(&mut escaped);
        match c {
            '\\' if quoted && !was_escaped => escaped = true,
            '"' if !was_escaped => quoted = !quoted,
            c if c == sep && !quoted => return Some(i),
            _ => {}
        }
        None
    });
    std::iter::from_fn(move || {
        if start > s.len() {
            return None;
        }
        let end = cuts.next().unwrap_or(s.len());
        let piece = &s[start..end];
        start = end + 1;
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_tag() {
        let d = crate::digest::sha256(b"subject");
        assert_eq!(referrers_tag(&d), format!("sha256-{}", d.digest()));
    }

    #[test]
    fn link_header_next_page() {
        let base = Url::parse("https://r.example/v2/a/referrers/sha256:x").unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            header::LINK,
            HeaderValue::from_static("</v2/a/referrers/sha256:x?n=2&last=y>; rel=\"next\""),
        );
        assert_eq!(
            next_link(&h, &base).unwrap().as_str(),
            "https://r.example/v2/a/referrers/sha256:x?n=2&last=y"
        );
        assert!(next_link(&HeaderMap::new(), &base).is_none());
    }

    /// Link values the `link_header` fuzz target (oci/fuzz) found misread
    /// (no next page, so a listing stopped early without a word): targets
    /// holding `;`, `,` or UTF-8, and `rel` lists or capitals.
    #[test]
    fn link_header_fuzz_regressions() {
        let base = Url::parse("https://r.example/v2/a/referrers/sha256:x").unwrap();
        for (value, want) in [
            ("</;h>; rel=\"next\"", "https://r.example/;h"),
            (
                "<=/v2/app/rn=2\u{793}aqt>; rel=\"next\"",
                "https://r.example/v2/a/referrers/=/v2/app/rn=2%DE%93aqt",
            ),
            (
                "</v2/a/referrers/x?last=a,b;c>; rel=\"next\"",
                "https://r.example/v2/a/referrers/x?last=a,b;c",
            ),
            (
                "</p>; title=\"a, rel=next\"; rel=prev, </n>; rel=\"last next\"",
                "https://r.example/n",
            ),
            ("</n>; REL=Next", "https://r.example/n"),
        ] {
            let mut h = HeaderMap::new();
            h.insert(
                header::LINK,
                HeaderValue::from_bytes(value.as_bytes()).unwrap(),
            );
            let got = next_link(&h, &base).map(String::from);
            assert_eq!(got.as_deref(), Some(want), "Link: {value}");
        }
        let mut h = HeaderMap::new();
        h.insert(header::LINK, HeaderValue::from_static("</p>; rel=\"prev\""));
        assert!(next_link(&h, &base).is_none());
    }

    #[test]
    fn modes_parse_like_oras() {
        assert_eq!(
            "v1.1-referrers-api".parse::<ReferrersMode>().unwrap(),
            ReferrersMode::Api
        );
        assert_eq!(
            "v1.1-referrers-tag".parse::<ReferrersMode>().unwrap(),
            ReferrersMode::TagSchema
        );
        assert!("v2".parse::<ReferrersMode>().is_err());
    }
}

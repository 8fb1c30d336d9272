//! Listings: a repository's tags (`tags/list`), the registry's
//! repositories (`_catalog`), and the referrers tags of a repository, in one listing: `GET
//! /v2/<repo>/tags/list` (following `Link` pages on the same origin), kept
//! whole (the tag schema's `sha256-<hex>` names are among them). A deep discover on a
//! registry without the referrers API asks this once, then fetches only the
//! indexes that exist instead of one 404 per manifest in the tree.

use std::collections::HashSet;
use std::time::Instant;

use http::{HeaderMap, Method, StatusCode};
use serde::Deserialize;

use super::referrers::{next_link, ReferrersMode};
use super::{read_limited, Access, Repository};
use crate::error::{Error, ErrorKind, Result};

/// The most pages of one tag listing we follow.
const MAX_PAGES: usize = 4096;
/// The most bytes of one tag listing we read, over all pages.
const MAX_LISTING_BYTES: usize = 16 << 20;

#[derive(Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct Catalog {
    #[serde(default)]
    repositories: Option<Vec<String>>,
}

impl Repository {
    /// The repository's tags, when its referrers are known to
    /// live in the tag schema; `None` when they are not (the referrers API,
    /// or nothing learned yet), for the caller to ask per subject.
    pub(crate) async fn referrers_tags(&self) -> Result<Option<HashSet<String>>> {
        if self.known_mode() != ReferrersMode::TagSchema {
            return Ok(None);
        }
        // Every tag: the schema's `sha256-` and `sha512-` ones among them.
        Ok(Some(self.tags().await?.into_iter().collect()))
    }

    /// The repository's tags, in the registry's order, over every page;
    /// kept for the tag cache's time to live, forgotten when this daemon
    /// tags or deletes in the repository.
    pub async fn tags(&self) -> Result<Vec<String>> {
        let (cache, key, asked) = (&self.client.cache, self.name.name(), Instant::now());
        if let Some(hit) = cache.tag_list(&key, asked) {
            return Ok(hit);
        }
        let url = self.url("tags/list")?;
        let tags = self
            .listing(url, Access::Pull, "tag listing", |body| {
                serde_json::from_slice::<TagList>(body).map(|l| l.tags.unwrap_or_default())
            })
            .await?;
        cache.keep_tag_list(&key, asked, &tags);
        Ok(tags)
    }

    /// The tags the registry lists after `last` (`tags/list?last=`, every
    /// page, uncached): what the registry makes of `last` (the
    /// distribution spec says "lexically after"; some registries ignore
    /// it without `n`), as `oras repo tags --last` shows it.
    pub async fn tags_after(&self, last: &str) -> Result<Vec<String>> {
        let mut url = self.url("tags/list")?;
        url.query_pairs_mut().append_pair("last", last);
        self.listing(url, Access::Pull, "tag listing", |body| {
            serde_json::from_slice::<TagList>(body).map(|l| l.tags.unwrap_or_default())
        })
        .await
    }

    /// The registry's repositories (`/v2/_catalog`), over every page; this
    /// repository's own name plays no part.
    pub async fn repositories(&self) -> Result<Vec<String>> {
        let url = self.registry_url("_catalog")?;
        self.listing(url, Access::Catalog, "repository listing", |body| {
            serde_json::from_slice::<Catalog>(body).map(|l| l.repositories.unwrap_or_default())
        })
        .await
    }

    /// A paged listing from `url` (following `Link` on the same origin),
    /// each page's names picked out by `names`.
    async fn listing(
        &self,
        mut url: url::Url,
        access: Access,
        what: &str,
        names: fn(&[u8]) -> serde_json::Result<Vec<String>>,
    ) -> Result<Vec<String>> {
        let origin = url.origin();
        let (mut out, mut read) = (Vec::new(), 0usize);
        for _ in 0..MAX_PAGES {
            let resp = self
                .send(
                    Method::GET,
                    url.clone(),
                    access.clone(),
                    HeaderMap::new(),
                    None,
                )
                .await?;
            if resp.status() != StatusCode::OK {
                return Err(self.error(resp, &format!("the {what}")).await);
            }
            let next = next_link(resp.headers(), resp.url());
            let body =
                read_limited(resp, MAX_LISTING_BYTES - read, self.client.options.idle()).await?;
            read += body.len();
            out.extend(names(&body).map_err(|e| {
                Error::new(
                    ErrorKind::Unavailable,
                    format!("malformed {what}: {}", crate::text::json_failure(&e)),
                )
            })?);
            match next {
                Some(next) if next.origin() == origin => url = next,
                _ => return Ok(out),
            }
        }
        Err(Error::new(
            ErrorKind::FailedPrecondition,
            format!("the {what} has more than {MAX_PAGES} pages"),
        ))
    }
}

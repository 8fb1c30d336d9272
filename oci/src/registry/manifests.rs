//! Manifests: resolve by tag or digest, fetch, push and delete, through
//! the client's [`cache`](super::cache): manifests by digest are kept,
//! tags for a short while, and each fetch is single-flight.

use std::time::Instant;

use super::*;

impl Repository {
    /// The cache key of a tag (`registry/repo:tag`) or digest
    /// (`registry/repo@digest`) of this repository.
    pub(super) fn cache_key(&self, reference: &str) -> String {
        match reference.contains(':') {
            true => format!("{}@{reference}", self.name.name()),
            false => format!("{}:{reference}", self.name.name()),
        }
    }

    /// What the cache says `reference` is, for a caller who asked at
    /// `asked`.
    fn cached_descriptor(&self, key: &str, asked: Instant) -> Option<Descriptor> {
        let cache = &self.client.cache;
        match key.contains('@') {
            true => cache.manifest_descriptor(key),
            false => cache.tag(key, asked),
        }
    }

    /// The cached manifest `reference` names, with its bytes.
    async fn cached_manifest(&self, key: &str, asked: Instant) -> Option<(Descriptor, Bytes)> {
        let cache = &self.client.cache;
        match key.contains('@') {
            true => cache.manifest(key).await,
            false => {
                let desc = cache.tag(key, asked)?;
                cache.manifest(&self.cache_key(desc.digest.as_ref())).await
            }
        }
    }

    /// Resolves a tag or digest to the manifest's descriptor: from the
    /// cache, or by one request shared with concurrent callers.
    pub(crate) async fn resolve(&self, reference: &str) -> Result<Descriptor> {
        let (asked, key) = (Instant::now(), self.cache_key(reference));
        if let Some(hit) = self.cached_descriptor(&key, asked) {
            return Ok(hit);
        }
        let _flight = self.client.cache.flight(&format!("HEAD {key}")).await;
        if let Some(hit) = self.cached_descriptor(&key, asked) {
            return Ok(hit);
        }
        let fetched = Instant::now();
        let desc = self.resolve_fresh(reference).await?;
        match key.contains('@') {
            true => self.client.cache.keep_descriptor(&key, &desc),
            false => self.client.cache.keep_tag(&key, fetched, &desc),
        }
        Ok(desc)
    }

    /// Fetches a manifest by tag or digest: from the cache, or by one
    /// request shared with concurrent callers; what is fetched is kept.
    pub(crate) async fn fetch_manifest(&self, reference: &str) -> Result<(Descriptor, Bytes)> {
        let (asked, key) = (Instant::now(), self.cache_key(reference));
        if let Some(hit) = self.cached_manifest(&key, asked).await {
            return Ok(hit);
        }
        let _flight = self.client.cache.flight(&format!("GET {key}")).await;
        if let Some(hit) = self.cached_manifest(&key, asked).await {
            return Ok(hit);
        }
        let fetched = Instant::now();
        let (desc, body) = self.fetch_manifest_fresh(reference).await?;
        self.keep_manifest(&desc, &body).await;
        if !key.contains('@') {
            self.client.cache.keep_tag(&key, fetched, &desc);
        }
        Ok((desc, body))
    }

    /// Keeps a manifest this repository has, its bytes checked.
    async fn keep_manifest(&self, desc: &Descriptor, body: &Bytes) {
        let key = self.cache_key(desc.digest.as_ref());
        self.client.cache.keep_manifest(&key, desc, body).await;
    }

    /// A HEAD or GET of a manifest, accepting every manifest type we read.
    pub(super) async fn manifest_request(
        &self,
        method: Method,
        reference: &str,
    ) -> Result<reqwest::Response> {
        let url = self.url(&format!("manifests/{reference}"))?;
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            header_value(&MANIFEST_MEDIA_TYPES.join(", "))?,
        );
        self.send(method, url, Access::Pull, headers, None).await
    }

    /// Resolves a tag or digest to the manifest's descriptor, asking the
    /// registry. A HEAD request answers with the digest, type and size; registries
    /// that leave any out get a GET instead.
    pub(super) async fn resolve_fresh(&self, reference: &str) -> Result<Descriptor> {
        let resp = self.manifest_request(Method::HEAD, reference).await?;
        match resp.status() {
            StatusCode::NOT_FOUND => {
                return Err(Error::not_found(format!(
                    "{}: manifest {reference} not found",
                    self.name.registry()
                )))
            }
            // Registries that do not do HEAD on manifests get a GET below.
            s if s.is_success()
                || s == StatusCode::METHOD_NOT_ALLOWED
                || s == StatusCode::NOT_IMPLEMENTED
                || s == StatusCode::BAD_REQUEST => {}
            _ => return Err(self.error(resp, &format!("manifest {reference}")).await),
        }
        if resp.status().is_success() {
            let h = resp.headers();
            let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
            let digest = text("docker-content-digest").and_then(|d| digest::parse(d).ok());
            let media_type = text("content-type")
                .map(|ct| ct.split(';').next().unwrap_or(ct).trim())
                .filter(|ct| MANIFEST_MEDIA_TYPES.contains(ct));
            // The header itself: a HEAD response's body is empty, so the
            // body's length (`content_length()`) says 0.
            let size = text("content-length")
                .and_then(|n| n.parse::<u64>().ok())
                .filter(|n| *n > 0);
            // A digest reference must come back as itself.
            let consistent = match (reference.parse::<Digest>(), &digest) {
                (Ok(asked), Some(got)) => &asked == got,
                _ => true,
            };
            if let (Some(digest), Some(media_type), Some(size), true) =
                (digest, media_type, size, consistent)
            {
                return Ok(Descriptor {
                    media_type: media_type.to_string(),
                    digest,
                    size,
                    artifact_type: None,
                    annotations: Default::default(),
                });
            }
        }
        let (desc, body) = self.fetch_manifest_fresh(reference).await?;
        self.keep_manifest(&desc, &body).await;
        Ok(desc)
    }

    /// Fetches a manifest by tag or digest from the registry; the bytes are
    /// verified against the digest when the reference is one.
    pub(super) async fn fetch_manifest_fresh(
        &self,
        reference: &str,
    ) -> Result<(Descriptor, Bytes)> {
        let (desc, body, _) = self.fetch_manifest_tagged(reference).await?;
        Ok((desc, body))
    }

    /// [`Repository::fetch_manifest_fresh`], with the answer's `ETag`, for
    /// a conditional write of the same tag.
    pub(super) async fn fetch_manifest_tagged(
        &self,
        reference: &str,
    ) -> Result<(Descriptor, Bytes, Option<HeaderValue>)> {
        let resp = self.manifest_request(Method::GET, reference).await?;
        if !resp.status().is_success() {
            return Err(self.error(resp, &format!("manifest {reference}")).await);
        }
        let etag = resp.headers().get(header::ETAG).cloned();
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or(s).trim().to_string());
        let body = read_limited(resp, MAX_MANIFEST_BYTES, self.client.options.idle()).await?;
        let digest = match reference.parse::<Digest>() {
            Ok(expected) if reference.contains(':') => {
                digest::verify(&body, &expected, None)?;
                expected
            }
            _ => digest::sha256(&body),
        };
        let media_type = match content_type {
            Some(ct) if MANIFEST_MEDIA_TYPES.contains(&ct.as_str()) => ct,
            _ => sniff_media_type(&body)?,
        };
        Ok((
            Descriptor {
                media_type,
                digest,
                size: body.len() as u64,
                artifact_type: None,
                annotations: Default::default(),
            },
            body,
            etag,
        ))
    }

    /// Pushes a manifest under `reference` (a tag or its digest). Returns
    /// its descriptor and whether the registry sent `OCI-Subject`, which
    /// proves it indexed the subject itself.
    pub(crate) async fn push_manifest(
        &self,
        reference: &str,
        media_type: &str,
        content: Bytes,
    ) -> Result<(Descriptor, bool)> {
        let pushed = self
            .push_manifest_if(reference, media_type, content, None)
            .await?;
        Ok(pushed.expect("an unconditional push has no precondition to fail"))
    }

    /// [`Repository::push_manifest`] under a precondition on the tag
    /// (`If-Match: <etag>`, `If-None-Match: *`): `None` when the registry
    /// answers 412, because someone else wrote the tag since it was read.
    /// Registries that do not do conditional requests ignore the header.
    pub(super) async fn push_manifest_if(
        &self,
        reference: &str,
        media_type: &str,
        content: Bytes,
        precondition: Option<(header::HeaderName, HeaderValue)>,
    ) -> Result<Option<(Descriptor, bool)>> {
        let desc = Descriptor::for_bytes(media_type, &content);
        let url = self.url(&format!("manifests/{reference}"))?;
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, header_value(media_type)?);
        let conditional = precondition.is_some();
        if let Some((name, value)) = precondition {
            headers.insert(name, value);
        }
        let resp = self
            .send(
                Method::PUT,
                url,
                Access::Push,
                headers,
                Some(content.clone()),
            )
            .await?;
        if conditional && resp.status() == StatusCode::PRECONDITION_FAILED {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(self.error(resp, &format!("manifest {reference}")).await);
        }
        // Only what the registry serves is kept: the next read of this tag
        // asks it.
        if !reference.contains(':') {
            self.client.cache.forget_tag(&self.cache_key(reference));
            self.client.cache.forget_tag_list(&self.name.name());
        }
        let subject_indexed = resp.headers().contains_key("oci-subject");
        if subject_indexed {
            self.learn_referrers_mode(ReferrersMode::Api);
        }
        Ok(Some((desc, subject_indexed)))
    }

    /// Forgets the referrer listings of `subject`, after this daemon
    /// changed them.
    pub(crate) fn forget_referrers(&self, subject: &Digest) {
        let group = self.cache_key(subject.as_ref());
        self.client.cache.forget_listings(&group);
    }

    /// Deletes a manifest by digest.
    pub(crate) async fn delete_manifest(&self, digest: &Digest) -> Result<()> {
        let url = self.url(&format!("manifests/{digest}"))?;
        let resp = self
            .send(Method::DELETE, url, Access::Delete, HeaderMap::new(), None)
            .await?;
        if !resp.status().is_success() {
            return Err(self
                .error(resp, &format!("delete of manifest {digest}"))
                .await);
        }
        let cache = &self.client.cache;
        cache.forget_manifest(&self.cache_key(digest.as_ref()));
        cache.forget_tags_of(&self.name.name(), digest);
        cache.forget_tag_list(&self.name.name());
        Ok(())
    }
}

//! Blobs: existence, cross-repository mounts, downloads that resume with
//! `Range` and read at a pace.

use super::*;

/// The smallest piece a download yields, but its last.
const PIECE: usize = 256 << 10;

impl Repository {
    /// Waits until no other task of this process is uploading `digest` to
    /// this repository; hold the guard across the existence check and the
    /// upload.
    pub(crate) async fn lock_blob(&self, digest: &Digest) -> tokio::sync::OwnedMutexGuard<()> {
        self.client
            .blob_locks
            .lock(&format!("{}@{digest}", self.name.name()))
            .await
    }

    /// Remembers that this repository has `digest`.
    pub(super) fn saw_blob(&self, digest: &Digest) {
        let mut homes = self.client.blob_homes.lock().expect("blob homes");
        if homes.len() >= MAX_BLOB_HOMES {
            homes.clear();
        }
        homes.insert(
            digest.clone(),
            (
                self.name.registry().to_string(),
                self.name.repository().to_string(),
            ),
        );
    }

    /// The other repository of this registry where `digest` was seen, if
    /// any.
    fn mount_source(&self, digest: &Digest) -> Option<String> {
        let homes = self.client.blob_homes.lock().expect("blob homes");
        match homes.get(digest) {
            Some((registry, repo))
                if registry == self.name.registry() && repo != self.name.repository() =>
            {
                Some(repo.clone())
            }
            _ => None,
        }
    }

    /// Mounts `digest` from another repository of this registry where it
    /// was seen, if any (`POST ?mount=&from=`). `false` means nothing was
    /// mounted and the blob must be uploaded; a refused mount is not an error.
    pub(crate) async fn try_mount(&self, digest: &Digest) -> Result<bool> {
        match self.mount_source(digest) {
            Some(from) => Ok(self.mount(digest, from).await?.is_none()),
            None => Ok(false),
        }
    }

    /// Mounts `digest` from `from`, another repository of this registry
    /// reached the same way (a copy's source); `false` when the two are
    /// not such a pair or the registry refused.
    pub(crate) async fn mount_from(&self, digest: &Digest, from: &Repository) -> Result<bool> {
        let same_registry = from.name.registry() == self.name.registry()
            && from.scheme == self.scheme
            && from.name.repository() != self.name.repository();
        if !same_registry {
            return Ok(false);
        }
        let repository = from.name.repository().to_string();
        Ok(self.mount(digest, repository).await?.is_none())
    }

    /// The mount POST: `None` when mounted, else the session the registry
    /// opened instead (a 202), if it did.
    async fn mount(&self, digest: &Digest, from: String) -> Result<Option<Option<UploadSession>>> {
        let mut url = self.url("blobs/uploads/")?;
        url.query_pairs_mut()
            .append_pair("mount", digest.as_ref())
            .append_pair("from", &from);
        let resp = self
            .send(
                Method::POST,
                url,
                Access::MountFrom(from.clone()),
                HeaderMap::new(),
                Some(Bytes::new()),
            )
            .await?;
        match resp.status() {
            StatusCode::CREATED => {
                tracing::debug!(%digest, %from, to = self.name.repository(), "mounted blob");
                self.saw_blob(digest);
                Ok(None)
            }
            StatusCode::ACCEPTED => Ok(Some(self.session_of(&resp).ok())),
            _ => Ok(Some(None)),
        }
    }

    /// Whether the repository has `digest` or it could be mounted (`None`);
    /// when neither, an upload session for it. The existence check and
    /// the POST that mounts or opens the session go at once, one round
    /// trip for both. A session opened for a blob that was there is left
    /// to expire, as one a refused mount opens is: cancelling it would
    /// take a DELETE, which registries grant only with the `delete` scope.
    pub(crate) async fn check_blob(&self, digest: &Digest) -> Result<Option<UploadSession>> {
        let open = async {
            let mounted = match self.mount_source(digest) {
                Some(from) => self.mount(digest, from).await?,
                None => Some(None),
            };
            match mounted {
                None => Ok(None),
                Some(Some(session)) => Ok(Some(session)),
                // A refused mount opened no session: open one.
                Some(None) => self.start_upload().await.map(Some),
            }
        };
        let (exists, opened) = tokio::join!(self.blob_exists(digest), open);
        if exists? {
            return Ok(None);
        }
        opened
    }

    /// Whether the repository has the blob.
    pub(crate) async fn blob_exists(&self, digest: &Digest) -> Result<bool> {
        Ok(self.blob_size(digest).await?.is_some())
    }

    /// The blob's size by a HEAD (its `Content-Length`, 0 when the
    /// registry gives none); `None` when the repository lacks it.
    pub(crate) async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>> {
        let url = self.url(&format!("blobs/{digest}"))?;
        let resp = self
            .send(Method::HEAD, url, Access::Pull, HeaderMap::new(), None)
            .await?;
        match resp.status() {
            s if s.is_success() => {
                self.saw_blob(digest);
                let size = resp
                    .headers()
                    .get(reqwest::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse().ok());
                // Every check of the bytes needs the size; a registry that
                // does not give it is answering wrongly.
                size.map(Some).ok_or_else(|| {
                    Error::new(
                        ErrorKind::Unavailable,
                        format!(
                            "{}: HEAD of blob {digest} gave no Content-Length",
                            self.name.registry()
                        ),
                    )
                })
            }
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.error(resp, &format!("blob {digest}")).await),
        }
    }

    /// Deletes a blob (`DELETE /blobs/<digest>`, the `delete` scope).
    pub(crate) async fn delete_blob(&self, digest: &Digest) -> Result<()> {
        let url = self.url(&format!("blobs/{digest}"))?;
        let resp = self
            .send(Method::DELETE, url, Access::Delete, HeaderMap::new(), None)
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            _ => Err(self.error(resp, &format!("delete of blob {digest}")).await),
        }
    }

    /// Streams a blob's bytes, unverified ([`crate::Target`] verifies), in
    /// pieces of at least [`PIECE`] but the last: the socket's small reads
    /// are gathered, so each later step (hash, content store, the caller's
    /// file) works on large pieces. When the connection drops mid-body,
    /// the download resumes where it stopped with a `Range` request, a few
    /// times at most.
    pub(crate) async fn fetch_blob(&self, digest: &Digest) -> Result<ByteStream> {
        let first = self.get_blob(digest, 0).await?;
        self.saw_blob(digest);
        let repo = self.clone();
        let digest = digest.clone();
        Ok(async_stream::try_stream! {
            let mut offset = 0u64;
            let mut resumes = 0u32;
            let idle = repo.client.options.idle();
            let mut body = deadline::Paced::new(first.bytes_stream(), idle);
            let mut pending = bytes::BytesMut::new();
            loop {
                let failure = match body.next().await {
                    Ok(Some(chunk)) => {
                        offset += chunk.len() as u64;
                        crate::metrics::moved("down", chunk.len());
                        if pending.is_empty() && chunk.len() >= PIECE {
                            yield chunk;
                        } else {
                            pending.extend_from_slice(&chunk);
                            if pending.len() >= PIECE {
                                yield pending.split().freeze();
                            }
                        }
                        continue;
                    }
                    Ok(None) => break,
                    Err(Some(e)) => Error::http(format!("download of {digest} failed at byte {offset}"), e),
                    Err(None) => deadline::stalled(&format!("download of {digest} at byte {offset}"), idle),
                };
                if resumes + 1 >= MAX_ATTEMPTS {
                    let kind = failure.kind();
                    Err(Error::new(kind, format!("gave up after {resumes} resumes")).with_source(failure))?;
                    break;
                }
                tracing::warn!(%digest, offset, error = %failure, "download interrupted; resuming");
                tokio::time::sleep(backoff(resumes, None)).await;
                resumes += 1;
                body = deadline::Paced::new(repo.get_blob(&digest, offset).await?.bytes_stream(), idle);
            }
            if !pending.is_empty() {
                yield pending.split().freeze();
            }
        }
        .boxed())
    }

    /// GETs a blob from `offset` on. reqwest follows redirects to blob
    /// storage and drops `Authorization` when the host changes.
    pub(super) async fn get_blob(&self, digest: &Digest, offset: u64) -> Result<reqwest::Response> {
        let url = self.url(&format!("blobs/{digest}"))?;
        let mut headers = HeaderMap::new();
        if offset > 0 {
            headers.insert(header::RANGE, header_value(&format!("bytes={offset}-"))?);
        }
        let resp = self
            .send(Method::GET, url, Access::Pull, headers, None)
            .await?;
        if !resp.status().is_success() {
            return Err(self.error(resp, &format!("blob {digest}")).await);
        }
        if offset > 0 {
            let resumes_here = resp.status() == StatusCode::PARTIAL_CONTENT
                && resp
                    .headers()
                    .get(header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|r| r.starts_with(&format!("bytes {offset}-")));
            if !resumes_here {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    format!(
                        "{}: cannot resume {digest} at byte {offset}: no usable Range support",
                        self.name.registry()
                    ),
                ));
            }
        }
        Ok(resp)
    }
}

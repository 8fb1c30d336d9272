//! Blob uploads: one PUT when the digest is known and the blob small,
//! PATCH chunks otherwise, each spooled so an interrupted chunk resumes
//! from the offset the registry reports.

use super::*;

/// An open upload session: where to send the bytes, and the registry's
/// smallest chunk.
#[derive(Debug)]
pub(crate) struct UploadSession {
    location: Url,
    min_chunk: u64,
}

impl Repository {
    /// Uploads a blob from a stream, after a POST that opens the session:
    /// - digest and size known, size at most [`MONOLITHIC_MAX`]: one PUT
    ///   with the body;
    /// - size known otherwise: PATCHes of [`CHUNK`] bytes (or the
    ///   registry's `OCI-Chunk-Min-Length`, if larger) with `Content-Range`,
    ///   then a closing PUT;
    /// - size unknown: one streamed PATCH, then a closing PUT.
    ///
    /// Without a digest, the closing PUT names `digest_of()`, called once
    /// the stream has ended.
    ///
    /// `session` is one opened beforehand (see [`Repository::check_blob`]);
    /// without it the POST comes first.
    pub(crate) async fn push_blob<S>(
        &self,
        session: Option<UploadSession>,
        expected: Expected<'_>,
        body: S,
        digest_of: impl FnOnce() -> Result<Digest>,
    ) -> Result<()>
    where
        S: Stream<Item = Result<Bytes>> + Send + Unpin + 'static,
    {
        let UploadSession {
            location,
            min_chunk,
        } = match session {
            Some(session) => session,
            None => self.start_upload().await?,
        };
        let monolithic_max = self.client.options.monolithic_max.unwrap_or(MONOLITHIC_MAX);
        let (location, digest) = match (expected.digest, expected.size) {
            (Some(digest), Some(size)) if size <= monolithic_max => {
                return self.put_whole(location, digest, size, body).await;
            }
            (digest, Some(size)) => {
                let location = self
                    .patch_chunks(location, body, size, min_chunk)
                    .await
                    .map_err(|e| {
                        let what = digest.map_or("a blob".to_string(), |d| format!("blob {d}"));
                        Error::new(e.kind(), format!("upload of {what}")).with_source(e)
                    })?;
                let digest = match digest {
                    Some(d) => d.clone(),
                    None => digest_of()?,
                };
                (location, digest)
            }
            (_, None) => {
                let location = self.patch_stream(location, body).await?;
                (location, digest_of()?)
            }
        };
        self.close_upload(location, &digest).await
    }

    /// Opens an upload session with a POST.
    pub(super) async fn start_upload(&self) -> Result<UploadSession> {
        let start = self.url("blobs/uploads/")?;
        let resp = self
            .send(
                Method::POST,
                start,
                Access::Push,
                HeaderMap::new(),
                Some(Bytes::new()),
            )
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.error(resp, "blob upload start").await);
        }
        self.session_of(&resp)
    }

    /// The session a 202 to an upload POST opened: its location and the
    /// registry's `OCI-Chunk-Min-Length` (0 when it names none).
    pub(super) fn session_of(&self, resp: &reqwest::Response) -> Result<UploadSession> {
        let min_chunk = resp
            .headers()
            .get("oci-chunk-min-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        Ok(UploadSession {
            location: self.location(resp)?,
            min_chunk,
        })
    }

    /// The whole blob in one PUT that names its digest.
    async fn put_whole<S>(
        &self,
        mut location: Url,
        digest: &Digest,
        size: u64,
        body: S,
    ) -> Result<()>
    where
        S: Stream<Item = Result<Bytes>> + Send + Unpin + 'static,
    {
        location
            .query_pairs_mut()
            .append_pair("digest", digest.as_ref());
        let mut headers = octet_stream();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
        let resp = self
            .send_once(Method::PUT, location, Access::Push, headers, body)
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.error(resp, &format!("upload of blob {digest}")).await);
        }
        self.saw_blob(digest);
        Ok(())
    }

    /// `size` bytes of `body` as PATCHes of [`CHUNK`] bytes (or the
    /// configured chunk size, or `min_chunk` if larger); returns the
    /// location to close the upload at.
    async fn patch_chunks<S>(
        &self,
        mut location: Url,
        body: S,
        size: u64,
        min_chunk: u64,
    ) -> Result<Url>
    where
        S: Stream<Item = Result<Bytes>> + Send + Unpin + 'static,
    {
        let chunk = self
            .client
            .options
            .chunk_size
            .unwrap_or(CHUNK)
            .max(min_chunk)
            .max(1);
        let mut input = body;
        let mut leftover: Option<Bytes> = None;
        let mut offset = 0u64;
        while offset < size {
            let len = chunk.min(size - offset);
            location = self
                .patch_chunk(&mut input, &mut leftover, location, offset, len)
                .await?;
            offset += len;
        }
        Ok(location)
    }

    /// A body of unknown size as one streamed PATCH; returns the location
    /// to close the upload at.
    async fn patch_stream<S>(&self, location: Url, body: S) -> Result<Url>
    where
        S: Stream<Item = Result<Bytes>> + Send + Unpin + 'static,
    {
        let resp = self
            .send_once(Method::PATCH, location, Access::Push, octet_stream(), body)
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.error(resp, "blob upload").await);
        }
        self.location(&resp)
    }

    /// The closing PUT, naming the blob's digest.
    async fn close_upload(&self, mut location: Url, digest: &Digest) -> Result<()> {
        location
            .query_pairs_mut()
            .append_pair("digest", digest.as_ref());
        let resp = self
            .send(
                Method::PUT,
                location,
                Access::Push,
                HeaderMap::new(),
                Some(Bytes::new()),
            )
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.error(resp, &format!("upload of blob {digest}")).await);
        }
        self.saw_blob(digest);
        Ok(())
    }

    /// Sends `len` bytes of `input` as one PATCH at `offset`. The bytes are
    /// also written to a spool file (when the client has a spool directory),
    /// so that after a dropped connection or a registry error the chunk
    /// resumes from the offset the registry reports, not from its start.
    /// Returns the next upload location.
    pub(super) async fn patch_chunk<S>(
        &self,
        input: &mut S,
        leftover: &mut Option<Bytes>,
        mut location: Url,
        offset: u64,
        len: u64,
    ) -> Result<Url>
    where
        S: Stream<Item = Result<Bytes>> + Unpin,
    {
        let mut spool = match &self.client.options.spool_dir {
            Some(dir) => Some(Spool::create(dir).await?),
            None => None,
        };
        let mut fed = 0u64; // bytes of this chunk taken from `input`
        let mut from = 0u64; // where in the chunk this attempt starts
        let mut attempt = 0u32;
        loop {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes>>(4);
            let mut headers = octet_stream();
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len - from));
            headers.insert(
                header::CONTENT_RANGE,
                header_value(&format!("{}-{}", offset + from, offset + len - 1))?,
            );
            let body = tokio_stream_from_receiver(rx);
            let patch =
                self.send_once(Method::PATCH, location.clone(), Access::Push, headers, body);
            let feed = async {
                if let Some(spool) = spool.as_mut() {
                    if !spool.replay(from, fed, &tx).await? {
                        return Ok(());
                    }
                }
                feed_exactly(input, leftover, len - fed, tx, spool.as_mut(), &mut fed).await
            };
            let (resp, fed_result) = tokio::join!(patch, feed);
            // A failing source is the caller's problem: no resume.
            fed_result?;
            let failure = match resp {
                Ok(resp) if resp.status() == StatusCode::ACCEPTED => return self.location(&resp),
                Ok(resp)
                    if resp.status().is_server_error()
                        || resp.status() == StatusCode::TOO_MANY_REQUESTS
                        || resp.status() == StatusCode::REQUEST_TIMEOUT =>
                {
                    self.error(resp, "chunk upload").await
                }
                Ok(resp) => return Err(self.error(resp, "chunk upload").await),
                Err(e) => e,
            };
            attempt += 1;
            if spool.is_none() || attempt >= MAX_ATTEMPTS {
                return Err(failure);
            }
            tokio::time::sleep(backoff(attempt - 1, None)).await;
            let (next, have) = match self.upload_status(&location).await {
                Ok(status) => status,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot learn where the interrupted upload stands");
                    return Err(failure);
                }
            };
            if have < offset || have > offset + fed {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    format!("cannot resume the upload: the registry holds {have} bytes, we hold {offset} to {}", offset + fed),
                ));
            }
            tracing::warn!(offset = have, attempt, "chunk upload interrupted; resuming");
            from = have - offset;
            location = next;
        }
    }

    /// Asks where an upload stands: its location and how many bytes the
    /// registry holds (from the `Range: 0-<last>` it reports).
    pub(super) async fn upload_status(&self, location: &Url) -> Result<(Url, u64)> {
        let resp = self
            .send(
                Method::GET,
                location.clone(),
                Access::Push,
                HeaderMap::new(),
                None,
            )
            .await?;
        if resp.status() != StatusCode::NO_CONTENT {
            return Err(self.error(resp, "upload status").await);
        }
        let have = resp
            .headers()
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|r| r.rsplit('-').next())
            .and_then(|last| last.trim().parse::<u64>().ok())
            .map_or(0, |last| last + 1);
        let next = self.location(&resp).unwrap_or_else(|_| location.clone());
        Ok((next, have))
    }

    pub(super) fn location(&self, resp: &reqwest::Response) -> Result<Url> {
        let loc = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Unavailable,
                    "the registry's upload answer has no Location",
                )
            })?;
        resp.url()
            .join(loc)
            .map_err(|e| Error::new(ErrorKind::Unavailable, format!("bad upload Location: {e}")))
    }
}

/// Headers saying the body is `application/octet-stream`.
fn octet_stream() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h
}

/// A stream over a channel's receiving end.
pub(super) fn tokio_stream_from_receiver(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes>>,
) -> impl Stream<Item = Result<Bytes>> + Send + 'static {
    async_stream::stream! {
        while let Some(item) = rx.recv().await {
            yield item;
        }
    }
}

/// Sends exactly `len` bytes from `input` (after any `leftover`) into `tx`,
/// keeping what goes past `len` in `leftover` for the next chunk, writing
/// each piece to `spool` first and counting it in `fed`.
pub(super) async fn feed_exactly<S>(
    input: &mut S,
    leftover: &mut Option<Bytes>,
    len: u64,
    tx: tokio::sync::mpsc::Sender<Result<Bytes>>,
    mut spool: Option<&mut Spool>,
    fed: &mut u64,
) -> Result<()>
where
    S: Stream<Item = Result<Bytes>> + Unpin,
{
    let mut left = len;
    while left > 0 {
        let mut piece = match leftover.take() {
            Some(p) => p,
            None => match input.next().await {
                Some(Ok(p)) => p,
                Some(Err(e)) => {
                    let _ = tx
                        .send(Err(Error::new(e.kind(), "the upload's source failed")))
                        .await;
                    return Err(e);
                }
                None => {
                    let msg = format!("the content ended {left} bytes short of its declared size");
                    let _ = tx
                        .send(Err(Error::new(ErrorKind::DataLoss, msg.clone())))
                        .await;
                    return Err(Error::new(ErrorKind::DataLoss, msg));
                }
            },
        };
        if piece.len() as u64 > left {
            *leftover = Some(piece.split_off(left as usize));
        }
        left -= piece.len() as u64;
        if let Some(spool) = spool.as_deref_mut() {
            spool.write(&piece).await?;
        }
        *fed += piece.len() as u64;
        if tx.send(Ok(piece)).await.is_err() {
            // The request gave up; its error is the one to report.
            return Ok(());
        }
    }
    Ok(())
}

/// A chunk's bytes on disk, for resending after an interrupted PATCH.
/// Removed when dropped.
pub(super) struct Spool {
    path: std::path::PathBuf,
    file: tokio::fs::File,
}

impl Spool {
    async fn create(dir: &std::path::Path) -> Result<Spool> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = dir.join(format!(
            "spool-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let file = tokio::fs::OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .await
            .map_err(|e| Error::io(format!("cannot create spool {}", path.display()), e))?;
        Ok(Spool { path, file })
    }

    async fn write(&mut self, data: &[u8]) -> Result<()> {
        use tokio::io::{AsyncSeekExt, AsyncWriteExt};
        self.file
            .seek(std::io::SeekFrom::End(0))
            .await
            .map_err(|e| Error::io("cannot seek the spool", e))?;
        self.file
            .write_all(data)
            .await
            .map_err(|e| Error::io("cannot write the spool", e))
    }

    /// Sends spooled bytes `from..to` into `tx`; `false` if the receiver
    /// went away.
    async fn replay(
        &mut self,
        from: u64,
        to: u64,
        tx: &tokio::sync::mpsc::Sender<Result<Bytes>>,
    ) -> Result<bool> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        self.file
            .seek(std::io::SeekFrom::Start(from))
            .await
            .map_err(|e| Error::io("cannot seek the spool", e))?;
        let mut left = to.saturating_sub(from);
        while left > 0 {
            let mut buf = vec![0u8; left.min(1 << 20) as usize];
            self.file
                .read_exact(&mut buf)
                .await
                .map_err(|e| Error::io("cannot read the spool", e))?;
            left -= buf.len() as u64;
            if tx.send(Ok(Bytes::from(buf))).await.is_err() {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

//! The content store's own calls, as containerd's content service has
//! them: resumable uploads under a caller-chosen ref, visible only once
//! their digest is checked, and ranged downloads that fetch a missing blob
//! from a registry or layout first.

use bytes::Bytes;
use futures::{Stream, StreamExt};
use satchel_oci::digest;
use satchel_oci::manifest::Descriptor;
use satchel_oci::{ByteStream, Error, ErrorKind, Result};
use tokio::sync::mpsc;

use super::target::TargetSpec;
use super::{invalid, Service};

/// One message of an upload.
#[derive(Debug, Clone, Default)]
pub struct UploadPart {
    /// The upload's ref; empty after the first means the same.
    pub r#ref: String,
    /// Where `data` starts: where the upload stands.
    pub offset: u64,
    /// The bytes.
    pub data: Bytes,
    /// Commit after writing `data`.
    pub commit: bool,
    /// With `commit`: the digest the blob must have ("" for any).
    pub expected_digest: String,
    /// With `commit`: the size the blob must have, if known.
    pub expected_size: Option<u64>,
}

/// The answer to an upload message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadAck {
    /// The upload's ref.
    pub r#ref: String,
    /// How far the upload has been written.
    pub offset: u64,
    /// The committed blob's digest, once committed.
    pub digest: Option<String>,
}

/// A download from the content store.
#[derive(Debug, Clone, Default)]
pub struct DownloadSpec {
    /// The blob's digest.
    pub digest: String,
    /// Its size; 0 when unknown (the store's copy tells).
    pub size: u64,
    /// Where the range starts.
    pub offset: u64,
    /// How many bytes; 0 for the rest.
    pub length: u64,
    /// Where to fetch the blob from when the store lacks it.
    pub source: Option<TargetSpec>,
}

impl Service {
    /// Writes an upload's parts into the store, answering each on `acks`
    /// with the offset written up to; commits when a part asks. The upload
    /// stays for resuming if the caller goes away.
    pub async fn upload<S>(
        &self,
        mut parts: S,
        acks: &mpsc::Sender<Result<UploadAck>>,
    ) -> Result<()>
    where
        S: Stream<Item = Result<UploadPart>> + Send + Unpin,
    {
        let store = self.store()?;
        let first = parts
            .next()
            .await
            .ok_or_else(|| invalid("an upload needs at least one message"))??;
        let reference = first.r#ref.clone();
        let mut upload = store.open_upload(&reference).await?;
        let mut part = Some(first);
        while let Some(p) = part.take() {
            if p.r#ref != reference && !p.r#ref.is_empty() {
                return Err(invalid("every message of an upload names the same ref"));
            }
            if !p.data.is_empty() || p.offset != upload.offset() {
                upload.write(p.offset, &p.data).await?;
            }
            if p.commit {
                let expected = match p.expected_digest.as_str() {
                    "" => None,
                    d => Some(digest::parse(d)?),
                };
                let (digest, size) = store
                    .commit_upload(upload, expected.as_ref(), p.expected_size)
                    .await?;
                tracing::info!(%reference, %digest, size, "upload committed");
                let ack = UploadAck {
                    r#ref: reference,
                    offset: size,
                    digest: Some(digest.to_string()),
                };
                let _ = acks.send(Ok(ack)).await;
                return Ok(());
            }
            let ack = UploadAck {
                r#ref: reference.clone(),
                offset: upload.offset(),
                digest: None,
            };
            if acks.send(Ok(ack)).await.is_err() {
                return Ok(()); // the caller went away; the upload stays for resuming
            }
            part = parts.next().await.transpose()?;
        }
        Ok(())
    }

    /// How far the upload under `reference` has come; `None` when there is
    /// none.
    pub async fn upload_offset(&self, reference: &str) -> Result<Option<u64>> {
        Ok(self.store()?.upload_offset(reference).await)
    }

    /// The bytes of a blob's range, from the store; fetched into the store
    /// first from the spec's source when it lacks the blob.
    pub async fn download(&self, spec: DownloadSpec) -> Result<ByteStream> {
        let store = self.store()?;
        let mut desc = Descriptor {
            media_type: "application/octet-stream".into(),
            digest: digest::parse(&spec.digest)?,
            size: spec.size,
            artifact_type: None,
            annotations: Default::default(),
        };
        if desc.size == 0 {
            desc.size = store.size_of(&desc.digest).unwrap_or(0);
        }
        if let Some(body) = store.read_range(&desc, spec.offset, spec.length).await {
            return Ok(body);
        }
        let Some(source) = spec.source else {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "{} is not in the content store; name a source to fetch it from",
                    desc.digest
                ),
            ));
        };
        if spec.size == 0 {
            return Err(invalid("give the blob's size with a source"));
        }
        let target = self.target(source)?.target;
        // Fetch the whole blob through the store, then serve the range.
        let mut whole = store.fetch_through(&desc, target.fetch_blob(&desc)).await?;
        while let Some(chunk) = whole.next().await {
            chunk?;
        }
        store
            .read_range(&desc, spec.offset, spec.length)
            .await
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Unavailable,
                    "the blob left the content store at once; retry",
                )
            })
    }
}

//! [`Target`]: one interface over a registry repository and a local OCI
//! image layout, so every operation works against either.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;

pub use crate::digest::Expected;
use crate::digest::{Digest, Hasher, Verifier};
use crate::error::{Error, ErrorKind, Result};
use crate::layout::OciLayout;
use crate::manifest::{referrer_descriptor, Descriptor, Manifest};
use crate::registry::{Repository, UploadSession};
use crate::ByteStream;

/// Where manifests and blobs live.
#[derive(Clone, Debug)]
pub enum Target {
    /// A repository on a registry.
    Registry(Repository),
    /// An OCI image layout directory.
    Layout(OciLayout),
}

/// A blob [`Target::check_blob`] found absent, with the registry upload
/// session opened for it.
#[derive(Debug)]
pub struct Absent(Option<UploadSession>);

/// What pushing a manifest did.
#[derive(Debug, Clone)]
pub struct PushedManifest {
    /// The manifest's descriptor.
    pub descriptor: Descriptor,
    /// Things that went wrong without failing the push (an old referrers
    /// index that could not be deleted).
    pub warnings: Vec<String>,
}

impl Target {
    /// How to name `digest` in this target: `registry/repo@digest`, or
    /// `DIR@digest` for a layout.
    pub fn reference_for(&self, digest: &Digest) -> String {
        match self {
            Target::Registry(repo) => repo.reference().with_digest(digest).to_string(),
            Target::Layout(layout) => format!("{}@{digest}", layout.root().display()),
        }
    }

    /// Resolves a tag or digest to a manifest descriptor.
    pub async fn resolve(&self, reference: &str) -> Result<Descriptor> {
        match self {
            Target::Registry(repo) => repo.resolve(reference).await,
            Target::Layout(layout) => layout.resolve(reference).await,
        }
    }

    /// Fetches a manifest by tag or digest.
    pub async fn fetch_manifest(&self, reference: &str) -> Result<(Descriptor, Bytes)> {
        match self {
            Target::Registry(repo) => repo.fetch_manifest(reference).await,
            Target::Layout(layout) => layout.fetch_manifest(reference).await,
        }
    }

    /// Whether the blob is already there.
    pub async fn blob_exists(&self, digest: &Digest) -> Result<bool> {
        match self {
            Target::Registry(repo) => repo.blob_exists(digest).await,
            Target::Layout(layout) => layout.blob_exists(digest).await,
        }
    }

    /// The blob's size (0 when a registry does not say); `None` when the
    /// target lacks it.
    pub async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>> {
        match self {
            Target::Registry(repo) => repo.blob_size(digest).await,
            Target::Layout(layout) => layout.blob_size(digest).await,
        }
    }

    /// Deletes a blob.
    pub async fn delete_blob(&self, digest: &Digest) -> Result<()> {
        match self {
            Target::Registry(repo) => repo.delete_blob(digest).await,
            Target::Layout(layout) => layout.delete_blob(digest).await,
        }
    }

    /// Uploads a blob from a stream. The bytes must match what `expected`
    /// gives (a registry checks a given digest itself; everything else is
    /// checked here); a digest not given is computed. Either way the blob is
    /// committed only once its digest is checked.
    pub async fn push_blob(
        &self,
        expected: Expected<'_>,
        body: ByteStream,
    ) -> Result<(Digest, u64)> {
        self.push_blob_in(None, expected, body).await
    }

    /// Like [`Target::push_blob`], for a blob [`Target::check_blob`] found
    /// absent: into the upload session opened alongside that check.
    pub async fn push_absent(
        &self,
        absent: Absent,
        expected: Expected<'_>,
        body: ByteStream,
    ) -> Result<(Digest, u64)> {
        self.push_blob_in(absent.0, expected, body).await
    }

    async fn push_blob_in(
        &self,
        session: Option<UploadSession>,
        expected: Expected<'_>,
        body: ByteStream,
    ) -> Result<(Digest, u64)> {
        match self {
            Target::Layout(layout) => {
                let (digest, size) = layout.push_blob(expected.digest, body).await?;
                if let Some(want) = expected.size {
                    if size != want {
                        return Err(Error::new(
                            ErrorKind::DataLoss,
                            format!("{digest} has {size} bytes, expected {want}"),
                        ));
                    }
                }
                Ok((digest, size))
            }
            // The registry checks the digest it is given before it commits
            // a blob (a mismatch is DIGEST_INVALID), so hashing here too
            // would only take CPU from the registry on the same machine.
            Target::Registry(repo) if expected.digest.is_some() && expected.size.is_some() => {
                let digest = expected.digest.expect("matched").clone();
                let size = expected.size.expect("matched");
                repo.push_blob(session, expected, body, || Ok(digest.clone()))
                    .await?;
                Ok((digest, size))
            }
            Target::Registry(repo) => {
                let state = Arc::new(Mutex::new(HashState::new(expected)?));
                let hashed = hashing(body, state.clone());
                let digest_of = {
                    let state = state.clone();
                    move || state.lock().expect("hash state").digest()
                };
                repo.push_blob(session, expected, hashed, digest_of).await?;
                let mut state = state.lock().expect("hash state");
                let digest = state.digest()?;
                if let Some(want) = expected.size {
                    if state.size != want {
                        return Err(Error::new(
                            ErrorKind::DataLoss,
                            format!("{digest} has {} bytes, expected {want}", state.size),
                        ));
                    }
                }
                Ok((digest, state.size))
            }
        }
    }

    /// Makes the blob present without uploading it, by a cross-repository
    /// mount where the registry and what we know allow; says whether it did.
    pub async fn try_mount(&self, digest: &Digest) -> Result<bool> {
        match self {
            Target::Registry(repo) => repo.try_mount(digest).await,
            Target::Layout(_) => Ok(false),
        }
    }

    /// Makes the blob present by a cross-repository mount from `source`,
    /// when both are repositories of one registry reached over one scheme;
    /// says whether it did (a refused mount is not an error).
    pub async fn mount_from(&self, digest: &Digest, source: &Target) -> Result<bool> {
        match (self, source) {
            (Target::Registry(to), Target::Registry(from)) => to.mount_from(digest, from).await,
            _ => Ok(false),
        }
    }

    /// Whether the blob is there already, or could be mounted from another
    /// repository.
    pub async fn has_or_mounts(&self, digest: &Digest) -> Result<bool> {
        Ok(self.blob_exists(digest).await? || self.try_mount(digest).await?)
    }

    /// Whether the blob is there already (or was mounted from another
    /// repository): `None`; else what [`Target::push_absent`] needs. On a
    /// registry the upload session is opened alongside the existence check,
    /// so the two cost one round trip.
    pub async fn check_blob(&self, digest: &Digest) -> Result<Option<Absent>> {
        match self {
            Target::Registry(repo) => Ok(repo.check_blob(digest).await?.map(|s| Absent(Some(s)))),
            Target::Layout(layout) => {
                Ok((!layout.blob_exists(digest).await?).then_some(Absent(None)))
            }
        }
    }

    /// Serialises uploads of `digest` within this process (registries
    /// only; a layout's renames are atomic already). Hold the guard across
    /// [`Target::blob_exists`] and [`Target::push_blob`].
    pub async fn lock_blob(&self, digest: &Digest) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match self {
            Target::Registry(repo) => Some(repo.lock_blob(digest).await),
            Target::Layout(_) => None,
        }
    }

    /// Stores a small blob of `media_type` unless it is already there.
    pub async fn push_bytes(&self, media_type: &str, data: Bytes) -> Result<Descriptor> {
        let desc = Descriptor::for_bytes(media_type, &data);
        let _guard = self.lock_blob(&desc.digest).await;
        if !self.has_or_mounts(&desc.digest).await? {
            let size = desc.size;
            self.push_blob(
                Expected::exactly(&desc.digest, size),
                futures::stream::iter([Ok(data)]).boxed(),
            )
            .await?;
        }
        Ok(desc)
    }

    /// Streams a blob, checking size and digest on the way: the stream ends
    /// with an error instead of its last `None` if they do not match.
    pub async fn fetch_blob(&self, desc: &Descriptor) -> Result<ByteStream> {
        let raw = match self {
            Target::Registry(repo) => repo.fetch_blob(&desc.digest).await?,
            Target::Layout(layout) => layout.fetch_blob(&desc.digest).await?,
        };
        Ok(crate::digest::verify_stream(
            raw,
            Verifier::new(&desc.digest, Some(desc.size))?,
        ))
    }

    /// Pushes a manifest, tagged with `tag` if given. When the manifest has
    /// a subject and the registry has no referrers API, the subject's
    /// referrers tag-schema index is updated too.
    pub async fn push_manifest(
        &self,
        tag: Option<&str>,
        media_type: &str,
        content: Bytes,
    ) -> Result<PushedManifest> {
        let manifest = Manifest::parse(media_type, &content)?;
        let mut warnings = Vec::new();
        let descriptor = match self {
            Target::Layout(layout) => layout.push_manifest(tag, media_type, content).await?,
            Target::Registry(repo) => {
                let digest = crate::digest::sha256(&content);
                let reference = tag.map_or_else(|| digest.to_string(), str::to_string);
                if let Some(subject) = manifest.subject().filter(|_| repo.known_tag_schema()) {
                    // The index is read while the manifest goes up.
                    let entry =
                        referrer_descriptor(Descriptor::for_bytes(media_type, &content), &manifest);
                    repo.forget_referrers(&subject.digest);
                    let (desc, more) = repo
                        .push_with_fallback(&reference, media_type, content, &subject.digest, entry)
                        .await?;
                    warnings.extend(more);
                    return Ok(PushedManifest {
                        descriptor: desc,
                        warnings,
                    });
                }
                let (desc, indexed) = repo.push_manifest(&reference, media_type, content).await?;
                if let Some(subject) = manifest.subject() {
                    repo.forget_referrers(&subject.digest);
                    if repo.needs_fallback(&subject.digest, indexed).await? {
                        let entry = referrer_descriptor(desc.clone(), &manifest);
                        let updated = repo
                            .update_fallback(&subject.digest, Some(entry), None)
                            .await;
                        repo.forget_referrers(&subject.digest);
                        warnings.extend(updated?);
                    }
                }
                desc
            }
        };
        Ok(PushedManifest {
            descriptor,
            warnings,
        })
    }

    /// The target's tags: the registry's listing in its order, or a
    /// layout's sorted.
    pub async fn tags(&self) -> Result<Vec<String>> {
        match self {
            Target::Registry(repo) => repo.tags().await,
            Target::Layout(layout) => layout.tags().await,
        }
    }

    /// The tags after `last`: as the registry lists them, or a layout's
    /// sorted tags lexically after it.
    pub async fn tags_after(&self, last: &str) -> Result<Vec<String>> {
        match self {
            Target::Registry(repo) => repo.tags_after(last).await,
            Target::Layout(layout) => {
                let mut tags = layout.tags().await?;
                tags.retain(|t| t.as_str() > last);
                Ok(tags)
            }
        }
    }

    /// Adds a tag to an existing manifest.
    pub async fn tag(&self, desc: &Descriptor, content: Bytes, tag: &str) -> Result<()> {
        match self {
            Target::Layout(layout) => layout.tag(desc, tag).await,
            Target::Registry(repo) => repo
                .push_manifest(tag, &desc.media_type, content)
                .await
                .map(|_| ()),
        }
    }

    /// Deletes the manifest `reference` names (a tag is resolved first) and
    /// takes it out of its subject's referrers tag-schema index where one is
    /// kept. Returns what was deleted and any warnings.
    pub async fn delete_manifest(&self, reference: &str) -> Result<PushedManifest> {
        let (desc, content) = self.fetch_manifest(reference).await?;
        let subject = Manifest::parse(&desc.media_type, &content)
            .ok()
            .and_then(|m| m.subject().cloned());
        let mut warnings = Vec::new();
        match self {
            Target::Layout(layout) => layout.delete_manifest(&desc.digest).await?,
            Target::Registry(repo) => {
                repo.delete_manifest(&desc.digest).await?;
                if let Some(subject) = subject {
                    repo.forget_referrers(&subject.digest);
                    if repo.needs_fallback(&subject.digest, false).await? {
                        let updated = repo
                            .update_fallback(&subject.digest, None, Some(&desc.digest))
                            .await;
                        repo.forget_referrers(&subject.digest);
                        warnings.extend(updated?);
                    }
                }
            }
        }
        Ok(PushedManifest {
            descriptor: desc,
            warnings,
        })
    }

    /// The tags of the referrers tag schema in the target, in one listing,
    /// when its referrers are known to live there (`None` otherwise: ask
    /// [`Self::referrers`] per subject). For a walk over many subjects: a
    /// subject whose `sha256-<hex>` tag is missing has no referrers.
    pub async fn referrers_tags(&self) -> Result<Option<std::collections::HashSet<String>>> {
        match self {
            Target::Registry(repo) => repo.referrers_tags().await,
            Target::Layout(_) => Ok(None),
        }
    }

    /// The referrers of `subject` as the registry lists them now, whatever
    /// the cache holds, unless it says they are still the version
    /// `validator` names (an ETag a poll returned): for a poller watching
    /// them.
    pub async fn poll_referrers(
        &self,
        subject: &Digest,
        validator: Option<&str>,
    ) -> Result<crate::registry::Polled> {
        match self {
            Target::Registry(repo) => repo.poll_referrers(subject, validator).await,
            Target::Layout(layout) => Ok(crate::registry::Polled::Listed {
                referrers: layout.referrers(subject).await?,
                validator: None,
            }),
        }
    }

    /// The referrers of `subject`, optionally only those of `artifact_type`.
    pub async fn referrers(
        &self,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        let mut list = match self {
            Target::Registry(repo) => repo.referrers(subject, artifact_type).await?,
            Target::Layout(layout) => layout.referrers(subject).await?,
        };
        if let Some(t) = artifact_type {
            list.retain(|d| d.artifact_type.as_deref() == Some(t));
        }
        Ok(list)
    }
}

/// Hash state shared between an upload's body stream and the code that
/// waits for the upload to finish.
struct HashState {
    hasher: Option<Hasher>,
    verifier: Option<Verifier>,
    size: u64,
    done: Option<Digest>,
}

impl HashState {
    fn new(expected: Expected<'_>) -> Result<Self> {
        Ok(match expected.digest {
            Some(d) => HashState {
                hasher: None,
                verifier: Some(Verifier::new(d, expected.size)?),
                size: 0,
                done: None,
            },
            None => HashState {
                hasher: Some(Hasher::sha256()),
                verifier: None,
                size: 0,
                done: None,
            },
        })
    }

    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.size += data.len() as u64;
        if let Some(v) = &mut self.verifier {
            v.update(data)?;
        }
        if let Some(h) = &mut self.hasher {
            h.update(data);
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        if let Some(v) = self.verifier.take() {
            self.done = Some(v.finish()?);
        }
        if let Some(h) = self.hasher.take() {
            self.done = Some(h.finish());
        }
        Ok(())
    }

    /// The digest of the whole body. An HTTP client that sent
    /// Content-Length bytes may never poll the body to its end, so finish
    /// here if the stream did not.
    fn digest(&mut self) -> Result<Digest> {
        if self.done.is_none() {
            self.finish()?;
        }
        self.done
            .clone()
            .ok_or_else(|| Error::new(ErrorKind::Internal, "an upload's digest was never computed"))
    }
}

fn hashing(body: ByteStream, state: Arc<Mutex<HashState>>) -> ByteStream {
    async_stream::try_stream! {
        let mut body = body;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            let updated = state.lock().expect("hash state").update(&chunk);
            updated?;
            yield chunk;
        }
        let finished = state.lock().expect("hash state").finish();
        finished?;
    }
    .boxed()
}

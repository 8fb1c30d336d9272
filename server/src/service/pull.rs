//! The plan of a pull — which manifest, which of its layers become files
//! under which titles — and each file's bytes, verified on the way (through
//! the content store when the target is a registry). Files go to the
//! caller one after another; the blobs after the first are fetched into
//! the store meanwhile.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use satchel_oci::artifact::select_newest;
use satchel_oci::content::ContentStore;
use satchel_oci::manifest::{self, Descriptor, ImageManifest, Manifest};
use satchel_oci::{ByteStream, Error, ErrorKind, Result, Target};

use super::deliver;
use super::target::TargetSpec;
use super::verify::{self, KeySet, Signature};
use super::{invalid, Service};

/// What a pull names.
#[derive(Debug, Clone)]
pub enum PullSpec {
    /// The artifact a target names (`latest` when it names no tag).
    Target(TargetSpec),
    /// The newest referrer of the subject with this artifact type.
    Newest {
        /// The subject.
        subject: TargetSpec,
        /// The artifact type to look for.
        artifact_type: String,
    },
}

/// A pull ready to send: the manifest, and the files it will write.
pub struct PullPlan {
    target: Target,
    /// Where registry blobs pass through; `None` for layouts.
    store: Option<Arc<ContentStore>>,
    /// The manifest by digest.
    pub reference: String,
    /// The manifest's descriptor.
    pub manifest: Descriptor,
    /// The manifest's bytes.
    pub content: Bytes,
    /// The titled layers, by title, in manifest order.
    pub files: Vec<(String, Descriptor)>,
    /// The signature that verified the manifest, when the caller or the
    /// policy asked for one.
    pub signature: Option<Signature>,
}

impl Service {
    /// Finds the manifest `spec` names, verifies it when `verify_keys`
    /// or the policy name keys for it, and checks every title it holds,
    /// alone and against each other, before a byte is sent; starts
    /// fetching the files after the first. Runs in the caller's scope.
    pub async fn pull(&self, spec: PullSpec, verify_keys: &[bytes::Bytes]) -> Result<PullPlan> {
        let requested = KeySet::from_pems(verify_keys)?;
        let (target, desc, content, signature) = match spec {
            PullSpec::Target(t) => {
                let resolved = self.target(t)?;
                let (desc, content) = resolved.fetch_named(&resolved.name_or_latest()).await?;
                let target = resolved.target;
                let kind = verify::artifact_type(&desc, &content);
                let needed = self.required(&requested, &target, &kind)?;
                let signature = match needed.is_empty() {
                    true => None,
                    false => Some(
                        self.verifier
                            .verify_all(&target, &desc.digest, &needed)
                            .await?
                            .into_result()?,
                    ),
                };
                (target, desc, content, signature)
            }
            PullSpec::Newest {
                subject,
                artifact_type,
            } => {
                let (target, digest, signature) =
                    self.newest(subject, &artifact_type, &requested).await?;
                let (desc, content) = target.fetch_manifest(&digest).await?;
                (target, desc, content, signature)
            }
        };
        let manifest = match Manifest::parse(&desc.media_type, &content)? {
            Manifest::Image(m) => m,
            Manifest::Index(_) => {
                return Err(Error::new(
                    ErrorKind::FailedPrecondition,
                    format!(
                        "{} is an index; pull one of its manifests by digest",
                        target.reference_for(&desc.digest)
                    ),
                ))
            }
        };
        let files = files_to_pull(&manifest)?;
        let store = match &target {
            Target::Registry(_) => self.store.clone(),
            Target::Layout(_) => None,
        };
        if let Some(store) = &store {
            prefetch(store, &target, &files, self.concurrency);
        }
        Ok(PullPlan {
            reference: target.reference_for(&desc.digest),
            target,
            store,
            manifest: desc,
            content,
            files,
            signature,
        })
    }

    /// The subject's target and the digest of its newest referrer of
    /// `artifact_type`; when keys apply (`requested`, or the policy's),
    /// of the newest that verifies, with its signature.
    async fn newest(
        &self,
        subject: TargetSpec,
        artifact_type: &str,
        requested: &KeySet,
    ) -> Result<(Target, String, Option<Signature>)> {
        if artifact_type.is_empty() {
            return Err(invalid("pulling by subject needs an artifact type"));
        }
        let resolved = self.target(subject)?;
        let subject = resolved.resolve_named(&resolved.name_or_latest()).await?;
        let target = resolved.target;
        let candidates = target
            .referrers(&subject.digest, Some(artifact_type))
            .await?;
        let what = format!(
            "{artifact_type} attachment of {}",
            target.reference_for(&subject.digest)
        );
        let needed = self.required(requested, &target, artifact_type)?;
        if !needed.is_empty() {
            let (digest, signature) = self
                .newest_verified(&target, candidates, &what, &needed)
                .await?;
            return Ok((target, digest.to_string(), Some(signature)));
        }
        let chosen = select_newest(&candidates, &what)?;
        let digest = chosen.digest.to_string();
        Ok((target, digest, None))
    }
}

impl PullPlan {
    /// The bytes of `layer`, checked against its digest as they stream
    /// (the stream fails at the end when they do not match).
    pub async fn body(&self, layer: &Descriptor) -> Result<ByteStream> {
        match &self.store {
            Some(store) => {
                store
                    .fetch_through(layer, self.target.fetch_blob(layer))
                    .await
            }
            None => self.target.fetch_blob(layer).await,
        }
    }
}

impl PullPlan {
    /// Fills `file`, a caller's empty file ([`crate::handoff`]), with the
    /// bytes of `layer`, verified: from the content store's copy when it
    /// has one, else as [`Self::body`] streams them (through the store).
    /// `progress` learns the bytes written.
    pub async fn deliver(
        &self,
        layer: &Descriptor,
        file: std::fs::File,
        progress: tokio::sync::watch::Sender<u64>,
    ) -> Result<()> {
        if let Some(store) = &self.store {
            if let Some(stored) = store.open_blob(layer).await {
                tracing::debug!(digest = %layer.digest, "local handoff: copying the stored blob");
                return deliver::copy_file(stored, file, layer.size, progress).await;
            }
        }
        tracing::debug!(digest = %layer.digest, "local handoff: writing the blob as it streams");
        let body = self.body(layer).await?;
        deliver::write_stream(body, file, progress).await
    }
}

/// The layers a pull writes, by title; refuses unsafe names, two layers
/// with one name and a name that is a directory of another, before a single
/// byte is sent.
fn files_to_pull(manifest: &ImageManifest) -> Result<Vec<(String, Descriptor)>> {
    let out: Vec<(String, Descriptor)> = manifest
        .layers
        .iter()
        .filter_map(|layer| Some((layer.title()?.to_string(), layer.clone())))
        .collect();
    manifest::validate_titles(out.iter().map(|(t, _)| t.as_str()))?;
    Ok(out)
}

/// Files go to the caller one after another, but the blobs after the first
/// can already be coming: up to `concurrency - 1` of them are fetched into
/// the content store while the first streams. A pull that reaches them
/// then reads the store (or waits for the fetch under way).
fn prefetch(
    store: &Arc<ContentStore>,
    target: &Target,
    files: &[(String, Descriptor)],
    concurrency: usize,
) {
    if concurrency < 2 {
        return;
    }
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency - 1));
    for (_, layer) in files.iter().skip(1) {
        let (store, target, layer, slots) =
            (store.clone(), target.clone(), layer.clone(), slots.clone());
        tokio::spawn(async move {
            let Ok(_slot) = slots.acquire_owned().await else {
                return;
            };
            // Errors are left for the pull itself to meet and report.
            if let Ok(mut body) = store.fetch_through(&layer, target.fetch_blob(&layer)).await {
                while let Some(Ok(_)) = body.next().await {}
            }
        });
    }
}

//! Signatures checked: a manifest's cosign signatures (Sigstore bundles
//! among its referrers, and the older `sha256-<hex>.sig` tag) against a set
//! of keys, with the verdicts cached and concurrent checks of one manifest
//! shared.
//!
//! Invariants:
//! - A verdict is keyed by the manifest (`registry/repo@digest`) and the
//!   fingerprint of the exact key set, so a cached success can only answer
//!   a question about those bytes and those keys; a policy or key change
//!   gives another key set (and clears the cache besides).
//! - Only verdicts are cached. A registry that fails while signatures are
//!   read fails the call and leaves nothing behind.
//! - Successes are kept [`VERIFIED_TTL`], refusals [`REFUSED_TTL`]: a
//!   signature pushed after a refusal counts soon; one deleted after a
//!   success can keep counting for up to the longer time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use satchel_oci::digest::Digest;
use satchel_oci::manifest::{Descriptor, Manifest};
use satchel_oci::{Error, ErrorKind, Result, Target};
use satchel_verify::{bundle, simple, PublicKey, Refusal, BUNDLE_V03, SIMPLE_SIGNING};
use sha2::{Digest as _, Sha256};
use tokio::sync::OnceCell;

use crate::policy::PolicySource;

satchel_oci::metric!(VERIFICATIONS: prometheus::IntCounterVec = prometheus::register_int_counter_vec!(
    "satchel_verifications_total",
    "Signature checks run (verdicts not taken from the cache), by outcome.",
    &["outcome"]
));
satchel_oci::metric!(VERIFICATIONS_SHARED: prometheus::IntCounter = prometheus::register_int_counter!(
    "satchel_verifications_shared_total",
    "Verifications answered without a check of their own: from the verdict cache, or by waiting on the same check in flight."
));

/// How long a success is believed.
pub const VERIFIED_TTL: Duration = Duration::from_secs(300);
/// How long a refusal is believed.
pub const REFUSED_TTL: Duration = Duration::from_secs(15);
/// The largest signature blob read; cosign's are a few KiB.
const MAX_SIGNATURE_BYTES: u64 = 1 << 20;
/// How many bundle referrers of one manifest are looked at.
const MAX_SIGNATURES: usize = 32;
/// How many layers of one signature manifest are looked at (cosign writes
/// one per signature).
const MAX_LAYERS: usize = 8;
/// How many candidates a verified pull by subject checks, newest first.
const MAX_CANDIDATES: usize = 32;
/// How many verdicts are kept before the stale ones are swept.
const SWEEP_ABOVE: usize = 4096;

/// The keys a manifest must be signed by, and their joint fingerprint.
#[derive(Debug, Clone)]
pub struct KeySet {
    keys: Vec<PublicKey>,
    fingerprint: String,
}

impl KeySet {
    /// A set of `keys` (in any order; duplicates count once).
    pub fn new(mut keys: Vec<PublicKey>) -> KeySet {
        keys.sort_by(|a, b| a.fingerprint().cmp(b.fingerprint()));
        keys.dedup();
        let mut hash = Sha256::new();
        for key in &keys {
            hash.update(key.fingerprint().as_bytes());
            hash.update(b"\n");
        }
        KeySet {
            keys,
            fingerprint: hex::encode(hash.finalize()),
        }
    }

    /// Reads PEM keys a caller sent; INVALID_ARGUMENT names the bad one.
    pub fn from_pems(pems: &[bytes::Bytes]) -> Result<KeySet> {
        let keys = pems
            .iter()
            .enumerate()
            .map(|(i, pem)| {
                PublicKey::from_pem(pem).map_err(|e| {
                    Error::new(ErrorKind::InvalidArgument, format!("key {}: {e}", i + 1))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(KeySet::new(keys))
    }

    /// Whether the set has no key (nothing to verify against).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The signature that verified a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The digest of the signature's manifest (the bundle's referrer, or
    /// the manifest the `.sig` tag names).
    pub digest: String,
    /// `sigstore-bundle-v0.3` or `cosign-simple-signing`.
    pub form: &'static str,
    /// `sha256:<hex>` of the key's SubjectPublicKeyInfo.
    pub key_fingerprint: String,
    /// The signed statement's predicate type.
    pub predicate_type: String,
}

/// What checking a manifest's signatures concluded.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// One signature verified.
    Signed(Signature),
    /// None did; `permission` when one was signed but not acceptably
    /// (PERMISSION_DENIED), otherwise FAILED_PRECONDITION.
    Refused {
        /// Whether to answer PERMISSION_DENIED.
        permission: bool,
        /// What was tried and why each failed.
        message: String,
    },
}

impl Verdict {
    /// The verdict as a call's result.
    pub fn into_result(self) -> Result<Signature> {
        match self {
            Verdict::Signed(s) => Ok(s),
            Verdict::Refused {
                permission,
                message,
            } => Err(Error::new(
                if permission {
                    ErrorKind::PermissionDenied
                } else {
                    ErrorKind::FailedPrecondition
                },
                message,
            )),
        }
    }
}

type Cell = Arc<OnceCell<(Instant, Verdict)>>;

/// Checks signatures, caching verdicts and sharing checks in flight.
pub struct Verifier {
    /// The trust policy (read again when its files change).
    pub policy: PolicySource,
    /// Verdicts by (manifest, key set); a cell not yet set is a check in
    /// flight that later callers wait on.
    verdicts: Mutex<HashMap<(String, String), Cell>>,
    /// The policy fingerprint the verdicts were reached under.
    policy_seen: Mutex<String>,
}

impl Verifier {
    /// A verifier with the policy of `policy`.
    pub fn new(policy: PolicySource) -> Verifier {
        Verifier {
            policy,
            verdicts: Mutex::default(),
            policy_seen: Mutex::default(),
        }
    }

    /// The keys the policy trusts for a manifest of `artifact_type` in
    /// `target`; empty when no rule applies.
    pub fn policy_keys(&self, target: &Target, artifact_type: &str) -> Result<KeySet> {
        let policy = self.policy.current()?;
        {
            let mut seen = self.policy_seen.lock().expect("verifier lock");
            if *seen != policy.fingerprint() {
                self.verdicts.lock().expect("verifier lock").clear();
                *seen = policy.fingerprint().to_string();
            }
        }
        Ok(KeySet::new(
            policy.keys_for(&scope_of(target), artifact_type),
        ))
    }

    /// Whether `digest` in `target` is signed by one of `keys`: answered
    /// from the cache, by a check in flight, or by a check of its own.
    pub async fn verify(&self, target: &Target, digest: &Digest, keys: &KeySet) -> Result<Verdict> {
        if keys.is_empty() {
            return Err(Error::new(
                ErrorKind::FailedPrecondition,
                "no key to verify against: give one, or name trusted keys in the daemon's policy",
            ));
        }
        let cell = self.cell(target.reference_for(digest), keys);
        let (_, verdict) = cell
            .get_or_try_init(|| async {
                let verdict = check(target, digest, keys).await?;
                let outcome = match verdict {
                    Verdict::Signed(_) => "verified",
                    Verdict::Refused { .. } => "refused",
                };
                VERIFICATIONS.with_label_values(&[outcome]).inc();
                Ok::<_, Error>((Instant::now(), verdict))
            })
            .await?;
        Ok(verdict.clone())
    }

    /// The cell for (`manifest`, `keys`): the cached one while it is fresh
    /// or still being filled, a new one otherwise.
    fn cell(&self, manifest: String, keys: &KeySet) -> Cell {
        let mut verdicts = self.verdicts.lock().expect("verifier lock");
        if verdicts.len() > SWEEP_ABOVE {
            // Kept: checks in flight (someone holds the cell) and fresh
            // verdicts; a cell whose check failed is empty and unheld.
            let held = |cell: &Cell| Arc::strong_count(cell) > 1;
            verdicts.retain(|_, cell| held(cell) || (cell.initialized() && !stale(cell)));
            if verdicts.len() > SWEEP_ABOVE {
                // Many fresh ones (callers choose key sets): start again.
                verdicts.retain(|_, cell| held(cell));
            }
        }
        let key = (manifest, keys.fingerprint.clone());
        let fresh = !verdicts.contains_key(&key);
        let cell = verdicts.entry(key).or_default();
        if stale(cell) {
            *cell = Cell::default();
        } else if !fresh {
            VERIFICATIONS_SHARED.inc();
        }
        cell.clone()
    }
}

/// Whether a cell holds a verdict past its time.
fn stale(cell: &Cell) -> bool {
    match cell.get() {
        None => false,
        Some((at, Verdict::Signed(_))) => at.elapsed() > VERIFIED_TTL,
        Some((at, Verdict::Refused { .. })) => at.elapsed() > REFUSED_TTL,
    }
}

/// What a policy scope is matched against: `registry/repository`, or a
/// layout's directory.
fn scope_of(target: &Target) -> String {
    match target {
        Target::Registry(repo) => {
            let r = repo.reference();
            format!("{}/{}", r.registry(), r.repository())
        }
        Target::Layout(layout) => layout.root().display().to_string(),
    }
}

/// Reads the signatures of `digest` (at most [`MAX_SIGNATURES`] bundle
/// referrers, then the `.sig` tag) and checks each against `keys`, layer
/// by layer, stopping at the first that verifies.
async fn check(target: &Target, digest: &Digest, keys: &KeySet) -> Result<Verdict> {
    let expected = digest.to_string();
    let mut refused: Vec<(String, Refusal)> = Vec::new();
    let bundles = target.referrers(digest, Some(BUNDLE_V03)).await?;
    for referrer in bundles.iter().take(MAX_SIGNATURES) {
        let sig = referrer.digest.to_string();
        let verified = each_layer(
            target,
            &referrer.digest,
            BUNDLE_V03,
            &mut refused,
            |_, bytes| bundle::verify(bytes, &expected, &keys.keys),
        );
        if let Some(v) = verified.await? {
            return Ok(signed(sig, "sigstore-bundle-v0.3", v));
        }
    }
    let tag = simple::signature_tag(&expected);
    match target.resolve(&tag).await {
        Ok(sig_manifest) => {
            let sig = sig_manifest.digest.to_string();
            let verified = each_layer(
                target,
                &sig_manifest.digest,
                SIMPLE_SIGNING,
                &mut refused,
                |layer, bytes| {
                    let annotation = layer
                        .annotations
                        .get(satchel_verify::SIMPLE_SIGNATURE_ANNOTATION)
                        .ok_or_else(|| {
                            Refusal::Malformed("a layer without its signature annotation".into())
                        })?;
                    simple::verify(bytes, annotation, &expected, &keys.keys)
                },
            );
            if let Some(v) = verified.await? {
                return Ok(signed(sig, "cosign-simple-signing", v));
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let reference = target.reference_for(digest);
    if refused.is_empty() {
        return Ok(Verdict::Refused {
            permission: false,
            message: format!(
                "{reference} is not signed: no {BUNDLE_V03} referrer and no {tag} tag"
            ),
        });
    }
    let permission = refused.iter().any(|(_, r)| r.is_permission());
    refused.sort_by_key(|(_, r)| std::cmp::Reverse(r.rank()));
    let tried = refused
        .iter()
        .map(|(sig, r)| format!("{sig}: {r}"))
        .collect::<Vec<_>>()
        .join("; ");
    Ok(Verdict::Refused {
        permission,
        message: format!("no signature of {reference} verifies: {tried}"),
    })
}

fn signed(digest: String, form: &'static str, v: satchel_verify::Verified) -> Verdict {
    Verdict::Signed(Signature {
        digest,
        form,
        key_fingerprint: v.key_fingerprint,
        predicate_type: v.predicate_type,
    })
}

/// Checks the layers of media type `media_type` of the signature manifest
/// `digest` with `verify` as each arrives (at most [`MAX_LAYERS`], each at
/// most [`MAX_SIGNATURE_BYTES`], checked against its digest): the first
/// verdict that verifies, or `None` with a refusal per layer (and one for
/// a manifest that cannot be read or holds no such layer) in `refused`.
/// Only a registry that cannot be reached fails the call.
async fn each_layer(
    target: &Target,
    digest: &Digest,
    media_type: &str,
    refused: &mut Vec<(String, Refusal)>,
    verify: impl Fn(&Descriptor, &[u8]) -> std::result::Result<satchel_verify::Verified, Refusal>,
) -> Result<Option<satchel_verify::Verified>> {
    let sig = digest.to_string();
    let unreadable = |e: Error| match e.kind() {
        ErrorKind::Unavailable | ErrorKind::Unauthenticated | ErrorKind::Internal => Err(e),
        _ => Ok(Refusal::Malformed(format!("cannot be read: {e}"))),
    };
    let manifest = match target.fetch_manifest(digest.as_ref()).await {
        Ok((desc, content)) => Manifest::parse(&desc.media_type, &content).ok(),
        Err(e) => {
            refused.push((sig, unreadable(e)?));
            return Ok(None);
        }
    };
    let Some(Manifest::Image(manifest)) = manifest else {
        refused.push((sig, Refusal::Malformed("not an image manifest".into())));
        return Ok(None);
    };
    let layers: Vec<Descriptor> = manifest
        .layers
        .into_iter()
        .filter(|l| l.media_type == media_type)
        .take(MAX_LAYERS)
        .collect();
    if layers.is_empty() {
        refused.push((
            sig.clone(),
            Refusal::Malformed(format!("no {media_type} layer")),
        ));
    }
    for layer in layers {
        if layer.size > MAX_SIGNATURE_BYTES {
            let too_big = format!("a {} byte layer is no signature", layer.size);
            refused.push((sig.clone(), Refusal::Malformed(too_big)));
            continue;
        }
        let bytes = match target.fetch_blob(&layer).await {
            Ok(body) => body.map_ok(|c| c.to_vec()).try_concat().await,
            Err(e) => Err(e),
        };
        let verdict = match bytes {
            Ok(bytes) => verify(&layer, &bytes),
            Err(e) => Err(unreadable(e)?),
        };
        match verdict {
            Ok(v) => return Ok(Some(v)),
            Err(r) => refused.push((sig.clone(), r)),
        }
    }
    Ok(None)
}

/// The key sets a served manifest must verify under: the policy's for it,
/// and the caller's, each when not empty. A caller's keys add to what the
/// policy asks, never replace it: a caller cannot make an artifact the
/// policy covers pass with a key of its own.
#[derive(Debug, Clone, Default)]
pub struct Requirement {
    sets: Vec<KeySet>,
}

impl Requirement {
    /// Whether nothing is asked (no policy rule, no caller keys).
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }
}

impl Verifier {
    /// Whether `digest` in `target` verifies under every set of `needed`:
    /// the first refusal, or the signature that verified it under the last
    /// set (the caller's, when it gave keys).
    pub async fn verify_all(
        &self,
        target: &Target,
        digest: &Digest,
        needed: &Requirement,
    ) -> Result<Verdict> {
        let mut last = None;
        for keys in &needed.sets {
            match self.verify(target, digest, keys).await? {
                Verdict::Signed(s) => last = Some(Verdict::Signed(s)),
                refused => return Ok(refused),
            }
        }
        last.ok_or_else(|| Error::new(ErrorKind::Internal, "nothing to verify against"))
    }
}

/// A manifest that verified, and by what.
#[derive(Debug, Clone)]
pub struct VerifiedManifest {
    /// The manifest by digest.
    pub reference: String,
    /// Its descriptor.
    pub descriptor: Descriptor,
    /// The signature that verified it.
    pub signature: Signature,
}

impl super::Service {
    /// Checks that the manifest `spec` names is signed by one of `pems`,
    /// or, when none are given, by a key the policy trusts for it. (A
    /// question about keys; nothing is served, so the caller's keys alone
    /// answer it.)
    pub async fn verify(
        &self,
        spec: super::target::TargetSpec,
        pems: &[bytes::Bytes],
    ) -> Result<VerifiedManifest> {
        let requested = KeySet::from_pems(pems)?;
        let (target, named) = self.resolve_in(spec).await?;
        let keys = match requested.is_empty() {
            false => requested,
            true => {
                let digest = named.descriptor.digest.as_ref();
                let (desc, content) = target.fetch_manifest(digest).await?;
                self.verifier
                    .policy_keys(&target, &artifact_type(&desc, &content))?
            }
        };
        let verdict = self
            .verifier
            .verify(&target, &named.descriptor.digest, &keys)
            .await?;
        Ok(VerifiedManifest {
            reference: named.reference,
            descriptor: named.descriptor,
            signature: verdict.into_result()?,
        })
    }

    /// What a manifest of `artifact_type` in `target` must be signed by to
    /// be served: the policy's keys for it and the caller's `requested`.
    pub(super) fn required(
        &self,
        requested: &KeySet,
        target: &Target,
        artifact_type: &str,
    ) -> Result<Requirement> {
        let policy = self.verifier.policy_keys(target, artifact_type)?;
        let sets = [policy, requested.clone()]
            .into_iter()
            .filter(|k| !k.is_empty())
            .collect();
        Ok(Requirement { sets })
    }

    /// The newest of `candidates` (at most [`MAX_CANDIDATES`] of them) that
    /// verifies under `needed`, and its signature; when none does, the
    /// error lists each and why.
    pub(super) async fn newest_verified(
        &self,
        target: &Target,
        mut candidates: Vec<Descriptor>,
        what: &str,
        needed: &Requirement,
    ) -> Result<(Digest, Signature)> {
        let mut tried = Vec::new();
        let mut permission = false;
        while !candidates.is_empty() && tried.len() < MAX_CANDIDATES {
            let chosen = satchel_oci::artifact::select_newest(&candidates, what)?
                .digest
                .clone();
            match self.verifier.verify_all(target, &chosen, needed).await? {
                Verdict::Signed(signature) => return Ok((chosen, signature)),
                Verdict::Refused {
                    permission: p,
                    message,
                } => {
                    permission |= p;
                    tried.push(message);
                }
            }
            candidates.retain(|d| d.digest != chosen);
        }
        if tried.is_empty() {
            return Err(Error::new(ErrorKind::NotFound, format!("no {what} found")));
        }
        let kind = match permission {
            true => ErrorKind::PermissionDenied,
            false => ErrorKind::FailedPrecondition,
        };
        let more = match candidates.is_empty() {
            true => String::new(),
            false => format!(" ({} older ones not tried)", candidates.len()),
        };
        Err(Error::new(
            kind,
            format!(
                "no {what} verifies; tried, newest first: {}{more}",
                tried.join(" | ")
            ),
        ))
    }
}

/// The artifact type of a manifest: its `artifactType`, else its config's
/// media type (the OCI rule), else empty.
pub fn artifact_type(desc: &Descriptor, content: &[u8]) -> String {
    match Manifest::parse(&desc.media_type, content) {
        Ok(Manifest::Image(m)) => m
            .artifact_type
            .unwrap_or_else(|| m.config.media_type.clone()),
        Ok(Manifest::Index(i)) => i.artifact_type.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(dir: &std::path::Path) -> Target {
        let locks = Arc::new(satchel_oci::locks::KeyedLocks::default());
        Target::Layout(satchel_oci::layout::OciLayout::new(dir, locks))
    }

    fn signed() -> Verdict {
        Verdict::Signed(Signature {
            digest: "sha256:00".into(),
            form: "sigstore-bundle-v0.3",
            key_fingerprint: "sha256:11".into(),
            predicate_type: satchel_verify::COSIGN_SIGN_PREDICATE.into(),
        })
    }

    #[test]
    fn a_policy_change_clears_every_verdict() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, "").unwrap();
        let verifier = Verifier::new(PolicySource::open(Some(path.clone())).unwrap());
        let target = layout(dir.path());
        verifier.policy_keys(&target, "t").unwrap();
        let keys = KeySet::new(Vec::new());
        let cell = verifier.cell("m@sha256:00".into(), &keys);
        cell.set((Instant::now(), signed())).unwrap();
        drop(cell);
        verifier.policy_keys(&target, "t").unwrap();
        assert_eq!(
            verifier.verdicts.lock().unwrap().len(),
            1,
            "unchanged: kept"
        );
        std::fs::write(&path, "# another policy\n").unwrap();
        verifier.policy_keys(&target, "t").unwrap();
        assert!(
            verifier.verdicts.lock().unwrap().is_empty(),
            "changed: cleared"
        );
    }

    #[test]
    fn the_sweep_drops_failed_checks_and_stale_verdicts_but_not_checks_in_flight() {
        let verifier = Verifier::new(PolicySource::open(None).unwrap());
        let keys = KeySet::new(Vec::new());
        let in_flight = verifier.cell("in-flight".into(), &keys);
        let stale_at = Instant::now() - VERIFIED_TTL - Duration::from_secs(1);
        verifier
            .cell("stale".into(), &keys)
            .set((stale_at, signed()))
            .unwrap();
        verifier
            .cell("fresh".into(), &keys)
            .set((Instant::now(), signed()))
            .unwrap();
        for n in 0..SWEEP_ABOVE {
            // Checks that failed: their cells stay empty, held by no one.
            drop(verifier.cell(format!("failed-{n}"), &keys));
        }
        drop(verifier.cell("one more".into(), &keys));
        let verdicts = verifier.verdicts.lock().unwrap();
        let names: Vec<&str> = verdicts.keys().map(|(m, _)| m.as_str()).collect();
        assert!(
            names.contains(&"in-flight") && names.contains(&"fresh"),
            "{names:?}"
        );
        assert!(!names.contains(&"stale"), "{names:?}");
        assert!(verdicts.len() < 10, "{}", verdicts.len());
        drop(in_flight);
    }
}

//! cosign's signatures checked against public keys, with no I/O: the daemon
//! finds the signatures of a manifest and hands their bytes here.
//!
//! - [`keys`]: PEM public keys (ECDSA P-256/P-384, Ed25519, RSA) and their
//!   fingerprints.
//! - [`bundle`]: a Sigstore bundle v0.3 (cosign v3): a DSSE envelope over an
//!   in-toto statement that names the signed manifest's digest.
//! - [`simple`]: cosign's older form (v2): a simple-signing payload in a
//!   layer of the `sha256-<hex>.sig` tag, its signature in an annotation.
//!
//! Both end in a [`Verified`] or a [`Refusal`], and a refusal says which of
//! the documented cases it is. What is not checked: keyless certificates
//! (Fulcio) and transparency-log inclusion (Rekor), which need a trusted
//! root; a bundle is checked against the given keys alone.

pub mod bundle;
pub mod keys;
pub mod simple;

pub use keys::{Algorithm, KeyError, PublicKey};

/// The media type and artifact type of a Sigstore bundle v0.3.
pub const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// The media type of cosign's simple-signing payload layers.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

/// The annotation on a simple-signing layer that holds its signature.
pub const SIMPLE_SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// The predicate type cosign v3 puts in the statement of an image signature.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";

/// A signature that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// `sha256:<hex>` of the key that made it.
    pub key_fingerprint: String,
    /// The statement's predicate type ([`COSIGN_SIGN_PREDICATE`]: only
    /// signatures count, not other attestations); for the simple-signing
    /// form, its `critical.type` ("cosign container image signature").
    pub predicate_type: String,
}

/// Why a signature was not accepted. Each case has its own message; the
/// daemon maps [`Refusal::is_permission`] cases to PERMISSION_DENIED and
/// the rest to FAILED_PRECONDITION.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The bytes are not a signature of the form they claim to be.
    Malformed(String),
    /// The signature does not verify under any given key, and it names
    /// (by hint) none of them: most likely signed by another key.
    OtherKey,
    /// The signature names one of the given keys but does not verify
    /// under it: altered or forged.
    Forged(String),
    /// The signature verifies, but what it signs names another digest: a
    /// signature copied from another image.
    OtherDigest {
        /// The digest the signed statement names.
        signed: String,
    },
}

impl Refusal {
    /// Whether the refusal means "signed, but not acceptably" (as opposed
    /// to "nothing checkable here").
    pub fn is_permission(&self) -> bool {
        !matches!(self, Refusal::Malformed(_))
    }

    /// A short phrase for messages that list several refusals.
    pub fn reason(&self) -> String {
        match self {
            Refusal::Malformed(why) => format!("not a valid signature: {why}"),
            Refusal::OtherKey => "signed by none of the trusted keys".to_string(),
            Refusal::Forged(key) => {
                format!("claims key {key} but its signature does not verify (altered or forged)")
            }
            Refusal::OtherDigest { signed } => {
                format!("a valid signature, but of {signed} (copied from another manifest)")
            }
        }
    }

    /// How bad the refusal is for a caller choosing which to report when
    /// several signatures failed: the most telling one wins.
    pub fn rank(&self) -> u8 {
        match self {
            Refusal::Malformed(_) => 0,
            Refusal::OtherKey => 1,
            Refusal::OtherDigest { .. } => 2,
            Refusal::Forged(_) => 3,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason())
    }
}

/// The key among `keys` under which `signature` over `message` verifies.
fn signer<'k>(keys: &'k [PublicKey], message: &[u8], signature: &[u8]) -> Option<&'k PublicKey> {
    keys.iter().find(|k| k.verifies(message, signature))
}

/// Whether `hint` (a key id a signature carries) names `key` in one of the
/// spellings in use: the hex or base64 of the SHA-256 of its DER.
fn hint_names(hint: &str, key: &PublicKey) -> bool {
    use base64::Engine;
    let hint = hint.trim();
    if hint.is_empty() {
        return false;
    }
    let hex = key.fingerprint().trim_start_matches("sha256:");
    let Ok(raw) = hex::decode(hex) else {
        return false;
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
    hint.eq_ignore_ascii_case(hex) || hint.eq_ignore_ascii_case(key.fingerprint()) || hint == b64
}

/// The refusal for a signature that verified under none of `keys`.
fn unverified(keys: &[PublicKey], hints: &[&str]) -> Refusal {
    match keys.iter().find(|k| hints.iter().any(|h| hint_names(h, k))) {
        Some(key) => Refusal::Forged(key.fingerprint().to_string()),
        None => Refusal::OtherKey,
    }
}

/// Decodes standard or URL-safe base64, padded or not.
fn b64(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use base64::Engine;
    [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(text.trim()).ok())
}

#[cfg(test)]
pub(crate) mod testkeys;

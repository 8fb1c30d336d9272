//! cosign's older signature form (cosign v2's default): the tag
//! `sha256-<hex>.sig` holds a manifest whose layers are simple-signing
//! payloads, each signed (over its bytes) in the layer's
//! `dev.cosignproject.cosign/signature` annotation.

use serde::Deserialize;

use crate::{b64, signer, unverified, PublicKey, Refusal, Verified};

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    digest: String,
}

/// The tag under which cosign's older form signs `digest`.
pub fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replacen(':', "-", 1))
}

/// Checks that `signature` (the annotation's base64) over `payload` (the
/// layer's bytes) verifies under one of `keys` and that the payload names
/// `digest`.
pub fn verify(
    payload: &[u8],
    signature: &str,
    digest: &str,
    keys: &[PublicKey],
) -> Result<Verified, Refusal> {
    let sig = b64(signature)
        .ok_or_else(|| Refusal::Malformed("the signature annotation is not base64".into()))?;
    let key = signer(keys, payload, &sig).ok_or_else(|| unverified(keys, &[]))?;
    let payload: Payload = serde_json::from_slice(payload).map_err(|e| {
        Refusal::Malformed(format!(
            "the signed payload is not a simple-signing payload ({e})"
        ))
    })?;
    if !payload.critical.image.digest.eq_ignore_ascii_case(digest) {
        return Err(Refusal::OtherDigest {
            signed: payload.critical.image.digest,
        });
    }
    Ok(Verified {
        key_fingerprint: key.fingerprint().to_string(),
        predicate_type: payload.critical.kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkeys::TestKey;
    use base64::Engine;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn payload(digest: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "critical": {
                "identity": {"docker-reference": "reg/repo"},
                "image": {"docker-manifest-digest": digest},
                "type": "cosign container image signature"
            },
            "optional": null
        }))
        .unwrap()
    }

    #[test]
    fn the_tag_is_the_digest_with_a_dash() {
        assert_eq!(signature_tag("sha256:ab"), "sha256-ab.sig");
    }

    #[test]
    fn verifies_and_refuses() {
        let key = TestKey::p256();
        let p = payload(D);
        let sig = base64::engine::general_purpose::STANDARD.encode(key.sign(&p));
        let ok = verify(&p, &sig, D, &[key.public()]).unwrap();
        assert_eq!(ok.predicate_type, "cosign container image signature");
        let other = TestKey::p256();
        assert_eq!(
            verify(&p, &sig, D, &[other.public()]),
            Err(Refusal::OtherKey)
        );
        let elsewhere = "sha256:".to_string() + &"f".repeat(64);
        assert!(matches!(
            verify(&p, &sig, &elsewhere, &[key.public()]),
            Err(Refusal::OtherDigest { .. })
        ));
        assert!(matches!(
            verify(&p, "!!", D, &[key.public()]),
            Err(Refusal::Malformed(_))
        ));
    }
}

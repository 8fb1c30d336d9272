//! Sigstore bundles v0.3 as cosign v3 writes them for an image: a DSSE
//! envelope whose payload is an in-toto statement naming the image
//! manifest's digest, signed over DSSE's pre-authentication encoding.

use serde::Deserialize;

use crate::{b64, signer, unverified, PublicKey, Refusal, Verified, BUNDLE_V03};

/// The payload type of an in-toto statement in a DSSE envelope.
const IN_TOTO: &str = "application/vnd.in-toto+json";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bundle {
    media_type: String,
    #[serde(default)]
    verification_material: Option<Material>,
    #[serde(default)]
    dsse_envelope: Option<Envelope>,
    #[serde(default)]
    message_signature: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Material {
    #[serde(default)]
    public_key: Option<Hint>,
}

#[derive(Deserialize)]
struct Hint {
    #[serde(default)]
    hint: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload: String,
    payload_type: String,
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Deserialize)]
struct EnvelopeSignature {
    sig: String,
    #[serde(default)]
    keyid: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Statement {
    #[serde(rename = "_type")]
    kind: String,
    subject: Vec<Subject>,
    predicate_type: String,
}

#[derive(Deserialize)]
struct Subject {
    #[serde(default)]
    digest: std::collections::BTreeMap<String, String>,
}

/// DSSE's pre-authentication encoding of a payload: what is signed.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Checks that `bundle` (a bundle's JSON) is signed by one of `keys` and
/// that its statement names `digest` (`sha256:<hex>`).
pub fn verify(bundle: &[u8], digest: &str, keys: &[PublicKey]) -> Result<Verified, Refusal> {
    let malformed = |why: &str| Refusal::Malformed(why.to_string());
    let bundle: Bundle = serde_json::from_slice(bundle)
        .map_err(|e| Refusal::Malformed(format!("not a Sigstore bundle ({e})")))?;
    if bundle.media_type != BUNDLE_V03 {
        return Err(Refusal::Malformed(format!(
            "a bundle of media type {:?}; only {BUNDLE_V03} is read",
            bundle.media_type
        )));
    }
    let Some(envelope) = bundle.dsse_envelope else {
        return Err(malformed(if bundle.message_signature.is_some() {
            "a message signature, not a DSSE envelope over a statement"
        } else {
            "the bundle holds no DSSE envelope"
        }));
    };
    if envelope.payload_type != IN_TOTO {
        return Err(Refusal::Malformed(format!(
            "the envelope holds {:?}, not an in-toto statement",
            envelope.payload_type
        )));
    }
    let payload = b64(&envelope.payload).ok_or_else(|| malformed("the payload is not base64"))?;
    if envelope.signatures.is_empty() {
        return Err(malformed("the envelope has no signature"));
    }
    let signed = pae(&envelope.payload_type, &payload);
    let mut hints: Vec<&str> = envelope
        .signatures
        .iter()
        .map(|s| s.keyid.as_str())
        .collect();
    if let Some(Hint { hint }) = bundle
        .verification_material
        .as_ref()
        .and_then(|m| m.public_key.as_ref())
    {
        hints.push(hint);
    }
    let key = envelope
        .signatures
        .iter()
        .find_map(|s| b64(&s.sig).and_then(|sig| signer(keys, &signed, &sig)))
        .ok_or_else(|| unverified(keys, &hints))?;
    // Only now is the statement trusted enough to read.
    let statement: Statement = serde_json::from_slice(&payload).map_err(|e| {
        Refusal::Malformed(format!(
            "the signed payload is not an in-toto statement ({e})"
        ))
    })?;
    if !statement.kind.starts_with("https://in-toto.io/Statement/") {
        return Err(Refusal::Malformed(format!(
            "the signed payload is a {:?}, not an in-toto statement",
            statement.kind
        )));
    }
    // Other statements signed with the key (provenance, vulnerability
    // reports: `cosign attest`) say something else than "signed".
    if statement.predicate_type != crate::COSIGN_SIGN_PREDICATE {
        return Err(Refusal::Malformed(format!(
            "an attestation ({}), not a cosign signature",
            statement.predicate_type
        )));
    }
    let (algorithm, hex) = digest
        .split_once(':')
        .ok_or_else(|| malformed("the expected digest has no algorithm"))?;
    let names = |s: &Subject| {
        s.digest
            .get(algorithm)
            .is_some_and(|h| h.eq_ignore_ascii_case(hex))
    };
    if !statement.subject.iter().any(names) {
        let signed = statement
            .subject
            .iter()
            .flat_map(|s| s.digest.iter().map(|(a, h)| format!("{a}:{h}")))
            .next()
            .unwrap_or_else(|| "no digest".to_string());
        return Err(Refusal::OtherDigest { signed });
    }
    Ok(Verified {
        key_fingerprint: key.fingerprint().to_string(),
        predicate_type: statement.predicate_type,
    })
}

/// A bundle over `digest` signed with `sign`, as cosign v3 writes it.
#[cfg(test)]
pub(crate) fn make(digest: &str, hint: &str, sign: impl Fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
    make_statement(digest, hint, crate::COSIGN_SIGN_PREDICATE, sign)
}

/// A bundle over a statement of `predicate_type` about `digest`.
#[cfg(test)]
pub(crate) fn make_statement(
    digest: &str,
    hint: &str,
    predicate_type: &str,
    sign: impl Fn(&[u8]) -> Vec<u8>,
) -> Vec<u8> {
    use base64::Engine;
    let e = base64::engine::general_purpose::STANDARD;
    let (alg, hex) = digest.split_once(':').unwrap();
    let statement = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "reg/repo", "digest": {alg: hex}}],
        "predicateType": predicate_type,
        "predicate": {}
    })
    .to_string();
    let sig = sign(&pae(IN_TOTO, statement.as_bytes()));
    serde_json::to_vec(&serde_json::json!({
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {"publicKey": {"hint": hint}},
        "dsseEnvelope": {
            "payload": e.encode(statement),
            "payloadType": IN_TOTO,
            "signatures": [{"sig": e.encode(sig), "keyid": ""}]
        }
    }))
    .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkeys::TestKey;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const OTHER: &str = "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // The example of DSSE's protocol.md.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn every_key_kind_verifies_its_own_bundle_and_no_other() {
        for key in [TestKey::p256(), TestKey::p384(), TestKey::ed25519()] {
            let bundle = make(D, "", |m| key.sign(m));
            let ok = verify(&bundle, D, &[key.public()]).unwrap();
            assert_eq!(ok.key_fingerprint, key.public().fingerprint());
            assert_eq!(ok.predicate_type, crate::COSIGN_SIGN_PREDICATE);
            let other = TestKey::p256();
            assert_eq!(
                verify(&bundle, D, &[other.public()]),
                Err(Refusal::OtherKey)
            );
        }
    }

    #[test]
    fn each_refusal_is_its_own_case() {
        let key = TestKey::p256();
        let bundle = make(D, "", |m| key.sign(m));
        // Copied from another manifest.
        assert_eq!(
            verify(&bundle, OTHER, &[key.public()]),
            Err(Refusal::OtherDigest {
                signed: D.to_string()
            })
        );
        // Altered: one signature byte flipped, hint naming the key.
        let hint = hex::encode(hex::decode(&key.public().fingerprint()[7..]).unwrap());
        let forged = make(D, &hint, |m| {
            let mut s = key.sign(m);
            let last = s.len() - 1;
            s[last] ^= 1;
            s
        });
        assert!(matches!(
            verify(&forged, D, &[key.public()]),
            Err(Refusal::Forged(_))
        ));
        // An attestation by the same key is not a signature.
        let provenance = make_statement(D, "", "https://slsa.dev/provenance/v1", |m| key.sign(m));
        assert!(
            matches!(verify(&provenance, D, &[key.public()]), Err(Refusal::Malformed(m)) if m.contains("attestation"))
        );
        // Not a bundle at all.
        assert!(matches!(
            verify(b"{}", D, &[key.public()]),
            Err(Refusal::Malformed(_))
        ));
        assert!(matches!(
            verify(b"\x00", D, &[key.public()]),
            Err(Refusal::Malformed(_))
        ));
        let mut other_type: serde_json::Value = serde_json::from_slice(&bundle).unwrap();
        other_type["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.1".into();
        let other_type = serde_json::to_vec(&other_type).unwrap();
        assert!(matches!(
            verify(&other_type, D, &[key.public()]),
            Err(Refusal::Malformed(_))
        ));
    }
}

//! Public keys as cosign writes them: PEM `PUBLIC KEY` (a DER
//! SubjectPublicKeyInfo) holding ECDSA P-256 or P-384, Ed25519 or RSA, and
//! PEM `RSA PUBLIC KEY` (PKCS #1). Read with a small DER reader of our own:
//! the four algorithms need three tags and five object identifiers.

use base64::Engine;
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use sha2::{Digest, Sha256};

/// The algorithms a key can be, which decide how its signatures are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// ECDSA on NIST P-256.
    EcdsaP256,
    /// ECDSA on NIST P-384.
    EcdsaP384,
    /// Ed25519 (pure, over the message itself).
    Ed25519,
    /// RSA, PKCS #1 v1.5 or PSS.
    Rsa,
}

impl Algorithm {
    /// The name shown in answers and errors.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::EcdsaP256 => "ecdsa-p256",
            Algorithm::EcdsaP384 => "ecdsa-p384",
            Algorithm::Ed25519 => "ed25519",
            Algorithm::Rsa => "rsa",
        }
    }

    /// The signature schemes tried for this key, in order. cosign hashes with
    /// SHA-256 by default and with the curve's own size for P-384; a
    /// signature valid under any of these was made with the key.
    fn schemes(self) -> &'static [&'static dyn VerificationAlgorithm] {
        match self {
            Algorithm::EcdsaP256 => P256_SCHEMES,
            Algorithm::EcdsaP384 => P384_SCHEMES,
            Algorithm::Ed25519 => ED25519_SCHEMES,
            Algorithm::Rsa => RSA_SCHEMES,
        }
    }
}

static P256_SCHEMES: &[&dyn VerificationAlgorithm] = &[
    &signature::ECDSA_P256_SHA256_ASN1,
    &signature::ECDSA_P256_SHA384_ASN1,
];
static P384_SCHEMES: &[&dyn VerificationAlgorithm] = &[
    &signature::ECDSA_P384_SHA384_ASN1,
    &signature::ECDSA_P384_SHA256_ASN1,
];
static ED25519_SCHEMES: &[&dyn VerificationAlgorithm] = &[&signature::ED25519];
static RSA_SCHEMES: &[&dyn VerificationAlgorithm] = &[
    &signature::RSA_PKCS1_2048_8192_SHA256,
    &signature::RSA_PSS_2048_8192_SHA256,
    &signature::RSA_PKCS1_2048_8192_SHA384,
    &signature::RSA_PKCS1_2048_8192_SHA512,
];

/// A public key a signature can be checked against.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    algorithm: Algorithm,
    /// What ring takes: the uncompressed point, the 32 bytes of Ed25519, or
    /// the PKCS #1 RSAPublicKey.
    raw: Vec<u8>,
    /// `sha256:<hex>` of the SubjectPublicKeyInfo DER, as
    /// `openssl pkey -pubin -outform DER | sha256sum` prints it.
    fingerprint: String,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PublicKey({} {})",
            self.algorithm.name(),
            self.fingerprint
        )
    }
}

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub String);

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

fn bad(message: impl Into<String>) -> KeyError {
    KeyError(message.into())
}

// Object identifiers, as the content bytes of their DER encoding.
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

const TAG_SEQUENCE: u8 = 0x30;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_OID: u8 = 0x06;
const TAG_INTEGER: u8 = 0x02;

impl PublicKey {
    /// Reads the first public key of a PEM text.
    pub fn from_pem(pem: &[u8]) -> Result<PublicKey, KeyError> {
        let text = std::str::from_utf8(pem).map_err(|_| bad("the key is not PEM text"))?;
        let (label, der) = pem_block(text)?;
        match label {
            "PUBLIC KEY" => PublicKey::from_spki(&der),
            "RSA PUBLIC KEY" => PublicKey::from_pkcs1(&der),
            "ENCRYPTED SIGSTORE PRIVATE KEY"
            | "ENCRYPTED COSIGN PRIVATE KEY"
            | "PRIVATE KEY"
            | "EC PRIVATE KEY"
            | "RSA PRIVATE KEY" => Err(bad(
                "that is a private key; give the public key (cosign.pub)",
            )),
            other => Err(bad(format!("a PEM {other:?} block is not a public key"))),
        }
    }

    /// Reads a DER SubjectPublicKeyInfo.
    pub fn from_spki(der: &[u8]) -> Result<PublicKey, KeyError> {
        let mut outer = Der::new(der);
        let mut spki = outer.nested(TAG_SEQUENCE)?;
        outer.end()?;
        let mut alg = spki.nested(TAG_SEQUENCE)?;
        let oid = alg.take(TAG_OID)?;
        let bits = spki.take(TAG_BIT_STRING)?;
        spki.end()?;
        let key = match bits.split_first() {
            Some((0, key)) => key,
            _ => return Err(bad("the key's bit string is malformed")),
        };
        let algorithm = match oid {
            OID_EC_PUBLIC_KEY => match alg.take(TAG_OID)? {
                OID_P256 => Algorithm::EcdsaP256,
                OID_P384 => Algorithm::EcdsaP384,
                _ => return Err(bad("an ECDSA key on a curve other than P-256 or P-384")),
            },
            OID_ED25519 if key.len() == 32 => Algorithm::Ed25519,
            OID_RSA => {
                check_rsa(key)?;
                Algorithm::Rsa
            }
            _ => return Err(bad("not an ECDSA P-256/P-384, Ed25519 or RSA public key")),
        };
        Ok(PublicKey {
            algorithm,
            raw: key.to_vec(),
            fingerprint: format!("sha256:{}", hex::encode(Sha256::digest(der))),
        })
    }

    /// Reads a DER PKCS #1 RSAPublicKey; its fingerprint is that of the
    /// same key as a SubjectPublicKeyInfo, so both forms name one key.
    pub fn from_pkcs1(der: &[u8]) -> Result<PublicKey, KeyError> {
        check_rsa(der)?;
        let mut bits = vec![0u8];
        bits.extend_from_slice(der);
        let mut alg = der_tlv(TAG_OID, OID_RSA);
        alg.extend_from_slice(&[0x05, 0x00]);
        let mut body = der_tlv(TAG_SEQUENCE, &alg);
        body.extend(der_tlv(TAG_BIT_STRING, &bits));
        PublicKey::from_spki(&der_tlv(TAG_SEQUENCE, &body))
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// `sha256:<hex>` of the key's SubjectPublicKeyInfo DER.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Whether `signature` over `message` was made with this key's private
    /// half.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        self.algorithm.schemes().iter().any(|scheme| {
            UnparsedPublicKey::new(*scheme, &self.raw)
                .verify(message, signature)
                .is_ok()
        })
    }
}

/// The label and the decoded body of the first PEM block of `text`.
fn pem_block(text: &str) -> Result<(&str, Vec<u8>), KeyError> {
    let start = text
        .find("-----BEGIN ")
        .ok_or_else(|| bad("no PEM block (-----BEGIN PUBLIC KEY-----) in the key"))?;
    let rest = &text[start + 11..];
    let label_end = rest
        .find("-----")
        .ok_or_else(|| bad("a malformed PEM header"))?;
    let label = &rest[..label_end];
    let body = &rest[label_end + 5..];
    let end_line = format!("-----END {label}-----");
    let end = body
        .find(&end_line)
        .ok_or_else(|| bad(format!("no {end_line} in the key")))?;
    let b64: String = body[..end]
        .lines()
        .filter(|line| !line.contains(':')) // RFC 1421 headers, if any
        .flat_map(|line| line.trim().chars())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| bad("the PEM body is not base64"))?;
    Ok((label, der))
}

/// Checks that `der` is an RSAPublicKey: a sequence of two integers.
fn check_rsa(der: &[u8]) -> Result<(), KeyError> {
    let mut outer = Der::new(der);
    let mut seq = outer.nested(TAG_SEQUENCE)?;
    outer.end()?;
    seq.take(TAG_INTEGER)?;
    seq.take(TAG_INTEGER)?;
    seq.end()
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// A cursor over DER: definite lengths only, as DER requires.
struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Der { rest: bytes }
    }

    /// The content of the next element, which must have `tag`.
    fn take(&mut self, tag: u8) -> Result<&'a [u8], KeyError> {
        let malformed = || bad("the key is not well-formed DER");
        let (&got, rest) = self.rest.split_first().ok_or_else(malformed)?;
        if got != tag {
            return Err(malformed());
        }
        let (&first, mut rest) = rest.split_first().ok_or_else(malformed)?;
        let len = if first < 0x80 {
            first as usize
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 || rest.len() < n {
                return Err(malformed());
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | *b as usize);
            rest = &rest[n..];
            len
        };
        if rest.len() < len {
            return Err(malformed());
        }
        let (content, rest) = rest.split_at(len);
        self.rest = rest;
        Ok(content)
    }

    fn nested(&mut self, tag: u8) -> Result<Der<'a>, KeyError> {
        self.take(tag).map(Der::new)
    }

    fn end(&self) -> Result<(), KeyError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(bad("the key has trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkeys::TestKey;

    #[test]
    fn refuses_private_keys_and_garbage() {
        let private = "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n";
        assert!(PublicKey::from_pem(private.as_bytes())
            .unwrap_err()
            .0
            .contains("private key"));
        assert!(PublicKey::from_pem(b"hello").is_err());
        let pem = TestKey::p256().pem();
        let truncated = pem.replacen("\n-----END", "AAAA\n-----END", 1);
        assert!(PublicKey::from_pem(truncated.as_bytes()).is_err());
    }

    #[test]
    fn reads_an_ecdsa_spki_and_its_fingerprint() {
        let signer = TestKey::p256();
        let key = PublicKey::from_pem(signer.pem().as_bytes()).unwrap();
        assert_eq!(key.algorithm(), Algorithm::EcdsaP256);
        assert_eq!(key.fingerprint().len(), 7 + 64);
        assert_eq!(key.raw.len(), 65);
        assert!(key.verifies(b"message", &signer.sign(b"message")));
        assert!(!key.verifies(b"massage", &signer.sign(b"message")));
        assert!(!key.verifies(b"message", b"not a signature"));
        assert_eq!(
            PublicKey::from_pem(TestKey::p384().pem().as_bytes())
                .unwrap()
                .algorithm(),
            Algorithm::EcdsaP384
        );
        assert_eq!(
            PublicKey::from_pem(TestKey::ed25519().pem().as_bytes())
                .unwrap()
                .algorithm(),
            Algorithm::Ed25519
        );
    }

    #[test]
    fn pkcs1_and_spki_of_one_rsa_key_share_a_fingerprint() {
        // A toy modulus: shape, not strength, is what this checks.
        let mut ints = der_tlv(TAG_INTEGER, &[0x00, 0xc3, 0x5a, 0x11, 0x07]);
        ints.extend(der_tlv(TAG_INTEGER, &[0x01, 0x00, 0x01]));
        let pkcs1 = der_tlv(TAG_SEQUENCE, &ints);
        let from_pkcs1 = PublicKey::from_pkcs1(&pkcs1).unwrap();
        let mut bits = vec![0u8];
        bits.extend_from_slice(&pkcs1);
        let mut alg = der_tlv(TAG_OID, OID_RSA);
        alg.extend_from_slice(&[0x05, 0x00]);
        let mut body = der_tlv(TAG_SEQUENCE, &alg);
        body.extend(der_tlv(TAG_BIT_STRING, &bits));
        let from_spki = PublicKey::from_spki(&der_tlv(TAG_SEQUENCE, &body)).unwrap();
        assert_eq!(from_pkcs1, from_spki);
        assert_eq!(from_spki.algorithm(), Algorithm::Rsa);
    }
}

//! Keys made on the spot for the unit tests, with ring's signers, and their
//! public halves as SubjectPublicKeyInfo PEM, as cosign would write them.

use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};

use crate::PublicKey;

pub enum TestKey {
    Ecdsa(EcdsaKeyPair, &'static [u8]),
    Ed25519(Ed25519KeyPair),
}

// The DER of the SubjectPublicKeyInfo up to the key's bytes.
const P256_PREFIX: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
const P384_PREFIX: &[u8] = &[
    0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b,
    0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00,
];
const ED25519_PREFIX: &[u8] = &[
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

impl TestKey {
    fn ecdsa(alg: &'static signature::EcdsaSigningAlgorithm, prefix: &'static [u8]) -> TestKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        TestKey::Ecdsa(
            EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap(),
            prefix,
        )
    }

    pub fn p256() -> TestKey {
        TestKey::ecdsa(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, P256_PREFIX)
    }

    pub fn p384() -> TestKey {
        TestKey::ecdsa(&signature::ECDSA_P384_SHA384_ASN1_SIGNING, P384_PREFIX)
    }

    pub fn ed25519() -> TestKey {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        TestKey::Ed25519(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap())
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            TestKey::Ecdsa(k, _) => k
                .sign(&SystemRandom::new(), message)
                .unwrap()
                .as_ref()
                .to_vec(),
            TestKey::Ed25519(k) => k.sign(message).as_ref().to_vec(),
        }
    }

    pub fn pem(&self) -> String {
        let mut der = match self {
            TestKey::Ecdsa(_, prefix) => prefix.to_vec(),
            TestKey::Ed25519(_) => ED25519_PREFIX.to_vec(),
        };
        der.extend_from_slice(match self {
            TestKey::Ecdsa(k, _) => k.public_key().as_ref(),
            TestKey::Ed25519(k) => k.public_key().as_ref(),
        });
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n")
    }

    pub fn public(&self) -> PublicKey {
        PublicKey::from_pem(self.pem().as_bytes()).unwrap()
    }
}

//! Digests: parsing (through `oci_spec`), computing, and verifying content
//! while it streams.

use std::str::FromStr;

use sha2::{Digest as _, Sha256, Sha512};

use crate::error::{Error, ErrorKind, Result};

pub use oci_spec::image::Digest;

/// Parses and validates `"<algorithm>:<hex>"`. Only sha256 and sha512 are
/// accepted, since those are the ones we can verify.
pub fn parse(s: &str) -> Result<Digest> {
    let digest =
        Digest::from_str(s).map_err(|e| Error::invalid(format!("invalid digest {s:?}: {e}")))?;
    match digest.algorithm().as_ref() {
        "sha256" | "sha512" => Ok(digest),
        other => Err(Error::invalid(format!(
            "unsupported digest algorithm {other:?} in {s:?}"
        ))),
    }
}

/// The sha256 digest of `data`.
pub fn sha256(data: &[u8]) -> Digest {
    let mut hasher = Hasher::sha256();
    hasher.update(data);
    hasher.finish()
}

/// An incremental hash for one of the supported algorithms.
#[derive(Clone)]
pub enum Hasher {
    /// SHA-256, the default everywhere.
    Sha256(Sha256),
    /// SHA-512, accepted when content is addressed by it.
    Sha512(Sha512),
}

impl Hasher {
    /// A SHA-256 hasher.
    pub fn sha256() -> Self {
        Hasher::Sha256(Sha256::new())
    }

    /// A hasher for the algorithm of `digest`.
    pub fn for_digest(digest: &Digest) -> Result<Self> {
        match digest.algorithm().as_ref() {
            "sha256" => Ok(Hasher::Sha256(Sha256::new())),
            "sha512" => Ok(Hasher::Sha512(Sha512::new())),
            other => Err(Error::invalid(format!(
                "unsupported digest algorithm {other:?}"
            ))),
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        let s = match self {
            Hasher::Sha256(h) => format!("sha256:{}", hex::encode(h.finalize())),
            Hasher::Sha512(h) => format!("sha512:{}", hex::encode(h.finalize())),
        };
        Digest::from_str(&s).expect("a computed digest is well formed")
    }
}

/// Checks content as it passes: the bytes seen must add up to the expected
/// size and digest. `finish` is the only way to learn that they did.
pub struct Verifier {
    expected: Digest,
    expected_size: Option<u64>,
    hasher: Hasher,
    seen: u64,
}

impl Verifier {
    /// Expects content with `digest` and, when known, `size` bytes.
    pub fn new(expected: &Digest, expected_size: Option<u64>) -> Result<Self> {
        Ok(Verifier {
            hasher: Hasher::for_digest(expected)?,
            expected: expected.clone(),
            expected_size,
            seen: 0,
        })
    }

    /// Feeds bytes; fails as soon as more bytes than expected arrive.
    pub fn update(&mut self, data: &[u8]) -> Result<()> {
        self.seen += data.len() as u64;
        if let Some(size) = self.expected_size {
            if self.seen > size {
                return Err(Error::new(
                    ErrorKind::DataLoss,
                    format!(
                        "content of {} is longer than its declared {size} bytes",
                        self.expected
                    ),
                ));
            }
        }
        self.hasher.update(data);
        Ok(())
    }

    /// How many bytes were fed.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Succeeds only when size and digest both match.
    pub fn finish(self) -> Result<Digest> {
        if let Some(size) = self.expected_size {
            if self.seen != size {
                return Err(Error::new(
                    ErrorKind::DataLoss,
                    format!(
                        "content of {} has {} bytes, expected {size}",
                        self.expected, self.seen
                    ),
                ));
            }
        }
        let actual = self.hasher.finish();
        if actual != self.expected {
            return Err(Error::new(
                ErrorKind::DataLoss,
                format!("digest mismatch: expected {}, got {actual}", self.expected),
            ));
        }
        Ok(actual)
    }
}

/// Passes `body` through `verifier`: the stream ends with a `DataLoss`
/// error instead of its end when size or digest do not match.
pub fn verify_stream(body: crate::ByteStream, mut verifier: Verifier) -> crate::ByteStream {
    use futures::StreamExt;
    async_stream::try_stream! {
        let mut body = body;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            verifier.update(&chunk)?;
            yield chunk;
        }
        verifier.finish()?;
    }
    .boxed()
}

/// Checks whole content against a digest (and size).
pub fn verify(data: &[u8], expected: &Digest, size: Option<u64>) -> Result<()> {
    let mut v = Verifier::new(expected, size)?;
    v.update(data)?;
    v.finish().map(|_| ())
}

/// What a caller knows of a blob before its bytes arrive: its digest, its
/// size, both or neither. The more it knows, the less a push has to do: a
/// digest and a size allow one PUT for small blobs; a size alone still
/// allows resumable chunked PATCHes, with the digest computed as the bytes
/// stream by.
#[derive(Clone, Copy, Debug, Default)]
pub struct Expected<'a> {
    /// The digest the bytes must have.
    pub digest: Option<&'a Digest>,
    /// The number of bytes.
    pub size: Option<u64>,
}

impl<'a> Expected<'a> {
    /// Both digest and size.
    pub fn exactly(digest: &'a Digest, size: u64) -> Self {
        Expected {
            digest: Some(digest),
            size: Some(size),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_empty() {
        assert_eq!(
            sha256(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn rejects_bad_digests() {
        assert!(parse("sha256:abc").is_err());
        assert!(parse("md5:d41d8cd98f00b204e9800998ecf8427e").is_err());
        assert!(parse("nonsense").is_err());
        assert!(parse(sha256(b"x").as_ref()).is_ok());
    }

    #[test]
    fn verifier_catches_size_and_digest() {
        let d = sha256(b"hello");
        assert!(verify(b"hello", &d, Some(5)).is_ok());
        assert_eq!(
            verify(b"hellO", &d, Some(5)).unwrap_err().kind(),
            ErrorKind::DataLoss
        );
        assert_eq!(
            verify(b"hello!", &d, Some(5)).unwrap_err().kind(),
            ErrorKind::DataLoss
        );
        assert_eq!(
            verify(b"hell", &d, Some(5)).unwrap_err().kind(),
            ErrorKind::DataLoss
        );
    }
}

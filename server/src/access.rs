//! Who may use the daemon. The Unix socket is guarded by its file mode
//! (0600, or 0660 for a chosen group); a TCP listener by TLS plus a bearer
//! token read from a file or client certificates (mTLS). Health checks stay
//! open so orchestrators can probe the daemon. The gRPC layer asks
//! [`TokenCheck::allows`] of every call's `authorization` header
//! ([`crate::grpc::peer`]).

use std::sync::Arc;

/// Checks `authorization: Bearer <token>` on every call it guards.
#[derive(Clone)]
pub struct TokenCheck {
    /// The expected token; `None` lets every call through.
    expected: Option<Arc<[u8]>>,
}

impl TokenCheck {
    /// Requires `token` when given.
    pub fn new(token: Option<&str>) -> Self {
        TokenCheck {
            expected: token.map(|t| Arc::from(t.as_bytes())),
        }
    }

    /// Whether a call whose `authorization` header is `header` may go on.
    pub fn allows(&self, header: Option<&str>) -> bool {
        let Some(expected) = &self.expected else {
            return true;
        };
        let given = header.and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("");
        constant_time_eq(given.as_bytes(), expected)
    }
}

impl std::fmt::Debug for TokenCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCheck")
            .field("required", &self.expected.is_some())
            .finish()
    }
}

/// Compares in time that depends only on the lengths, not the contents.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_check() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        let check = TokenCheck::new(Some("s3cret"));
        assert!(check.allows(Some("Bearer s3cret")));
        assert!(!check.allows(Some("Bearer s3cre")));
        assert!(!check.allows(Some("s3cret")));
        assert!(!check.allows(None));
        assert!(TokenCheck::new(None).allows(None));
    }
}

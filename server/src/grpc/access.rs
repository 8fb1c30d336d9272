//! Who may use the daemon. The Unix socket is guarded by its file mode
//! (0600, or 0660 for a chosen group); a TCP listener by TLS plus a bearer
//! token read from a file or client certificates (mTLS). Health checks stay
//! open so orchestrators can probe the daemon.

use std::sync::Arc;

use tonic::{Request, Status};

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
}

impl std::fmt::Debug for TokenCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCheck")
            .field("required", &self.expected.is_some())
            .finish()
    }
}

impl tonic::service::Interceptor for TokenCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.expected else {
            return Ok(request);
        };
        let given = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if constant_time_eq(given.as_bytes(), expected) {
            Ok(request)
        } else {
            Err(Status::unauthenticated(
                "a valid bearer token is required (satchel --token-file)",
            ))
        }
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
    use tonic::service::Interceptor;

    #[test]
    fn token_check() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        let mut check = TokenCheck::new(Some("s3cret"));
        let mut ok = Request::new(());
        ok.metadata_mut()
            .insert("authorization", "Bearer s3cret".parse().unwrap());
        assert!(check.call(ok).is_ok());
        let err = check.call(Request::new(())).unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        assert!(TokenCheck::new(None).call(Request::new(())).is_ok());
    }
}

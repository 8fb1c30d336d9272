//! The one error type of this crate, and the coarse kinds callers map to
//! their own vocabulary (the daemon maps them to gRPC status codes).

use std::fmt;

/// What went wrong, coarsely; enough to choose a status code or an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller asked for something malformed: a bad reference, digest,
    /// path or media type.
    InvalidArgument,
    /// The manifest, blob, tag or repository does not exist.
    NotFound,
    /// The registry wants credentials we do not have, or rejected them.
    Unauthenticated,
    /// The registry knows who we are and says no.
    PermissionDenied,
    /// Content did not match its digest or declared size.
    DataLoss,
    /// The content exists but has a shape we do not handle here.
    FailedPrecondition,
    /// The registry could not be reached or failed on its side.
    Unavailable,
    /// Anything else: a local I/O failure or a bug.
    Internal,
}

/// An error from the OCI layer. The message never contains credentials.
#[derive(Debug, thiserror::Error)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

impl Error {
    /// An error of `kind` with a message for humans.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The coarse kind of this error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message without the source chain.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::NotFound, message)
    }

    /// An I/O failure while doing `context`.
    pub fn io(context: impl Into<String>, err: std::io::Error) -> Self {
        let kind = match err.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => {
                ErrorKind::InvalidArgument
            }
            _ => ErrorKind::Internal,
        };
        Error::new(kind, context).with_source(err)
    }

    pub(crate) fn http(context: impl Into<String>, err: reqwest::Error) -> Self {
        // reqwest errors name the URL, whose query may hold a signature (a
        // redirect to blob storage) or upload state: drop it; the context
        // names the URL without its query.
        Error::new(ErrorKind::Unavailable, context).with_source(err.without_url())
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

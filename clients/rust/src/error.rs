//! [`Error`]: what a push or pull through this crate can fail with.

/// A failed call: the daemon's status, or a local failure with the gRPC code
/// that best names it (see [`Error::code`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The daemon, or the channel to it, failed the call.
    #[error("{}", .0.message())]
    Status(#[from] tonic::Status),
    /// A local file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, naming the file.
        what: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// This client refused something: a file name that would leave the
    /// output directory, a pull stream that broke the API's rules.
    #[error("{message}")]
    Local {
        /// The gRPC code for it (INVALID_ARGUMENT, INTERNAL, DATA_LOSS).
        code: tonic::Code,
        /// What happened.
        message: String,
    },
}

impl Error {
    /// The gRPC status code: the daemon's, or the one this client chose.
    pub fn code(&self) -> tonic::Code {
        match self {
            Error::Status(s) => s.code(),
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                tonic::Code::NotFound
            }
            Error::Io { .. } => tonic::Code::Unknown,
            Error::Local { code, .. } => *code,
        }
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn local(code: tonic::Code, message: impl Into<String>) -> Self {
        Error::Local {
            code,
            message: message.into(),
        }
    }
}

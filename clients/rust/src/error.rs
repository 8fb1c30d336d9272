//! [`Error`]: what a push or pull through this crate can fail with.

/// A failed call: the daemon's status, or a local failure with the gRPC code
/// that best names it (see [`Error::code`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The daemon, or the channel to it, failed the call.
    #[error("{}", .0.message())]
    Status(#[from] tonic::Status),
    /// A local file could not be read or written (a missing one is
    /// INVALID_ARGUMENT); the message names it, the `source()` is the
    /// operating system's error.
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
            Error::Status(s) => status_code(s),
            // A local path that is not there is the caller's argument
            // (clients/conformance/behaviour.json), never NOT_FOUND, which
            // is a manifest, blob or repository the registry lacks.
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                tonic::Code::InvalidArgument
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

    /// An error found on this side of the call, with the gRPC code that
    /// describes it.
    pub fn local(code: tonic::Code, message: impl Into<String>) -> Self {
        Error::Local {
            code,
            message: message.into(),
        }
    }
}

/// The code of a status from the daemon. tonic's server answers a call
/// whose `grpc-timeout` passed with CANCELLED "Timeout expired"; that is
/// the deadline, so it reads as DEADLINE_EXCEEDED, as gRPC specifies.
pub fn status_code(status: &tonic::Status) -> tonic::Code {
    match status.code() {
        tonic::Code::Cancelled if status.message() == "Timeout expired" => {
            tonic::Code::DeadlineExceeded
        }
        code => code,
    }
}

/// A code's name as gRPC writes it, `NOT_FOUND` for [`tonic::Code::NotFound`]
/// (the CLI shows it; the conformance data uses it).
pub fn code_name(code: tonic::Code) -> String {
    let camel = format!("{code:?}");
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_names_are_grpcs() {
        assert_eq!(code_name(tonic::Code::NotFound), "NOT_FOUND");
        assert_eq!(code_name(tonic::Code::Ok), "OK");
        assert_eq!(code_name(tonic::Code::DataLoss), "DATA_LOSS");
    }

    #[test]
    fn a_missing_local_path_is_invalid_argument_any_other_io_unknown() {
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(Error::io("x", missing).code(), tonic::Code::InvalidArgument);
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(Error::io("x", denied).code(), tonic::Code::Unknown);
    }
}

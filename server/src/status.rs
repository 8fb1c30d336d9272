//! The one place where OCI errors become gRPC statuses.

use satchel_oci::{Error, ErrorKind};
use tonic::{Code, Status};

/// The gRPC code for an error kind.
pub fn code(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        ErrorKind::DataLoss => Code::DataLoss,
        ErrorKind::FailedPrecondition => Code::FailedPrecondition,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::Internal => Code::Internal,
    }
}

/// Converts an OCI error into a status whose message is the whole chain.
pub fn status(err: Error) -> Status {
    Status::new(code(err.kind()), err.to_string())
}

/// An INVALID_ARGUMENT status.
pub fn invalid(message: impl Into<String>) -> Status {
    Status::invalid_argument(message)
}

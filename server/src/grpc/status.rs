//! The one place where OCI errors become gRPC statuses, and what every
//! status becomes on its way out.

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
/// A status the caller's own stream failed with, carried through the
/// service as the error's source, comes back as it was.
pub fn status(err: Error) -> Status {
    let source = std::error::Error::source(&err);
    if let Some(passed) = source.and_then(|s| s.downcast_ref::<Status>()) {
        return passed.clone();
    }
    Status::new(code(err.kind()), err.to_string())
}

/// A status the caller's stream failed with, as an error the service can
/// carry back to [`status`] unchanged.
pub fn carried(status: Status) -> Error {
    Error::new(ErrorKind::Internal, "the caller's stream failed").with_source(status)
}

/// An INVALID_ARGUMENT status.
pub fn invalid(message: impl Into<String>) -> Status {
    Status::invalid_argument(message)
}

/// The longest status message an answer carries. gRPC sends the message in
/// a header; standard clients refuse header blocks over 8 or 16 KiB, and
/// then report RESOURCE_EXHAUSTED instead of the real code.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// What a status becomes on its way out: its message cut to
/// [`MAX_MESSAGE_BYTES`], and tonic's OUT_OF_RANGE for a message over the
/// size limit turned into RESOURCE_EXHAUSTED, the code gRPC specifies for
/// it (satcheld itself never answers OUT_OF_RANGE). `None`: leave it.
pub fn outgoing(status: &Status) -> Option<Status> {
    let code = match status.code() {
        Code::OutOfRange => Code::ResourceExhausted,
        c => c,
    };
    if code == status.code() && status.message().len() <= MAX_MESSAGE_BYTES {
        return None;
    }
    let message = satchel_oci::text::cut(status.message(), MAX_MESSAGE_BYTES - 40);
    Some(Status::new(code, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_and_out_of_range_becomes_resource_exhausted() {
        let long = Status::invalid_argument("x".repeat(10_000));
        let capped = outgoing(&long).expect("capped");
        assert_eq!(capped.code(), Code::InvalidArgument);
        assert!(capped.message().len() <= MAX_MESSAGE_BYTES);
        let big = Status::out_of_range("Error, decoded message length too large");
        assert_eq!(outgoing(&big).unwrap().code(), Code::ResourceExhausted);
        assert!(outgoing(&Status::not_found("short")).is_none());
    }
}

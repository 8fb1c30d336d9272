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

/// The status for an error of `kind` that the service layer finds itself,
/// coded by the same mapping as every OCI error.
pub fn refuse(kind: ErrorKind, message: impl Into<String>) -> Status {
    status(Error::new(kind, message))
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

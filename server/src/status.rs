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

/// A tower layer applying [`outgoing`] to every status the server sends,
/// in headers (an error before any message) and in trailers (an error in
/// a stream), so the cap holds for statuses tonic makes itself too.
#[derive(Clone, Copy, Debug, Default)]
pub struct CapStatusLayer;

impl<S> tower::Layer<S> for CapStatusLayer {
    type Service = CapStatus<S>;
    fn layer(&self, inner: S) -> CapStatus<S> {
        CapStatus { inner }
    }
}

/// The service [`CapStatusLayer`] makes.
#[derive(Clone, Debug)]
pub struct CapStatus<S> {
    inner: S,
}

impl<S, ReqBody> tower::Service<http::Request<ReqBody>> for CapStatus<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let answer = self.inner.call(req);
        Box::pin(async move {
            let (mut parts, body) = answer.await?.into_parts();
            cap_headers(&mut parts.headers);
            let body = tonic::body::Body::new(CappedBody { inner: body });
            Ok(http::Response::from_parts(parts, body))
        })
    }
}

/// Rewrites the status in `headers`, if there is one to rewrite.
fn cap_headers(headers: &mut http::HeaderMap) {
    let Some(status) = Status::from_header_map(headers) else {
        return;
    };
    let Some(capped) = outgoing(&status) else {
        return;
    };
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        headers.remove(name);
    }
    if capped.add_header(headers).is_err() {
        headers.insert(
            "grpc-status",
            http::HeaderValue::from(Code::Internal as i32),
        );
    }
}

/// A response body whose trailers go through [`cap_headers`].
struct CappedBody {
    inner: tonic::body::Body,
}

impl http_body::Body for CappedBody {
    type Data = bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        polled.map(|frame| {
            frame.map(|frame| {
                frame.map(|frame| match frame.into_trailers() {
                    Ok(mut trailers) => {
                        cap_headers(&mut trailers);
                        http_body::Frame::trailers(trailers)
                    }
                    Err(frame) => frame,
                })
            })
        })
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
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

        let mut headers = http::HeaderMap::new();
        long.add_header(&mut headers).unwrap();
        cap_headers(&mut headers);
        let back = Status::from_header_map(&headers).unwrap();
        assert_eq!(back.code(), Code::InvalidArgument);
        assert!(back.message().len() <= MAX_MESSAGE_BYTES);
    }
}

//! What every answer goes through on its way out, for every service:
//!
//! - its status, in headers (an error before any message) or in stream
//!   trailers, is scrubbed of every registry credential the daemon has
//!   used (the last line of defence, behind the registry client's own
//!   scrubbing) and passes through [`crate::status::outgoing`]: messages
//!   cut to 1 KiB, OUT_OF_RANGE for an oversize message made
//!   RESOURCE_EXHAUSTED. This covers the statuses tonic makes itself.
//! - the caller's deadline (`grpc-timeout`) holds for the whole call,
//!   streamed answers included, and ends it with DEADLINE_EXCEEDED. tonic
//!   alone would answer CANCELLED "Timeout expired", and only until the
//!   first response headers.
//! - its end (the status, a passed deadline, or the caller going away) is
//!   counted for the metrics, with the time since the call arrived.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::time::{Instant, Sleep};
use tonic::{Code, Status};

use super::deadline::{ahead_of_tonic, parse_grpc_timeout};
use super::status::outgoing;

/// Scrubs secrets out of a status message.
pub type Scrub = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// The layer; see the module docs.
#[derive(Clone)]
pub struct AnswersLayer {
    scrub: Scrub,
}

impl AnswersLayer {
    /// A layer that runs every status message through `scrub`.
    pub fn new(scrub: Scrub) -> Self {
        AnswersLayer { scrub }
    }
}

impl<S> tower::Layer<S> for AnswersLayer {
    type Service = Answers<S>;
    fn layer(&self, inner: S) -> Answers<S> {
        Answers {
            inner,
            scrub: self.scrub.clone(),
        }
    }
}

/// The service [`AnswersLayer`] makes.
#[derive(Clone)]
pub struct Answers<S> {
    inner: S,
    scrub: Scrub,
}

impl<S, ReqBody> tower::Service<http::Request<ReqBody>> for Answers<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let deadline = req
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
            .map(|t| Instant::now() + ahead_of_tonic(t));
        let mut tally = Tally::new(req.uri().path());
        let answer = self.inner.call(req);
        let scrub = self.scrub.clone();
        Box::pin(async move {
            let answer = match deadline {
                Some(at) => match tokio::time::timeout_at(at, answer).await {
                    Ok(answer) => answer?,
                    Err(_) => {
                        tally.finish(Code::DeadlineExceeded);
                        return Ok(expired().into_http());
                    }
                },
                None => answer.await?,
            };
            let (mut parts, body) = answer.into_parts();
            cap_headers(&mut parts.headers, &scrub);
            if let Some(status) = Status::from_header_map(&parts.headers) {
                tally.finish(status.code());
            }
            let body = tonic::body::Body::new(AnswerBody {
                inner: body,
                scrub,
                deadline: deadline.map(|at| Box::pin(tokio::time::sleep_until(at))),
                ended: false,
                tally,
            });
            Ok(http::Response::from_parts(parts, body))
        })
    }
}

/// A call's end, counted once: by its status, or as CANCELLED when its
/// answer is dropped unfinished (the caller went away).
struct Tally {
    path: String,
    arrived: std::time::Instant,
    done: bool,
}

impl Tally {
    fn new(path: &str) -> Tally {
        Tally {
            path: path.to_string(),
            arrived: std::time::Instant::now(),
            done: false,
        }
    }

    fn finish(&mut self, code: Code) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let name = match code {
            Code::Ok => "OK".to_string(),
            other => format!("{other:?}"),
        };
        crate::metrics::record_rpc(&self.path, &name, self.arrived.elapsed());
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        self.finish(Code::Cancelled);
    }
}

fn expired() -> Status {
    Status::deadline_exceeded("the caller's deadline passed")
}

/// Rewrites the status in `headers`, if there is one to rewrite.
fn cap_headers(headers: &mut http::HeaderMap, scrub: &Scrub) {
    let Some(status) = Status::from_header_map(headers) else {
        return;
    };
    if status.code() == Code::Ok {
        return;
    }
    let scrubbed = scrub(status.message());
    let changed = scrubbed != status.message();
    let status = Status::new(status.code(), scrubbed);
    match outgoing(&status) {
        Some(capped) => set_status(headers, &capped),
        None if changed => set_status(headers, &status),
        None => {}
    }
}

fn set_status(headers: &mut http::HeaderMap, status: &Status) {
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        headers.remove(name);
    }
    if status.add_header(headers).is_err() {
        headers.insert(
            "grpc-status",
            http::HeaderValue::from(Code::Internal as i32),
        );
    }
}

/// A response body whose trailers go through [`cap_headers`], and which
/// ends with DEADLINE_EXCEEDED trailers when the caller's deadline passes
/// (dropping the handler's stream, which stops its work).
struct AnswerBody {
    inner: tonic::body::Body,
    scrub: Scrub,
    deadline: Option<Pin<Box<Sleep>>>,
    ended: bool,
    tally: Tally,
}

impl http_body::Body for AnswerBody {
    type Data = bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let passed = self
            .deadline
            .as_mut()
            .is_some_and(|d| d.as_mut().poll(cx).is_ready());
        if passed {
            self.ended = true;
            self.tally.finish(Code::DeadlineExceeded);
            self.inner = tonic::body::Body::empty();
            let mut trailers = http::HeaderMap::new();
            set_status(&mut trailers, &expired());
            return Poll::Ready(Some(Ok(http_body::Frame::trailers(trailers))));
        }
        let scrub = self.scrub.clone();
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let tally = &mut this.tally;
        polled.map(|frame| {
            frame.map(|frame| {
                frame.map(|frame| match frame.into_trailers() {
                    Ok(mut trailers) => {
                        cap_headers(&mut trailers, &scrub);
                        let code =
                            Status::from_header_map(&trailers).map_or(Code::Ok, |s| s.code());
                        tally.finish(code);
                        http_body::Frame::trailers(trailers)
                    }
                    Err(frame) => frame,
                })
            })
        })
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_in_headers_are_capped() {
        let mut headers = http::HeaderMap::new();
        Status::invalid_argument("x".repeat(10_000))
            .add_header(&mut headers)
            .unwrap();
        let scrub: Scrub = Arc::new(|m: &str| m.replace("hunter2", "[redacted]"));
        cap_headers(&mut headers, &scrub);
        let back = Status::from_header_map(&headers).unwrap();
        assert_eq!(back.code(), Code::InvalidArgument);
        assert!(back.message().len() <= super::super::status::MAX_MESSAGE_BYTES);

        let mut headers = http::HeaderMap::new();
        Status::not_found("no hunter2 here")
            .add_header(&mut headers)
            .unwrap();
        cap_headers(&mut headers, &scrub);
        let back = Status::from_header_map(&headers).unwrap();
        assert_eq!(back.message(), "no [redacted] here");
    }
}

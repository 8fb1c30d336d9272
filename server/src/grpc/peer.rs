//! Who is calling, learned from the connection: the peer's uid on the Unix
//! socket (`SO_PEERCRED`, which tonic puts in the request), else a remote
//! caller; every call runs inside [`crate::callers::scope`]. And whether
//! it may: the bearer token of [`crate::access`], checked by an
//! interceptor on every service but health.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::codegen::http;
use tonic::transport::server::UdsConnectInfo;
use tonic::{Request, Status};

use crate::access::TokenCheck;
use crate::callers::{scope, Caller, LayoutRoots};

/// The caller of a connection, from what tonic put in the request.
fn caller_of(extensions: &http::Extensions) -> Caller {
    match extensions.get::<UdsConnectInfo>() {
        Some(info) => Caller::local(info.peer_cred.map(|c| c.uid())),
        None => Caller::Remote,
    }
}

/// Runs every call inside a scope naming its caller.
#[derive(Clone, Debug)]
pub struct CallerLayer {
    roots: Arc<LayoutRoots>,
}

impl CallerLayer {
    /// Calls will be bound by `roots`.
    pub fn new(roots: LayoutRoots) -> Self {
        CallerLayer {
            roots: Arc::new(roots),
        }
    }
}

impl<S> tower::Layer<S> for CallerLayer {
    type Service = Scoped<S>;

    fn layer(&self, inner: S) -> Scoped<S> {
        Scoped {
            inner,
            roots: self.roots.clone(),
        }
    }
}

/// A service whose calls run inside a caller scope.
#[derive(Clone, Debug)]
pub struct Scoped<S> {
    inner: S,
    roots: Arc<LayoutRoots>,
}

impl<S, B> tower::Service<http::Request<B>> for Scoped<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let caller = caller_of(request.extensions());
        Box::pin(scope(caller, self.roots.clone(), self.inner.call(request)))
    }
}

/// The bearer-token check as a tonic interceptor.
#[derive(Clone, Debug)]
pub struct Guard(pub TokenCheck);

impl tonic::service::Interceptor for Guard {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let header = request.metadata().get("authorization");
        if self.0.allows(header.and_then(|v| v.to_str().ok())) {
            Ok(request)
        } else {
            Err(Status::unauthenticated(
                "a valid bearer token is required (satchel --token-file)",
            ))
        }
    }
}

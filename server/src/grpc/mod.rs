//! The gRPC layer: the only code that names tonic or prost. It decodes
//! each request, calls the service core ([`crate::service`]), encodes the
//! answer and maps errors in one place ([`status`]).
//!
//! - [`serve`]: the API, health and reflection on a listener, with TLS and
//!   the layers every call passes: [`peer`] (who is calling, and the bearer
//!   token of [`crate::access`]), [`answers`] (scrubbed, capped statuses; the
//!   caller's deadline for the whole call, read by [`deadline`]).
//! - [`handlers`]: one short handler per RPC.
//! - [`convert`]: proto messages to core types and back.
//! - [`framing`]: file bytes as messages, both ways; progress.
//! - [`status`]: OCI error kinds to gRPC codes; what a status becomes on
//!   its way out.

pub mod answers;
pub mod convert;
pub mod deadline;
pub mod framing;
pub mod handlers;
pub mod peer;
pub mod status;

use std::future::Future;
use std::sync::Arc;

use satchel_proto::v1::satchel_service_server::SatchelServiceServer;
use satchel_proto::MAX_MESSAGE;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::access::TokenCheck;
use crate::config::Config;
use crate::daemon::Daemon;
use crate::handoff::Handoff;
use crate::listener::{FilesSocket, Listener};

/// How many bytes one stream may have in flight towards the daemon before
/// it acknowledges them (HTTP/2's default is 64 KiB, a round trip per 64
/// KiB of a push). Bounds what one pushing caller makes the daemon buffer.
const STREAM_WINDOW: u32 = 2 << 20;
/// The same for all the streams of one connection together.
const CONNECTION_WINDOW: u32 = 4 << 20;
/// The largest frame the daemon accepts (HTTP/2's default is 16 KiB, a
/// frame and a write per 16 KiB). Larger frames cost the daemon memory:
/// 1 MiB frames took a 1 GiB push's peak RSS from 33 to 58 MB, 256 KiB
/// ones to 40 MB. (Pulls are framed by what the client accepts.)
const MAX_FRAME: u32 = 256 << 10;

/// The daemon's HTTP/2 settings: fixed windows rather than adaptive ones
/// (a local socket has no delay worth measuring), larger frames.
fn http2_tuned(server: Server) -> Server {
    server
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME)
}

/// `server` with the listener's TLS, if the config has some.
fn with_tls(server: Server, config: &Config) -> anyhow::Result<Server> {
    let Some(tls) = &config.tls else {
        return Ok(server);
    };
    let mut tls_config =
        ServerTlsConfig::new().identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem));
    if let Some(ca) = &tls.client_ca_pem {
        tls_config = tls_config.client_ca_root(Certificate::from_pem(ca));
    }
    Ok(server.tls_config(tls_config)?)
}

/// Serves grpc.health.v1 alone, in plain text, on `addr` (`--health-listen`),
/// for probes that cannot speak TLS or carry a token, such as Kubernetes's
/// `grpc` probes: it answers only whether the daemon serves.
async fn serve_health<H: tonic_health::pb::health_server::Health>(
    addr: std::net::SocketAddr,
    health: tonic_health::pb::health_server::HealthServer<H>,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for health checks on {addr}"))?;
    tracing::info!(address = %addr, "serving grpc.health.v1 in plain text");
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(
        Server::builder()
            .add_service(health)
            .serve_with_incoming(incoming),
    );
    Ok(())
}

/// `shutdown`, followed by what stopping takes: health turns NOT_SERVING
/// (so probes and balancers look elsewhere) and the returned receiver
/// turns true (so endless streams end).
fn stopping(
    shutdown: impl Future<Output = ()> + Send,
    health: tonic_health::server::HealthReporter,
) -> (
    impl Future<Output = ()> + Send,
    tokio::sync::watch::Receiver<bool>,
) {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        health
            .set_not_serving::<SatchelServiceServer<handlers::Api>>()
            .await;
        let _ = tx.send(true);
    };
    (shutdown, rx)
}

/// Serves the Satchel API, health and reflection on `listener` until
/// `shutdown` resolves; then stops accepting, ends watches (UNAVAILABLE), lets calls in flight finish
/// and returns.
pub async fn serve(
    listener: Listener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let daemon = Daemon::start(&config)?;
    let scrub: answers::Scrub = {
        let registry = daemon.registry.clone();
        std::sync::Arc::new(move |message: &str| registry.scrub_any(message))
    };
    let check = peer::Guard(TokenCheck::new(
        config.auth_token.as_ref().map(|t| t.expose()),
    ));
    let handoff = match &listener {
        Listener::Unix(_, _, Some(_)) => Some(Arc::new(Handoff::default())),
        _ => None,
    };
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<SatchelServiceServer<handlers::Api>>()
        .await;
    let (shutdown, stopping) = stopping(shutdown, health_reporter);
    let api = handlers::Api::new(daemon.service.clone(), handoff.clone(), stopping);
    let api = SatchelServiceServer::new(api)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(satchel_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    if let Some(addr) = config.health_listen {
        serve_health(addr, health.clone()).await?;
    }
    let router = with_tls(http2_tuned(Server::builder()), &config)?
        .layer(peer::CallerLayer::new(daemon.roots.clone()))
        .layer(answers::AnswersLayer::new(scrub))
        .add_service(health)
        .add_service(InterceptedService::new(
            reflection().build_v1()?,
            check.clone(),
        ))
        .add_service(InterceptedService::new(
            reflection().build_v1alpha()?,
            check.clone(),
        ))
        .add_service(InterceptedService::new(api, check));
    tracing::info!(address = %listener.describe(), "satcheld serving");
    match listener {
        Listener::Unix(l, guard, files) => {
            // The files socket is served while the gRPC socket is.
            let files_guard = files.map(|FilesSocket(files, guard)| {
                if let Some(handoff) = &handoff {
                    handoff.serve(files);
                }
                guard
            });
            let incoming = tokio_stream::wrappers::UnixListenerStream::new(l);
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await?;
            drop((guard, files_guard));
        }
        Listener::Tcp(l) => {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(l);
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await?;
        }
    }
    tracing::info!("satcheld stopped");
    // The daemon (and its spool) goes only once every call has finished.
    drop(daemon);
    Ok(())
}

//! satcheld: the Satchel daemon.
//!
//! - [`run`] serves the API on a listener until a shutdown future resolves;
//!   the binary passes SIGTERM/SIGINT, tests pass a oneshot.
//! - [`listener`]: binding Unix and TCP listeners, socket modes.
//! - [`api`]: the `satchel.v1.SatchelService` gRPC service, a thin layer over `satchel_oci`.
//! - [`status`]: the one mapping from OCI errors to gRPC status codes.
//! - [`access`]: who may call: the bearer-token check (health stays open).
//! - [`config`]: the daemon's settings and their TOML file.
//! - [`credentials`]: docker `config.json` and credential helpers: lookup,
//!   login storage, logout, listing.

pub mod access;
pub mod api;
pub mod config;
pub mod credentials;
pub mod listener;
pub mod status;

use std::future::Future;
use std::sync::Arc;

use satchel_oci::registry::RegistryClient;
use satchel_proto::v1::satchel_service_server::SatchelServiceServer;

pub use config::Config;
pub use listener::Listener;

/// Where upload chunks are spooled for resuming: `<cache>/spool`, else a
/// private directory under the system's temporary directory. Leftovers of
/// an earlier run are removed.
fn spool_dir(cache: Option<&std::path::Path>) -> anyhow::Result<std::path::PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = match cache {
        Some(cache) => cache.join("spool"),
        None => std::env::temp_dir().join(format!("satcheld-spool-{}", std::process::id())),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    for entry in std::fs::read_dir(&dir)?.flatten() {
        if entry.file_name().to_string_lossy().starts_with("spool-") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(dir)
}

/// Messages may carry a 1 MiB chunk or a 4 MiB manifest plus framing.
const MAX_MESSAGE: usize = 8 << 20;

/// Serves the Satchel API, health and reflection on `listener` until
/// `shutdown` resolves; then stops accepting, lets calls in flight finish
/// and returns.
pub async fn run(
    listener: Listener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let credentials = Arc::new(credentials::DockerCredentials::new(config.docker_config));
    let mut registry_options = config.registry;
    if registry_options.spool_dir.is_none() {
        registry_options.spool_dir =
            Some(spool_dir(config.cache.as_ref().map(|(d, _)| d.as_path()))?);
    }
    let registry = Arc::new(RegistryClient::new(credentials.clone(), registry_options)?);
    let check = access::TokenCheck::new(config.auth_token.as_ref().map(|t| t.expose()));
    let cache = match &config.cache {
        Some((dir, max)) => Some(Arc::new(satchel_oci::content::ContentStore::open(
            dir, *max,
        )?)),
        None => None,
    };
    let api = api::Api::new(registry, credentials, cache)
        .with_concurrency(config.concurrency.unwrap_or(api::DEFAULT_CONCURRENCY));
    let api = SatchelServiceServer::new(api)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let api = tonic::service::interceptor::InterceptedService::new(api, check.clone());

    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<SatchelServiceServer<api::Api>>()
        .await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(satchel_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = tonic::service::interceptor::InterceptedService::new(
        reflection().build_v1()?,
        check.clone(),
    );
    let reflection_v1alpha =
        tonic::service::interceptor::InterceptedService::new(reflection().build_v1alpha()?, check);

    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = &config.tls {
        let mut tls_config = tonic::transport::ServerTlsConfig::new().identity(
            tonic::transport::Identity::from_pem(&tls.cert_pem, &tls.key_pem),
        );
        if let Some(ca) = &tls.client_ca_pem {
            tls_config = tls_config.client_ca_root(tonic::transport::Certificate::from_pem(ca));
        }
        server = server.tls_config(tls_config)?;
    }
    let router = server
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(api);
    tracing::info!(address = %listener.describe(), "satcheld serving");
    match listener {
        Listener::Unix(l, guard) => {
            let incoming = tokio_stream::wrappers::UnixListenerStream::new(l);
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await?;
            drop(guard);
        }
        Listener::Tcp(l) => {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(l);
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await?;
        }
    }
    tracing::info!("satcheld stopped");
    Ok(())
}

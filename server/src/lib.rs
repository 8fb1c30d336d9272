//! satcheld: the Satchel daemon.
//!
//! - [`run`] serves the API on a listener until a shutdown future resolves;
//!   the binary passes SIGTERM/SIGINT, tests pass a oneshot.
//! - [`listener`]: binding Unix and TCP listeners, socket modes.
//! - [`api`]: the `satchel.v1.SatchelService` gRPC service, a thin layer over `satchel_oci`.
//! - [`status`]: the one mapping from OCI errors to gRPC status codes.
//! - [`answers`]: what every answer passes on its way out: capped status
//!   messages, the caller's deadline for the whole call.
//! - [`task_stream`]: streamed answers made by a task that ends with them.
//! - [`framing`]: file bytes as gRPC messages, both ways.
//! - [`access`]: who may call: the bearer-token check (health stays open).
//! - [`callers`]: who is calling (`SO_PEERCRED`) and which OCI layouts they
//!   may name (`layout_roots`).
//! - [`spool`]: each daemon's own spool directory, removed when it stops;
//!   spools of daemons that are gone are removed at start.
//! - [`config`]: the daemon's settings and their TOML file.
//! - [`credentials`]: docker `config.json` and credential helpers: lookup,
//!   login storage, logout, listing.

pub mod access;
pub mod answers;
pub mod api;
pub mod callers;
pub mod config;
pub mod credentials;
pub mod framing;
pub mod listener;
pub mod spool;
pub mod status;
pub mod task_stream;

use std::future::Future;
use std::sync::Arc;

use satchel_oci::registry::RegistryClient;
use satchel_proto::v1::satchel_service_server::SatchelServiceServer;

pub use config::Config;
pub use listener::Listener;

use satchel_proto::MAX_MESSAGE;

/// Serves the Satchel API, health and reflection on `listener` until
/// `shutdown` resolves; then stops accepting, lets calls in flight finish
/// and returns.
pub async fn run(
    listener: Listener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let credentials = Arc::new(credentials::DockerCredentials::new(config.docker_config));
    let roots = callers::LayoutRoots::new(&config.layout_roots)?;
    let cache = match &config.cache {
        Some((dir, max)) => {
            let expiry = config
                .upload_expiry
                .unwrap_or(satchel_oci::content::UPLOAD_EXPIRY);
            let store =
                satchel_oci::content::ContentStore::open(dir, *max)?.with_upload_expiry(expiry);
            let store = Arc::new(store);
            tokio::spawn(sweep(Arc::downgrade(&store)));
            Some(store)
        }
        None => None,
    };
    let mut registry_options = config.registry;
    // Dropped when `run` returns, which removes this daemon's spool.
    let mut _spool = None;
    if registry_options.spool_dir.is_none() {
        let parent = spool::parent_dir(config.cache.as_ref().map(|(d, _)| d.as_path()));
        let own = spool::Spool::create(&parent)?;
        registry_options.spool_dir = Some(own.dir().to_path_buf());
        _spool = Some(own);
    }
    let hash_first_below = registry_options
        .monolithic_max
        .unwrap_or(satchel_oci::registry::MONOLITHIC_MAX);
    let registry = Arc::new(RegistryClient::new(credentials.clone(), registry_options)?);
    let scrub: answers::Scrub = {
        let registry = registry.clone();
        Arc::new(move |message: &str| registry.scrub_any(message))
    };
    let check = access::TokenCheck::new(config.auth_token.as_ref().map(|t| t.expose()));
    let api = api::Api::new(registry, credentials, cache)
        .with_concurrency(config.concurrency.unwrap_or(api::DEFAULT_CONCURRENCY))
        .with_hash_first_below(hash_first_below);
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
        .layer(callers::CallerLayer::new(roots))
        .layer(answers::AnswersLayer::new(scrub))
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

/// Sweeps the content store's abandoned ingest files every quarter of the
/// expiry (between one second and five minutes) while the store lives.
async fn sweep(store: std::sync::Weak<satchel_oci::content::ContentStore>) {
    let every = match store.upgrade() {
        Some(s) => (s.upload_expiry() / 4).clamp(
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(300),
        ),
        None => return,
    };
    loop {
        tokio::time::sleep(every).await;
        let Some(store) = store.upgrade() else { return };
        let kept = tokio::task::spawn_blocking(move || store.sweep()).await;
        tracing::debug!(ingest_bytes = ?kept.ok(), "swept the content store");
    }
}

//! satcheld: the Satchel daemon.
//!
//! - [`run`] serves the API on a listener until a shutdown future resolves;
//!   the binary passes SIGTERM/SIGINT, tests pass a oneshot.
//! - [`listener`]: binding Unix and TCP listeners, socket modes.
//! - [`api`]: the `satchel.v1.Satchel` service, a thin layer over `satchel_oci`.
//! - [`status`]: the one mapping from OCI errors to gRPC status codes.
//! - [`config`]: the daemon's settings and their TOML file.
//! - [`credentials`]: docker `config.json` as a credential source.

pub mod api;
pub mod config;
pub mod credentials;
pub mod listener;
pub mod status;

use std::future::Future;
use std::sync::Arc;

use satchel_oci::registry::RegistryClient;
use satchel_proto::v1::satchel_server::SatchelServer;

pub use config::Config;
pub use listener::Listener;

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
    let credentials = Arc::new(credentials::DockerConfigFile::new(config.docker_config));
    let registry = Arc::new(RegistryClient::new(credentials, config.registry)?);
    let api = SatchelServer::new(api::Api::new(registry))
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);

    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<SatchelServer<api::Api>>()
        .await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(satchel_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let router = tonic::transport::Server::builder()
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

//! A small Rust client for satcheld, used by the `satchel` CLI and usable by
//! other Rust services: [`connect`] (a Unix socket or TCP, with TLS, mTLS
//! and a bearer token through [`Daemon`]) gives the generated tonic client;
//! [`push`], [`attach`] and [`pull`] move files to and from disk over it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use satchel_client::{pb, LocalFile};
//!
//! let mut client = satchel_client::connect("unix:///run/user/1000/satchel/satcheld.sock").await?;
//! let image = pb::Target { reference: "localhost:5000/app:v1".into(), plain_http: true, ..Default::default() };
//! let sbom = LocalFile::new("sbom.cdx.json", "application/vnd.cyclonedx+json", false).await?;
//! let spec = pb::ArtifactSpec { artifact_type: "application/vnd.cyclonedx+json".into(), ..Default::default() };
//! let attached = satchel_client::attach(&mut client, image.clone(), spec, vec![sbom], |_| {}).await?;
//! let found = client.discover(pb::DiscoverRequest { subject: Some(image), ..Default::default() }).await?;
//! let request = pb::PullRequest { target: Some(pb::Target { reference: attached.reference, plain_http: true, ..Default::default() }), ..Default::default() };
//! let pulled = satchel_client::pull(&mut client, request, "out".as_ref(), |_| {}).await?;
//! println!("{} referrers; pulled {} files", found.into_inner().referrers.len(), pulled.files.len());
//! # Ok(()) }
//! ```

use std::path::PathBuf;

use anyhow::{bail, Context};
use hyper_util::rt::TokioIo;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Uri};

pub use satchel_proto::v1 as pb;

mod error;
pub mod title;
mod transfer;
pub mod write;

pub use error::{status_code, Error};
pub use title::{check_title, check_titles, safe_path};
pub use tonic::{Code, Status};
pub use transfer::{
    attach, pull, push, sha256_file, LocalFile, PullEvent, Pulled, PulledFile, DEFAULT_MEDIA_TYPE,
    HASH_FIRST_BELOW,
};

/// A connected client.
pub type Client =
    pb::satchel_service_client::SatchelServiceClient<InterceptedService<Channel, CallMetadata>>;

/// How long connecting to the daemon may take.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How to reach a daemon beyond its address: TLS material and a token.
#[derive(Clone, Default)]
pub struct ConnectOptions {
    /// Extra roots (PEM) to trust for an `https://` daemon; the system's
    /// roots are used too.
    pub tls_ca_pem: Option<Vec<u8>>,
    /// A client certificate and key (PEM) for a daemon that wants mTLS.
    pub identity_pem: Option<(Vec<u8>, Vec<u8>)>,
    /// The bearer token the daemon requires.
    pub token: Option<String>,
    /// The deadline of every call, sent to the daemon as `grpc-timeout`
    /// (the daemon gives up then too) and enforced here; `None` waits as
    /// long as the daemon works.
    pub timeout: Option<std::time::Duration>,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("tls_ca", &self.tls_ca_pem.is_some())
            .field("identity", &self.identity_pem.is_some())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A daemon to connect to.
#[derive(Debug, Clone)]
pub struct Daemon {
    /// `unix:///path`, `http://host:port`, `https://host:port` or `host:port`.
    pub addr: String,
    /// TLS and token settings.
    pub options: ConnectOptions,
}

impl Daemon {
    /// Connects.
    pub async fn connect(&self) -> anyhow::Result<Client> {
        connect_with(&self.addr, &self.options).await
    }
}

/// Adds `authorization: Bearer <token>` to every call when a token is set,
/// and the call's deadline when there is one.
#[derive(Clone)]
pub struct CallMetadata {
    token: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    timeout: Option<std::time::Duration>,
}

impl tonic::service::Interceptor for CallMetadata {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.token {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        if let Some(timeout) = self.timeout {
            request.set_timeout(timeout);
        }
        Ok(request)
    }
}

use satchel_proto::MAX_MESSAGE;

/// The address clients use when none is given: the `SATCHEL_ADDR`
/// environment variable, else the daemon's default socket.
pub fn default_addr() -> String {
    std::env::var("SATCHEL_ADDR")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("unix://{}", satchel_proto::default_socket_path().display()))
}

/// Connects to satcheld at `addr`: `unix:///path/to.sock`, `http://host:port`
/// or `host:port`, without TLS settings or token.
pub async fn connect(addr: &str) -> anyhow::Result<Client> {
    connect_with(addr, &ConnectOptions::default()).await
}

/// Connects to satcheld at `addr` with `options`; `https://` addresses use
/// TLS.
pub async fn connect_with(addr: &str, options: &ConnectOptions) -> anyhow::Result<Client> {
    let channel = if let Some(path) = addr.strip_prefix("unix://") {
        let path = PathBuf::from(path);
        if !path.exists() {
            bail!(
                "cannot connect to satcheld: no socket at {} (is the daemon running? set --addr or SATCHEL_ADDR)",
                path.display()
            );
        }
        // The URI is a placeholder: the connector ignores it.
        Endpoint::try_from("http://satcheld.local")?
            .connect_timeout(CONNECT_TIMEOUT)
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }))
            .await
            .with_context(|| format!("cannot connect to satcheld at {addr}"))?
    } else {
        let uri = if addr.contains("://") {
            addr.to_string()
        } else {
            format!("http://{addr}")
        };
        let mut endpoint = Endpoint::try_from(uri)
            .with_context(|| format!("bad daemon address {addr:?}"))?
            .connect_timeout(CONNECT_TIMEOUT);
        if addr.starts_with("https://") {
            let mut tls = ClientTlsConfig::new().with_native_roots();
            if let Some(ca) = &options.tls_ca_pem {
                tls = tls.ca_certificate(Certificate::from_pem(ca));
            }
            if let Some((cert, key)) = &options.identity_pem {
                tls = tls.identity(Identity::from_pem(cert, key));
            }
            endpoint = endpoint.tls_config(tls)?;
        }
        endpoint
            .connect()
            .await
            .with_context(|| format!("cannot connect to satcheld at {addr}"))?
    };
    let token = match &options.token {
        Some(t) => Some(
            format!("Bearer {t}")
                .parse()
                .context("the token has characters a header cannot carry")?,
        ),
        None => None,
    };
    Ok(
        pb::satchel_service_client::SatchelServiceClient::with_interceptor(
            channel,
            CallMetadata {
                token,
                timeout: options.timeout,
            },
        )
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE),
    )
}

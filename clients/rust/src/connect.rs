//! Reaching satcheld: an address ([`resolve_addr`]), TLS and a token
//! ([`ConnectOptions`]), and the [`Client`] that [`connect_with`] hands back.

use std::path::PathBuf;

use anyhow::{bail, Context};
use hyper_util::rt::TokioIo;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, Uri};

use crate::client::{CallMetadata, Client, RECEIVE_LIMIT};

/// How long connecting to the daemon may take.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How many bytes of one answer may be in flight from the daemon before
/// this client acknowledges them (HTTP/2's default is 64 KiB: a round trip
/// per 64 KiB of a pull).
const STREAM_WINDOW: u32 = 8 << 20;
/// The same for all the calls on one connection together.
const CONNECTION_WINDOW: u32 = 16 << 20;
/// The largest frame this client accepts: a whole chunk message fits in one
/// (HTTP/2's default is 16 KiB).
const MAX_FRAME: u32 = (satchel_proto::MAX_CHUNK + (64 << 10)) as u32;

/// An endpoint with this client's HTTP/2 settings: fixed, large windows
/// and large frames.
fn tuned(endpoint: Endpoint) -> Endpoint {
    endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME)
}

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

/// The address clients use when none is given: the `SATCHEL_ADDR`
/// environment variable, else the daemon's default socket.
pub fn default_addr() -> String {
    resolve_addr("", std::env::var("SATCHEL_ADDR").ok().as_deref())
}

/// The address `addr` means, as every Satchel client reads it
/// (`clients/conformance/behaviour.json`): empty is `satchel_addr` (the
/// value of `$SATCHEL_ADDR`) when that is set and not empty, else the
/// daemon's default socket; a bare absolute path is a Unix socket; anything
/// else stays as given.
pub fn resolve_addr(addr: &str, satchel_addr: Option<&str>) -> String {
    if addr.is_empty() {
        return match satchel_addr.filter(|s| !s.is_empty()) {
            Some(env) => resolve_addr(env, None),
            None => format!("unix://{}", satchel_proto::default_socket_path().display()),
        };
    }
    if addr.starts_with('/') {
        return format!("unix://{addr}");
    }
    addr.to_string()
}

/// Connects to satcheld at `addr`: `unix:///path/to.sock` (or a bare
/// `/path/to.sock`), `http://host:port` or `host:port`, without TLS settings
/// or token; `""` means [`default_addr`].
pub async fn connect(addr: &str) -> anyhow::Result<Client> {
    connect_with(addr, &ConnectOptions::default()).await
}

/// Connects to satcheld at `addr` with `options`; `https://` addresses use
/// TLS.
pub async fn connect_with(addr: &str, options: &ConnectOptions) -> anyhow::Result<Client> {
    let addr = &resolve_addr(addr, std::env::var("SATCHEL_ADDR").ok().as_deref());
    let channel = if let Some(path) = addr.strip_prefix("unix://") {
        let path = PathBuf::from(path);
        if !path.exists() {
            bail!(
                "cannot connect to satcheld: no socket at {} (is the daemon running? set --addr or SATCHEL_ADDR)",
                path.display()
            );
        }
        // The URI is a placeholder: the connector ignores it.
        tuned(Endpoint::try_from("http://satcheld.local")?)
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
        let mut endpoint =
            tuned(Endpoint::try_from(uri).with_context(|| format!("bad daemon address {addr:?}"))?);
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
    let metadata = CallMetadata {
        token,
        timeout: options.timeout,
    };
    let client = Client::new(channel, metadata, RECEIVE_LIMIT);
    Ok(match addr.strip_prefix("unix://") {
        Some(path) => client.on_unix_socket(std::path::Path::new(path)),
        None => client,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_address_is_satchel_addr_else_the_default_socket() {
        let socket = format!("unix://{}", satchel_proto::default_socket_path().display());
        assert_eq!(resolve_addr("", None), socket);
        assert_eq!(resolve_addr("", Some("")), socket);
        assert_eq!(resolve_addr("", Some("host:1")), "host:1");
        assert_eq!(resolve_addr("", Some("/run/s.sock")), "unix:///run/s.sock");
    }

    #[test]
    fn a_bare_absolute_path_is_a_unix_socket() {
        assert_eq!(resolve_addr("/tmp/s.sock", None), "unix:///tmp/s.sock");
        assert_eq!(resolve_addr("unix:///tmp/s", Some("x:1")), "unix:///tmp/s");
        assert_eq!(resolve_addr("https://h:1", None), "https://h:1");
        assert_eq!(resolve_addr("h:1", None), "h:1");
    }
}

//! A small Rust client for satcheld, used by the `satchel` CLI and usable by
//! other Rust services.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let mut client = satchel_client::connect("unix:///run/user/1000/satchel/satcheld.sock").await?;
//! let target = satchel_client::pb::Target { reference: "localhost:5000/app:v1".into(), plain_http: true, ..Default::default() };
//! let resolved = client.resolve(satchel_client::pb::ResolveRequest { target: Some(target) }).await?;
//! println!("{}", resolved.into_inner().reference);
//! # Ok(()) }
//! ```

use std::path::PathBuf;

use anyhow::{bail, Context};
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

pub use satchel_proto::v1 as pb;

/// A connected client.
pub type Client = pb::satchel_client::SatchelClient<Channel>;

/// Messages may carry a 1 MiB chunk or a 4 MiB manifest plus framing.
const MAX_MESSAGE: usize = 8 << 20;

/// The address clients use when none is given: the `SATCHEL_ADDR`
/// environment variable, else the daemon's default socket.
pub fn default_addr() -> String {
    std::env::var("SATCHEL_ADDR")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("unix://{}", satchel_proto::default_socket_path().display()))
}

/// Connects to satcheld at `addr`: `unix:///path/to.sock`, `http://host:port`
/// or `host:port`.
pub async fn connect(addr: &str) -> anyhow::Result<Client> {
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
        Endpoint::try_from(uri)
            .with_context(|| format!("bad daemon address {addr:?}"))?
            .connect()
            .await
            .with_context(|| format!("cannot connect to satcheld at {addr}"))?
    };
    Ok(pb::satchel_client::SatchelClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE))
}

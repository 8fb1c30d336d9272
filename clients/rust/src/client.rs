//! [`Client`]: the generated tonic client, plus what this crate learns
//! about the daemon once per client, its [`Client::server_info`].

use std::sync::Arc;

use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::Code;

use crate::{pb, Error};

/// The generated client under [`Client`]: every RPC of `satchel.v1`.
pub type Generated =
    pb::satchel_service_client::SatchelServiceClient<InterceptedService<Channel, CallMetadata>>;

/// The largest message this client receives (and sends): the shared
/// `client_receive_limit_bytes` of `clients/conformance/limits.json`, at
/// least the daemon's `max_message_bytes`.
pub const RECEIVE_LIMIT: usize = satchel_proto::MAX_MESSAGE;

/// Files smaller than this are hashed before a push when the daemon does
/// not say otherwise: the fallback for [`pb::ServerInfoResponse`]'s
/// `hash_first_below`, used only with a daemon that predates ServerInfo
/// (`clients/conformance/limits.json`, `server_info_defaults`). A daemon
/// that answers ServerInfo sets the threshold (its `upload_monolithic_max`).
pub const HASH_FIRST_BELOW: u64 = 256 << 20;

/// The fallback for `max_chunk_bytes` (see [`HASH_FIRST_BELOW`]).
pub const FALLBACK_CHUNK_BYTES: u32 = 1 << 20;

/// The fallback for `max_message_bytes` (see [`HASH_FIRST_BELOW`]).
pub const FALLBACK_MESSAGE_BYTES: u32 = 8 << 20;

/// What this client assumes of a daemon too old for ServerInfo.
pub fn fallback_server_info() -> pb::ServerInfoResponse {
    pb::ServerInfoResponse {
        version: String::new(),
        max_chunk_bytes: FALLBACK_CHUNK_BYTES,
        max_message_bytes: FALLBACK_MESSAGE_BYTES,
        hash_first_below: HASH_FIRST_BELOW,
        content_store: false,
    }
}

/// A connected client. It dereferences to the generated client
/// ([`Generated`]), so `client.discover(...)` and every other RPC are
/// called on it directly; clones share one connection and one
/// [`Client::server_info`].
#[derive(Clone)]
pub struct Client {
    rpc: Generated,
    /// The daemon's ServerInfo, asked once, on first use: the chunk size
    /// and hash-first threshold of every push.
    info: Arc<tokio::sync::OnceCell<pb::ServerInfoResponse>>,
    /// The daemon's files socket, for the local file handoff of pulls:
    /// set when connected over a Unix socket, unless turned off.
    files_socket: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server_info", &self.info.get())
            .field("files_socket", &self.files_socket)
            .finish_non_exhaustive()
    }
}

impl std::ops::Deref for Client {
    type Target = Generated;
    fn deref(&self) -> &Generated {
        &self.rpc
    }
}

impl std::ops::DerefMut for Client {
    fn deref_mut(&mut self) -> &mut Generated {
        &mut self.rpc
    }
}

impl Client {
    pub(crate) fn new(channel: Channel, metadata: CallMetadata, receive_limit: usize) -> Client {
        let rpc =
            pb::satchel_service_client::SatchelServiceClient::with_interceptor(channel, metadata)
                .max_decoding_message_size(receive_limit)
                .max_encoding_message_size(receive_limit);
        Client {
            rpc,
            info: Arc::default(),
            files_socket: None,
        }
    }

    /// Connected over the Unix socket at `socket`: pulls may use the local
    /// file handoff through the files socket beside it.
    pub(crate) fn on_unix_socket(mut self, socket: &std::path::Path) -> Self {
        let mut files = socket.as_os_str().to_owned();
        files.push(".files");
        self.files_socket = Some(files.into());
        self
    }

    /// The same client with the local file handoff off: pulls receive
    /// every byte over the gRPC stream, even on a Unix socket.
    pub fn without_local_handoff(mut self) -> Self {
        self.files_socket = None;
        self
    }

    /// Where the daemon's files socket is, if pulls may use the local file
    /// handoff ([`crate::pull`]).
    pub fn files_socket(&self) -> Option<&std::path::Path> {
        self.files_socket.as_deref()
    }

    /// The same client with another limit on the messages it sends (by
    /// default [`satchel_proto::MAX_MESSAGE`]), as the generated client's
    /// method of that name.
    pub fn max_encoding_message_size(mut self, limit: usize) -> Self {
        self.rpc = self.rpc.max_encoding_message_size(limit);
        self
    }

    /// The same client with another limit on the messages it receives (by
    /// default [`satchel_proto::MAX_MESSAGE`], the shared
    /// `client_receive_limit_bytes`).
    pub fn max_decoding_message_size(mut self, limit: usize) -> Self {
        self.rpc = self.rpc.max_decoding_message_size(limit);
        self
    }

    /// The daemon's version and limits, asked on first use and kept: the
    /// largest chunk and message it takes and the size below which a push
    /// hashes a file first. A daemon without the RPC (UNIMPLEMENTED) gets
    /// [`fallback_server_info`]; another failure is returned and asked
    /// again next time. (The raw RPC stays reachable as
    /// `(*client).server_info(...)`.)
    pub async fn server_info(&mut self) -> Result<pb::ServerInfoResponse, Error> {
        let Client { rpc, info, .. } = self;
        let info = info
            .get_or_try_init(|| async {
                let answer = rpc.server_info(pb::ServerInfoRequest {}).await;
                from_answer(answer.map(tonic::Response::into_inner))
            })
            .await?;
        Ok(info.clone())
    }

    /// How many bytes one chunk of a push or upload carries: the daemon's
    /// `max_chunk_bytes`, at most half this client's message limit.
    pub(crate) async fn chunk_bytes(&mut self) -> Result<usize, Error> {
        let info = self.server_info().await?;
        Ok((info.max_chunk_bytes as usize).min(satchel_proto::MAX_MESSAGE / 2))
    }
}

/// The ServerInfo this client works with, given the daemon's answer: the
/// fallback for UNIMPLEMENTED, and the fallback's value for a limit the
/// daemon left at zero.
fn from_answer(
    answer: Result<pb::ServerInfoResponse, tonic::Status>,
) -> Result<pb::ServerInfoResponse, Error> {
    let fallback = fallback_server_info();
    match answer {
        Ok(mut info) => {
            if info.max_chunk_bytes == 0 {
                info.max_chunk_bytes = fallback.max_chunk_bytes;
            }
            if info.max_message_bytes == 0 {
                info.max_message_bytes = fallback.max_message_bytes;
            }
            Ok(info)
        }
        Err(status) if status.code() == Code::Unimplemented => Ok(fallback),
        Err(status) => Err(status.into()),
    }
}

/// Adds `authorization: Bearer <token>` to every call when a token is set,
/// and the call's deadline when there is one.
#[derive(Clone)]
pub struct CallMetadata {
    pub(crate) token: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    pub(crate) timeout: Option<std::time::Duration>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn limits() -> Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../conformance/limits.json");
        serde_json::from_str(&std::fs::read_to_string(path).expect("limits.json"))
            .expect("limits.json is JSON")
    }

    #[test]
    fn the_fallback_is_the_shared_defaults() {
        let defaults = &limits()["server_info_defaults"];
        let fallback = fallback_server_info();
        assert_eq!(defaults["max_chunk_bytes"], fallback.max_chunk_bytes);
        assert_eq!(defaults["max_message_bytes"], fallback.max_message_bytes);
        assert_eq!(defaults["hash_first_below"], fallback.hash_first_below);
    }

    #[test]
    fn the_receive_limit_is_the_shared_one() {
        let limit = &limits()["client_receive_limit_bytes"];
        assert_eq!(*limit, RECEIVE_LIMIT as u64);
    }

    #[test]
    fn a_daemon_without_server_info_gets_the_fallback() {
        let info = from_answer(Err(tonic::Status::unimplemented("no such method"))).unwrap();
        assert_eq!(info, fallback_server_info());
        let err = from_answer(Err(tonic::Status::unavailable("gone"))).unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);
    }

    #[test]
    fn the_daemons_answer_is_used_and_zeros_fall_back() {
        let answer = pb::ServerInfoResponse {
            version: "9.9.9".into(),
            max_chunk_bytes: 4096,
            max_message_bytes: 0,
            hash_first_below: 1 << 20,
            content_store: true,
        };
        let info = from_answer(Ok(answer)).unwrap();
        assert_eq!(info.max_chunk_bytes, 4096);
        assert_eq!(info.max_message_bytes, FALLBACK_MESSAGE_BYTES);
        assert_eq!(info.hash_first_below, 1 << 20);
    }
}

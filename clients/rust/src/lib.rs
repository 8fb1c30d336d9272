//! A small Rust client for satcheld, used by the `satchel` CLI and usable by
//! other Rust services. The code map:
//!
//! - [`connect`] / [`connect_with`] (`connect.rs`): reach the daemon over a
//!   Unix socket or TCP, with TLS, mTLS and a bearer token ([`Daemon`],
//!   [`ConnectOptions`]); an empty address is [`default_addr`].
//! - [`Client`] (`client.rs`): the generated tonic client, plus the
//!   daemon's limits asked once ([`Client::server_info`]).
//! - [`push`], [`attach`] (`push.rs`): local files up, hashed first by the
//!   daemon's policy and chunked by its chunk size.
//! - [`pull`], [`pull_attachment`], [`pull_verified_attachment`],
//!   [`pull_stream`] (`pull.rs`): files
//!   down, each checked (size, SHA-256, the daemon's digest) before it takes
//!   its final name.
//! - [`blob`]: the content store's resumable upload and ranged download.
//! - [`title`], [`write`]: which names a pull may write, and writing them
//!   without following links.
//! - [`pack`], [`unpack`]: directories as the ORAS CLI pushes them, a
//!   tar+gzip layer, packed on push and unpacked safely on pull.
//! - [`Error`] (`error.rs`): every failure with its gRPC code.
//!
//! Architecture invariant: this crate holds the client's behaviour; the CLI
//! on top of it only turns flags into calls and results into output.
#![doc = include_str!("../README.md")]

pub use satchel_proto::v1 as pb;

pub mod blob;
mod client;
mod connect;
mod error;
pub mod fetch;
mod handoff;
pub mod layout_archive;
pub mod pack;
mod pull;
mod push;
pub mod title;
pub mod unpack;
pub mod write;

pub use client::{
    fallback_server_info, CallMetadata, Client, Generated, FALLBACK_CHUNK_BYTES,
    FALLBACK_MESSAGE_BYTES, HASH_FIRST_BELOW, RECEIVE_LIMIT,
};
pub use connect::{
    connect, connect_with, default_addr, resolve_addr, ConnectOptions, Daemon, CONNECT_TIMEOUT,
};
pub use error::{code_name, status_code, Error};
pub use pull::{
    pull, pull_attachment, pull_stream, pull_verified_attachment, PullEvent, Pulled, PulledFile,
};
pub use push::{attach, push, sha256_file, LocalFile, DEFAULT_MEDIA_TYPE};
pub use title::{check_title, check_titles, safe_path};
pub use tonic::{Code, Status};

//! The OCI side of Satchel, with no knowledge of gRPC.
//!
//! - [`reference`]: image references, normalised as docker does.
//! - [`digest`]: digest parsing, hashing and streaming verification.
//! - [`manifest`]: the manifest and index documents, media types.
//! - [`title`]: layer titles as file names, alone and as one artifact's set.
//! - [`artifact`]: packing files into an artifact manifest.
//! - [`auth`]: credentials, `WWW-Authenticate` parsing, the token cache.
//! - [`registry`]: the distribution API client, referrers API and tag schema.
//! - [`layout`]: an OCI image layout directory as a store.
//! - [`target`]: [`Target`], one interface over a registry and a layout.
//! - [`locks`]: named async locks for read-modify-write cycles.
//! - [`content`]: the daemon's bounded, LRU content store and shared downloads.
//! - [`text`]: echoed input cut short for errors.
//!
//! Nothing here reads environment variables or configuration files; the
//! caller hands in credentials and options.

pub mod artifact;
pub mod auth;
pub mod content;
pub mod copy;
pub mod digest;
pub mod error;
pub mod layout;
pub mod locks;
pub mod manifest;
pub mod metrics;
pub mod platform;
pub mod reference;
pub mod registry;
pub mod target;
pub mod text;
pub mod title;

pub use error::{Error, ErrorKind, Result};
pub use reference::Reference;
pub use target::Target;

/// A stream of content bytes.
pub type ByteStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<bytes::Bytes>> + Send + 'static>>;

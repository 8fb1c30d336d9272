//! satcheld: the Satchel daemon.
//!
//! - [`run`] serves the API on a listener until a shutdown future resolves;
//!   the binary passes SIGTERM/SIGINT, tests pass a oneshot.
//! - [`service`]: the service core — push, pull, discover, blobs, login —
//!   in OCI terms, with no gRPC in it.
//! - [`grpc`]: the gRPC layer over it, the only code naming tonic or
//!   prost: handlers, conversions, framing, status mapping, and the
//!   layers every call passes.
//! - [`daemon`]: the daemon's parts put together from its config.
//! - [`access`]: who may call: the bearer-token check.
//! - [`callers`]: who is calling and which OCI layouts they may name
//!   (`layout_roots`).
//! - [`task_stream`]: streamed answers made by a task that ends with them.
//! - [`listener`]: binding Unix and TCP listeners, socket modes.
//! - [`spool`]: each daemon's own spool directory, removed when it stops;
//!   spools of daemons that are gone are removed at start.
//! - [`config`]: the daemon's settings and their TOML file.
//! - [`credentials`]: docker `config.json` and credential helpers: lookup,
//!   login storage, logout, listing.
//! - [`policy`]: the trust policy (which keys sign which artifacts), read
//!   again when its files change.
//! - [`metrics`]: the Prometheus endpoint (`--metrics-listen`).

pub mod access;
pub mod callers;
pub mod config;
pub mod credentials;
pub mod daemon;
pub mod grpc;
pub mod handoff;
pub mod listener;
pub mod metrics;
pub mod policy;
pub mod service;
pub mod spool;
pub mod task_stream;

pub use config::Config;
pub use grpc::serve as run;
pub use listener::Listener;

//! The daemon's service core: every operation of the API in OCI terms —
//! targets, descriptors, byte streams and [`satchel_oci::Error`] — with no
//! gRPC in sight. The gRPC layer ([`crate::grpc`]) decodes a request into
//! these types, calls one function here and encodes the answer; its tests
//! and the unit tests below drive the same functions directly.
//!
//! - [`target`]: a caller's target (registry reference or OCI layout) made
//!   into a [`Target`](satchel_oci::Target).
//! - [`push`]: Push and Attach: files uploaded (or skipped, or taken from
//!   the content store), config, manifest, tags.
//! - [`pull`]: the plan of a pull (which manifest, which files) and each
//!   file's verified bytes.
//! - [`manifests`]: resolve, delete, and the referrer tree of discover.
//! - [`tags`]: a manifest fetched whole, tags listed and added.
//! - [`copy`]: a manifest's graph, and its referrers, to another target.
//! - [`raw`]: manifests pushed whole; blobs fetched, pushed and deleted.
//! - [`blobs`]: the content store's resumable uploads and ranged downloads.
//! - [`login`]: login, logout and the credential listing.
//!
//! Invariant: errors are [`satchel_oci::Error`]s whose kind the gRPC layer
//! maps to a code in one place; nothing here picks a code.

pub mod blobs;
pub mod copy;
pub mod deliver;
pub mod login;
pub mod manifests;
pub mod pull;
pub mod push;
pub mod raw;
pub mod tags;
pub mod target;
pub mod verify;
pub mod watch;

use std::sync::Arc;

use satchel_oci::content::ContentStore;
use satchel_oci::locks::KeyedLocks;
use satchel_oci::registry::RegistryClient;
use satchel_oci::{Error, ErrorKind, Result};

use crate::credentials::DockerCredentials;

/// How many blobs one pull moves at once unless configured.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// The state every call shares; cheap to clone (all `Arc`s), so streamed
/// calls can take it into their tasks.
#[derive(Clone)]
pub struct Service {
    /// The registry client: connection pool, credentials, tokens.
    registry: Arc<RegistryClient>,
    /// The credential store Login, Logout and ListCredentials manage; the
    /// registry client reads the same one.
    credentials: Arc<DockerCredentials>,
    /// Serialises index.json updates of OCI layouts.
    layout_locks: Arc<KeyedLocks>,
    /// Blobs pulled from registries, kept for the next pull, and the
    /// uploads of UploadBlob; `None` when the daemon runs without one.
    store: Option<Arc<ContentStore>>,
    /// How many blobs one pull moves at once.
    concurrency: usize,
    /// The size below which clients should hash a file before a push.
    hash_first_below: u64,
    /// The pollers of WatchReferrers, one per watched subject.
    pollers: Arc<watch::Pollers>,
    /// Signature checks: the policy, the verdict cache.
    verifier: Arc<verify::Verifier>,
}

/// What the daemon tells clients about itself (ServerInfo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// The daemon's version.
    pub version: &'static str,
    /// Files smaller than this are best hashed before a push.
    pub hash_first_below: u64,
    /// Whether the daemon keeps a content store.
    pub content_store: bool,
}

impl Service {
    /// A service that reaches registries through `registry`, whose
    /// credentials come from `credentials`, with an optional content store.
    pub fn new(
        registry: Arc<RegistryClient>,
        credentials: Arc<DockerCredentials>,
        store: Option<Arc<ContentStore>>,
    ) -> Self {
        Service {
            registry,
            credentials,
            store,
            concurrency: DEFAULT_CONCURRENCY,
            hash_first_below: satchel_oci::registry::MONOLITHIC_MAX,
            layout_locks: Arc::new(KeyedLocks::default()),
            pollers: Arc::new(watch::Pollers::new(watch::DEFAULT_POLL)),
            verifier: Arc::new(verify::Verifier::new(
                crate::policy::PolicySource::open(None).expect("no policy needs no file"),
            )),
        }
    }

    /// Sets the trust policy signatures are checked against.
    pub fn with_policy(mut self, policy: crate::policy::PolicySource) -> Self {
        self.verifier = Arc::new(verify::Verifier::new(policy));
        self
    }

    /// Sets how often a watched subject's referrers are asked for.
    pub fn with_watch_interval(mut self, interval: std::time::Duration) -> Self {
        self.pollers = Arc::new(watch::Pollers::new(interval));
        self
    }

    /// Sets how many blobs one pull moves at once (at least 1).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// Sets the size below which clients are told to hash first (the
    /// registry client's one-request upload limit).
    pub fn with_hash_first_below(mut self, size: u64) -> Self {
        self.hash_first_below = size;
        self
    }

    /// The daemon's version and the limits it works to.
    pub fn info(&self) -> Info {
        Info {
            version: env!("CARGO_PKG_VERSION"),
            hash_first_below: self.hash_first_below,
            content_store: self.store.is_some(),
        }
    }

    /// The bytes the content store holds (0 without one).
    pub fn store_bytes(&self) -> u64 {
        self.store.as_ref().map_or(0, |s| s.total_bytes())
    }

    /// Fails FAILED_PRECONDITION when the daemon keeps no content store,
    /// which the blob calls need.
    pub fn store_needed(&self) -> Result<()> {
        self.store().map(|_| ())
    }

    /// The content store, which the blob calls need.
    fn store(&self) -> Result<&Arc<ContentStore>> {
        self.store.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::FailedPrecondition,
                "satcheld runs without a content store (--no-cache)",
            )
        })
    }
}

/// An INVALID_ARGUMENT error: the request itself is wrong.
pub(crate) fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidArgument, message)
}

#[cfg(test)]
mod tests;

//! A client for the OCI distribution API: manifests, blobs and the auth
//! dance in front of them. This file holds the shared state
//! ([`RegistryClient`], [`Repository`]) and the settings; the rest is split
//! by concern:
//!
//! - `transport`: the HTTP clients, `send` with its retries, error bodies.
//! - `tokens`: challenges, bearer tokens, the login check, which
//!   credential goes with which request.
//! - `secrets`: where credentials may go, scrubbing what comes back.
//! - `deadline`: connect and idle timeouts, paced bodies.
//! - `manifests`: resolve, fetch, push and delete manifests.
//! - `blobs`: existence, mounts, downloads that resume.
//! - `upload`: blob uploads, whole or in chunks, with the spool.
//! - `cache`: manifests by digest, tags and referrer listings for a short
//!   while, single-flight fetches.
//! - [`referrers`]: the referrers API where a registry has it, the tag
//!   schema where it does not; `fallback`: the tag schema's index kept up
//!   to date, its read-back and the old index's delete after the answer.

mod blobs;
mod cache;
mod deadline;
mod fallback;
mod journal;
mod manifests;
mod poll;
mod reconcile;
mod referrers;
mod secrets;
mod tags;
mod tokens;
mod transport;
mod upload;

use tokens::basic;
use transport::{
    authority, backoff, error_codes, header_value, http_client, read_limited, redact_query,
    send_error, SentAuthorization,
};

pub use cache::DEFAULT_TAG_TTL;
pub use deadline::{DEFAULT_CONNECT, DEFAULT_IDLE, DEFAULT_MAX_IDLE_PER_HOST};
pub use poll::Polled;
pub use reconcile::DEFAULT_WINDOW as DEFAULT_RECONCILE_WINDOW;
#[doc(hidden)]
pub use referrers::{merge_referrers, next_link};
pub use referrers::{referrers_tag, ReferrersMode};
pub(crate) use upload::UploadSession;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use serde::Deserialize;
use url::Url;

use crate::auth::{parse_challenges, Challenge, Credential, CredentialSource, TokenCache};
use crate::digest::Expected;
use crate::digest::{self, Digest};
use crate::error::{Error, ErrorKind, Result};
use crate::locks::KeyedLocks;
use crate::manifest::{sniff_media_type, Descriptor, MANIFEST_MEDIA_TYPES};
use crate::reference::Reference;
use crate::ByteStream;

pub use crate::manifest::MAX_MANIFEST_BYTES;
/// The largest error body we read to build a message.
const MAX_ERROR_BODY: usize = 64 << 10;
/// The largest blob sent in one PUT; larger ones go in chunks (ferro-oci-
/// server, for one, refuses bodies over 512 MiB).
pub const MONOLITHIC_MAX: u64 = 256 << 20;
/// The chunk size for chunked uploads, unless the registry asks for more.
pub const CHUNK: u64 = 256 << 20;
/// How many blob locations the client remembers for mounting.
const MAX_BLOB_HOMES: usize = 4096;
/// How many credentials per registry are remembered for scrubbing.
const MAX_REMEMBERED_SECRETS: usize = 64;
/// How many times a replayable request is tried before giving up.
const MAX_ATTEMPTS: u32 = 5;
/// The longest single wait between attempts.
const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(10);

/// What a request needs to be allowed to do, for the token scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Read only.
    Pull,
    /// Read and write.
    Push,
    /// Read, write and delete.
    Delete,
    /// Write here, and read the repository a blob is mounted from.
    MountFrom(String),
    /// List the registry's repositories (`/v2/_catalog`).
    Catalog,
}

impl Access {
    fn actions(&self) -> &'static str {
        match self {
            Access::Pull => "pull",
            Access::Push => "pull,push",
            Access::Delete => "pull,push,delete",
            Access::MountFrom(_) => "pull,push",
            Access::Catalog => "*",
        }
    }
}

/// Settings of the registry client, handed in by the daemon.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Referrers modes forced per registry (`host[:port]`), overriding
    /// detection; a call's own mode overrides these.
    pub referrers_modes: HashMap<String, ReferrersMode>,
    /// TLS settings per registry (`host[:port]`); others get system roots.
    pub tls: HashMap<String, RegistryTls>,
    /// Registries to talk plain HTTP to, whatever the call says.
    pub plain_http: std::collections::HashSet<String>,
    /// Blobs up to this size go in one PUT; `None` means [`MONOLITHIC_MAX`].
    pub monolithic_max: Option<u64>,
    /// The chunk size of chunked uploads; `None` means [`CHUNK`].
    pub chunk_size: Option<u64>,
    /// Where chunks are spooled so an interrupted PATCH can resume; `None`
    /// means a failed chunk fails the upload.
    pub spool_dir: Option<std::path::PathBuf>,
    /// How long a request may make no progress; `None` means
    /// [`DEFAULT_IDLE`].
    pub idle_timeout: Option<std::time::Duration>,
    /// How long connecting may take; `None` means [`DEFAULT_CONNECT`].
    pub connect_timeout: Option<std::time::Duration>,
    /// Idle connections kept per host; `None` means
    /// [`DEFAULT_MAX_IDLE_PER_HOST`].
    pub max_idle_per_host: Option<usize>,
    /// How long tags and referrer listings are remembered (zero: not at
    /// all); `None` means [`DEFAULT_TAG_TTL`].
    pub tag_ttl: Option<std::time::Duration>,
    /// How long a referrer this client wrote to a tag-schema index is
    /// watched there (and merged back when another writer dropped it);
    /// `None` means [`DEFAULT_RECONCILE_WINDOW`].
    pub reconcile_window: Option<std::time::Duration>,
}

impl RegistryOptions {
    fn idle(&self) -> std::time::Duration {
        self.idle_timeout.unwrap_or(DEFAULT_IDLE)
    }
}

/// TLS settings for one registry, as bytes: the caller reads the files.
#[derive(Clone, Default)]
pub struct RegistryTls {
    /// Extra trusted roots (PEM), added to the system's.
    pub ca_pem: Option<Vec<u8>>,
    /// A client certificate and its key (PEM, concatenated) for mTLS.
    pub identity_pem: Option<Vec<u8>>,
    /// Skip certificate verification entirely.
    pub insecure: bool,
}

impl std::fmt::Debug for RegistryTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The identity holds a private key: show only that it is there.
        f.debug_struct("RegistryTls")
            .field("ca_pem", &self.ca_pem.as_ref().map(|c| c.len()))
            .field("identity", &self.identity_pem.is_some())
            .field("insecure", &self.insecure)
            .finish()
    }
}

/// The connection-wide state shared by every repository: the HTTP client,
/// credentials, learned challenges and cached tokens.
pub struct RegistryClient {
    /// One connection pool for all registries without TLS settings.
    http: reqwest::Client,
    /// A client (and pool) per registry with TLS settings of its own.
    http_by_host: HashMap<String, reqwest::Client>,
    /// The same two, following no redirect: for token requests, whose
    /// credentials (a password, a refresh token in the body) must reach the
    /// realm that was checked and nowhere else.
    token_http: reqwest::Client,
    token_http_by_host: HashMap<String, reqwest::Client>,
    /// Where credentials come from; asked on every token fetch.
    credentials: Arc<dyn CredentialSource>,
    /// Challenges learned from 401s, per API host, so later requests
    /// authenticate up front instead of failing first.
    challenges: Mutex<HashMap<String, Vec<Challenge>>>,
    /// Bearer tokens by (host, service, scope).
    tokens: TokenCache,
    /// Referrers API verdicts per `registry/repository`, learned by probing.
    referrers_support: Mutex<HashMap<String, ReferrersMode>>,
    /// What the daemon's configuration says.
    options: RegistryOptions,
    /// Serialises fallback-index updates per (registry, repo, subject).
    fallback_locks: KeyedLocks,
    /// The journal of referrers written to tag-schema indexes, and the
    /// subjects watched until another writer can no longer drop them.
    reconciler: reconcile::Reconciler,
    /// One token fetch at a time per (host, service, scope).
    token_locks: KeyedLocks,
    /// Where blobs were last seen, by digest: (registry, repository). A
    /// push of the same blob to another repository of that registry mounts
    /// it instead of uploading it again.
    blob_homes: Mutex<HashMap<Digest, (String, String)>>,
    /// Serialises uploads of one blob to one repository, so concurrent
    /// pushes of shared content (the empty config every artifact has) upload
    /// it once; distribution 2.8 can lose a blob link when the same blob is
    /// committed twice at once.
    blob_locks: KeyedLocks,
    /// The credentials this client has used, per registry, in the forms of
    /// an `Authorization` value: scrubbed from whatever that registry sends
    /// back, whichever request it answers (a registry that is also its own
    /// token realm has seen the password, and may quote it to a caller who
    /// must not see it).
    used_secrets: Mutex<HashMap<String, Vec<crate::auth::Secret>>>,
    /// Manifests by digest, tags and referrer listings for a short while,
    /// and the single-flight locks of their fetches.
    cache: cache::Cache,
}

impl RegistryClient {
    /// A client that asks `credentials` for secrets.
    pub fn new(credentials: Arc<dyn CredentialSource>, options: RegistryOptions) -> Result<Self> {
        // reqwest is built without a default crypto provider; use ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let built = |tls: Option<&RegistryTls>, redirects: bool| {
            http_client(tls, &options, redirects).map_err(|e| {
                Error::new(ErrorKind::InvalidArgument, "bad TLS settings").with_source(e)
            })
        };
        let http = built(None, true)?;
        let token_http = built(None, false)?;
        let mut http_by_host = HashMap::new();
        let mut token_http_by_host = HashMap::new();
        for (registry, tls) in &options.tls {
            let host = crate::reference::api_host_of(registry).to_string();
            let bad = |e: Error| {
                Error::new(e.kind(), format!("bad TLS settings for {registry}")).with_source(e)
            };
            http_by_host.insert(host.clone(), built(Some(tls), true).map_err(bad)?);
            token_http_by_host.insert(host, built(Some(tls), false).map_err(bad)?);
        }
        Ok(RegistryClient {
            http,
            http_by_host,
            token_http,
            token_http_by_host,
            credentials,
            challenges: Mutex::new(HashMap::new()),
            tokens: TokenCache::default(),
            referrers_support: Mutex::new(HashMap::new()),
            fallback_locks: KeyedLocks::default(),
            reconciler: reconcile::Reconciler::default(),
            token_locks: KeyedLocks::default(),
            blob_homes: Mutex::new(HashMap::new()),
            blob_locks: KeyedLocks::default(),
            used_secrets: Mutex::new(HashMap::new()),
            cache: cache::Cache::new(options.tag_ttl.unwrap_or(DEFAULT_TAG_TTL), None),
            options,
        })
    }

    /// Keeps the manifests this client fetches in `store` (the daemon's
    /// content store) rather than in memory.
    pub fn with_manifest_store(mut self, store: Arc<crate::content::ContentStore>) -> Self {
        let ttl = self.options.tag_ttl.unwrap_or(DEFAULT_TAG_TTL);
        self.cache = cache::Cache::new(ttl, Some(store));
        self
    }

    /// Journals the referrers this client writes to tag-schema indexes in
    /// `dir` (made 0700), so they are watched, and merged back when another
    /// writer drops them, across restarts; see
    /// [`RegistryClient::resume_journal`].
    pub fn with_journal(mut self, dir: &std::path::Path) -> Result<Self> {
        self.reconciler = reconcile::Reconciler::open(dir)?;
        Ok(self)
    }

    /// Notes `credential` as used for `registry`, for [`Self::scrub`].
    fn remember_secret(&self, registry: &str, credential: Option<&Credential>) {
        match credential {
            Some(Credential::Basic { username, password }) => {
                self.remember_value(registry, basic(username, password.expose()))
            }
            Some(Credential::IdentityToken(token)) => {
                self.remember_value(registry, token.expose().to_string())
            }
            None => {}
        }
    }

    /// Notes an `Authorization` value (or a bare token) as used for
    /// `registry`; the newest [`MAX_REMEMBERED_SECRETS`] are kept.
    fn remember_value(&self, registry: &str, value: String) {
        let mut used = self.used_secrets.lock().expect("used secrets lock");
        let known = used.entry(registry.to_string()).or_default();
        known.retain(|k| k.expose() != value);
        known.push(crate::auth::Secret::new(value));
        if known.len() > MAX_REMEMBERED_SECRETS {
            known.remove(0);
        }
    }

    /// `text` scrubbed of every credential this client has used for any
    /// registry, and of anything credential-shaped: for text that may
    /// quote any registry, such as a status on its way to a caller.
    pub fn scrub_any(&self, text: &str) -> String {
        let known: Vec<String> = self
            .used_secrets
            .lock()
            .expect("used secrets lock")
            .values()
            .flatten()
            .map(|k| k.expose().to_string())
            .collect();
        secrets::redact(text, &known)
    }

    /// `text` from `registry` scrubbed of `sent` and of every credential
    /// used for that registry.
    fn scrub(&self, registry: &str, text: &str, sent: Option<&HeaderValue>) -> String {
        let mut secrets: Vec<String> = sent
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .into_iter()
            .collect();
        if let Some(known) = self
            .used_secrets
            .lock()
            .expect("used secrets lock")
            .get(registry)
        {
            secrets.extend(known.iter().map(|k| k.expose().to_string()));
        }
        secrets::redact(text, &secrets)
    }

    /// The HTTP client for `host` (`host[:port]`).
    fn http_for(&self, host: &str) -> &reqwest::Client {
        self.http_by_host.get(host).unwrap_or(&self.http)
    }

    /// The client for token requests to `host`: it follows no redirect.
    fn token_http_for(&self, host: &str) -> &reqwest::Client {
        self.token_http_by_host
            .get(host)
            .unwrap_or(&self.token_http)
    }

    /// Drops every cached token for `registry` (after a logout), and every
    /// manifest, tag and listing those tokens fetched from it.
    pub fn forget_tokens(&self, registry: &str) {
        self.tokens
            .evict_registry(crate::reference::api_host_of(registry));
        self.cache.forget_registry(registry);
    }
}

/// One repository on one registry.
#[derive(Clone)]
pub struct Repository {
    client: Arc<RegistryClient>,
    /// The repository's name; tag and digest are dropped.
    name: Reference,
    /// `http` or `https`.
    scheme: &'static str,
    /// The referrers mode this call forces, if any.
    referrers_mode: ReferrersMode,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The mode is part of what a repository is: two that differ in it
        // list referrers differently (the WatchReferrers pollers key on this).
        write!(
            f,
            "Repository({}://{}, {:?})",
            self.scheme,
            self.name.name(),
            self.referrers_mode
        )
    }
}

impl Repository {
    /// The repository that `reference` names. `plain_http` is also forced
    /// for registries the client's options list.
    pub fn new(client: Arc<RegistryClient>, reference: &Reference, plain_http: bool) -> Self {
        let plain_http = plain_http || client.options.plain_http.contains(reference.registry());
        let name = reference
            .with_tag(crate::reference::DEFAULT_TAG)
            .expect("the default tag is valid");
        Repository {
            client,
            name,
            scheme: if plain_http { "http" } else { "https" },
            referrers_mode: ReferrersMode::Auto,
        }
    }

    /// Forces how referrers are found and recorded for this repository
    /// handle (`Auto` defers to the daemon's config, then to detection).
    pub fn with_referrers_mode(mut self, mode: ReferrersMode) -> Self {
        self.referrers_mode = mode;
        self
    }

    /// The repository's reference (with a placeholder tag).
    pub fn reference(&self) -> &Reference {
        &self.name
    }

    /// The registry's own URL for `path` (`_catalog`), outside any
    /// repository.
    fn registry_url(&self, path: &str) -> Result<Url> {
        let s = format!("{}://{}/v2/{}", self.scheme, self.name.api_host(), path);
        Url::parse(&s).map_err(|e| Error::invalid(format!("bad registry URL {s}: {e}")))
    }

    fn url(&self, path: &str) -> Result<Url> {
        let s = format!(
            "{}://{}/v2/{}/{}",
            self.scheme,
            self.name.api_host(),
            self.name.repository(),
            path
        );
        Url::parse(&s).map_err(|e| Error::invalid(format!("bad registry URL {s}: {e}")))
    }

    /// The token scope for `access`; a mount also asks to pull from its
    /// source repository.
    fn scope(&self, access: &Access) -> String {
        let own = format!("repository:{}:{}", self.name.repository(), access.actions());
        match access {
            Access::MountFrom(from) => format!("{own} repository:{from}:pull"),
            Access::Catalog => "registry:catalog:*".to_string(),
            _ => own,
        }
    }
}

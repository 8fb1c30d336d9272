//! A client for the OCI distribution API: manifests, blobs and the auth
//! dance in front of them. Referrers (the API where a registry has it, the
//! tag schema where it does not) are in [`referrers`].

mod deadline;
mod referrers;
mod secrets;

pub use deadline::{DEFAULT_CONNECT, DEFAULT_IDLE, DEFAULT_MAX_IDLE_PER_HOST};
#[doc(hidden)]
pub use referrers::{merge_referrers, next_link};
pub use referrers::{referrers_tag, ReferrersMode};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use serde::Deserialize;
use url::Url;

use crate::auth::{parse_challenges, Challenge, Credential, CredentialSource, TokenCache};
use crate::digest::{self, Digest};
use crate::error::{Error, ErrorKind, Result};
use crate::locks::KeyedLocks;
use crate::manifest::{sniff_media_type, Descriptor, MANIFEST_MEDIA_TYPES};
use crate::reference::Reference;
use crate::target::Expected;
use crate::ByteStream;

/// The largest manifest we read (distribution 2.8 caps them at 4 MiB).
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;
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
}

impl Access {
    fn actions(&self) -> &'static str {
        match self {
            Access::Pull => "pull",
            Access::Push => "pull,push",
            Access::Delete => "pull,push,delete",
            Access::MountFrom(_) => "pull,push",
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
            options,
            fallback_locks: KeyedLocks::default(),
            token_locks: KeyedLocks::default(),
            blob_homes: Mutex::new(HashMap::new()),
            blob_locks: KeyedLocks::default(),
            used_secrets: Mutex::new(HashMap::new()),
        })
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

    /// Drops every cached token for `registry` (after a logout).
    pub fn forget_tokens(&self, registry: &str) {
        self.tokens
            .evict_registry(crate::reference::api_host_of(registry));
    }

    /// Checks `credential` against `registry` the way `docker login` does:
    /// basic auth on `/v2/`, or a token from the realm the registry names.
    /// On success, tokens cached for the registry are dropped.
    pub async fn verify_credentials(
        &self,
        registry: &str,
        plain_http: bool,
        credential: &Credential,
    ) -> Result<()> {
        let host = crate::reference::api_host_of(registry);
        let plain_http = plain_http || self.options.plain_http.contains(registry);
        let scheme = if plain_http { "http" } else { "https" };
        let url = Url::parse(&format!("{scheme}://{host}/v2/"))
            .map_err(|e| Error::invalid(format!("bad registry {registry:?}: {e}")))?;
        let http = self.http_for(host);
        let idle = self.options.idle();
        let reach = || format!("cannot reach {registry}");
        let probe = deadline::within(idle, reach, async {
            http.get(url.clone())
                .send()
                .await
                .map_err(|e| Error::http(reach(), e))
        })
        .await?;
        let status = probe.status();
        let refused = || {
            Error::new(
                ErrorKind::Unauthenticated,
                format!(
                    "{registry} rejected the credentials for {}",
                    credential.username()
                ),
            )
        };
        let result = match status {
            s if s.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED => {
                let challenges: Vec<Challenge> = probe
                    .headers()
                    .get_all(header::WWW_AUTHENTICATE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(parse_challenges)
                    .collect();
                if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
                    let service = bearer.params.get("service").cloned().unwrap_or_default();
                    self.fetch_token(registry, scheme, bearer, &service, "", Some(credential))
                        .await
                        .map(|_| ())
                        .map_err(|e| match e.kind() {
                            ErrorKind::Unauthenticated => refused(),
                            _ => e,
                        })
                } else if let Credential::Basic { username, password } = credential {
                    let resp = deadline::within(idle, reach, async {
                        http.get(url)
                            .header(header::AUTHORIZATION, basic(username, password.expose()))
                            .send()
                            .await
                            .map_err(|e| Error::http(reach(), e))
                    })
                    .await?;
                    if resp.status().is_success() {
                        Ok(())
                    } else {
                        Err(refused())
                    }
                } else {
                    Err(Error::new(
                        ErrorKind::Unauthenticated,
                        format!(
                            "{registry} asks for basic auth; an identity token cannot answer it"
                        ),
                    ))
                }
            }
            other => Err(Error::new(
                ErrorKind::Unavailable,
                format!("{registry}/v2/ answered HTTP {other}"),
            )),
        };
        if result.is_ok() {
            self.tokens.evict_registry(host);
        }
        result
    }

    /// Trades credentials (or nothing) for a bearer token at the
    /// challenge's realm: an OAuth2 POST with a refresh token, else a GET
    /// with basic auth. An empty `scope` asks for none (as `docker login`).
    async fn fetch_token(
        &self,
        registry: &str,
        registry_scheme: &str,
        challenge: &Challenge,
        service: &str,
        scope: &str,
        credential: Option<&Credential>,
    ) -> Result<(crate::auth::Secret, std::time::Duration)> {
        let realm = challenge.params.get("realm").ok_or_else(|| {
            Error::new(
                ErrorKind::Unauthenticated,
                format!("{} sent a Bearer challenge without a realm", registry),
            )
        })?;
        let realm = Url::parse(realm).map_err(|e| {
            Error::new(
                ErrorKind::Unauthenticated,
                format!("{registry} named a token realm that is not a URL ({e})"),
            )
        })?;
        secrets::check_realm(registry, registry_scheme, &realm, self.options.idle()).await?;
        let request = match credential {
            Some(Credential::IdentityToken(refresh)) => {
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh.expose()),
                    ("service", service),
                    ("client_id", "satchel"),
                ];
                if !scope.is_empty() {
                    form.push(("scope", scope));
                }
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form)
                    .finish();
                self.token_http_for(&authority(&realm))
                    .post(realm.clone())
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body)
            }
            other => {
                let mut url = realm.clone();
                {
                    let mut q = url.query_pairs_mut();
                    if !service.is_empty() {
                        q.append_pair("service", service);
                    }
                    // Several scopes go as several parameters.
                    for one in scope.split(' ').filter(|s| !s.is_empty()) {
                        q.append_pair("scope", one);
                    }
                }
                let req = self.token_http_for(&authority(&realm)).get(url);
                match other {
                    Some(Credential::Basic { username, password }) => {
                        req.header(header::AUTHORIZATION, basic(username, password.expose()))
                    }
                    _ => req,
                }
            }
        };
        let failed = || {
            format!(
                "token request to {} failed",
                realm.host_str().unwrap_or("?")
            )
        };
        let resp = deadline::within(self.options.idle(), failed, async {
            request.send().await.map_err(|e| Error::http(failed(), e))
        })
        .await?;
        let status = resp.status();
        if !status.is_success() {
            let kind = match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ErrorKind::Unauthenticated,
                s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                    ErrorKind::Unavailable
                }
                _ => ErrorKind::Unauthenticated,
            };
            return Err(Error::new(
                kind,
                format!(
                    "{} refused a token for {scope}: HTTP {status}{}",
                    registry,
                    if credential.is_none() {
                        " (no credentials configured)"
                    } else {
                        " (check the credentials)"
                    }
                ),
            ));
        }
        let body = read_limited(resp, MAX_ERROR_BODY, self.options.idle()).await?;
        let parsed: crate::auth::TokenResponse = serde_json::from_slice(&body).map_err(|_| {
            Error::new(
                ErrorKind::Unauthenticated,
                "the token endpoint answered with something that is not a token",
            )
        })?;
        parsed.into_token().ok_or_else(|| {
            Error::new(
                ErrorKind::Unauthenticated,
                "the token endpoint's answer holds no token",
            )
        })
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
        write!(f, "Repository({}://{})", self.scheme, self.name.name())
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
            _ => own,
        }
    }

    /// The Authorization header for `access`, if the registry asked for one.
    async fn authorization(&self, access: &Access) -> Result<Option<HeaderValue>> {
        let host = self.name.api_host().to_string();
        let challenges = self
            .client
            .challenges
            .lock()
            .expect("challenges lock")
            .get(&host)
            .cloned();
        let Some(challenges) = challenges else {
            return Ok(None);
        };
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let service = bearer.params.get("service").cloned().unwrap_or_default();
            let scope = self.scope(access);
            if let Some(token) = self.client.tokens.get(&host, &service, &scope) {
                return header_value(&format!("Bearer {}", token.expose())).map(Some);
            }
            // One fetch per key: whoever gets the lock first fetches, the
            // rest find the token in the cache.
            let _fetching = self
                .client
                .token_locks
                .lock(&format!("{host}\n{service}\n{scope}"))
                .await;
            let token = match self.client.tokens.get(&host, &service, &scope) {
                Some(token) => token,
                None => {
                    let credential = self.client.credentials.get(self.name.registry()).await?;
                    self.client
                        .remember_secret(self.name.registry(), credential.as_ref());
                    let (token, lifetime) = self
                        .client
                        .fetch_token(
                            self.name.registry(),
                            self.scheme,
                            bearer,
                            &service,
                            &scope,
                            credential.as_ref(),
                        )
                        .await?;
                    self.client
                        .tokens
                        .put(&host, &service, &scope, token.clone(), lifetime);
                    self.client
                        .remember_value(self.name.registry(), format!("Bearer {}", token.expose()));
                    token
                }
            };
            return header_value(&format!("Bearer {}", token.expose())).map(Some);
        }
        let credential = self.client.credentials.get(self.name.registry()).await?;
        self.client
            .remember_secret(self.name.registry(), credential.as_ref());
        if challenges.iter().any(|c| c.scheme == "basic") {
            if let Some(Credential::Basic { username, password }) = credential {
                return header_value(&basic(&username, password.expose())).map(Some);
            }
        }
        Ok(None)
    }

    /// Whether `url` is on this repository's registry (scheme, host and
    /// port): only there does a request carry the registry's credentials.
    fn owns(&self, url: &Url) -> bool {
        self.url("")
            .is_ok_and(|base| secrets::same_origin(&base, url))
    }

    /// The Authorization header for a request to `url`: none for another
    /// origin (an upload `Location` elsewhere, say).
    async fn authorization_for(&self, url: &Url, access: &Access) -> Result<Option<HeaderValue>> {
        if self.owns(url) {
            return self.authorization(access).await;
        }
        tracing::debug!(
            url = %redact_query(url),
            "not sending credentials to another origin"
        );
        Ok(None)
    }

    /// Sends a request whose body (if any) can be replayed: authenticates
    /// and retries once when the registry answers 401, and retries 408, 429,
    /// 5xx, connection errors and stalls with capped, jittered exponential
    /// backoff that honours `Retry-After`.
    async fn send(
        &self,
        method: Method,
        url: Url,
        access: Access,
        headers: HeaderMap,
        body: Option<Bytes>,
    ) -> Result<reqwest::Response> {
        let mut authenticated = false;
        let mut attempt = 0u32;
        let idle = self.client.options.idle();
        loop {
            let mut req = self
                .client
                .http_for(self.name.api_host())
                .request(method.clone(), url.clone())
                .headers(headers.clone());
            if let Some(body) = &body {
                req = req.body(body.clone());
            }
            let auth = self.authorization_for(&url, &access).await?;
            if let Some(auth) = &auth {
                req = req.header(header::AUTHORIZATION, auth.clone());
            }
            let what = || format!("{method} {} failed", redact_query(&url));
            let failure = match tokio::time::timeout(idle, req.send()).await {
                Ok(Ok(mut resp)) => {
                    remember_authorization(&mut resp, auth);
                    Ok(resp)
                }
                Ok(Err(e)) if e.is_timeout() => Err(deadline::stalled(&what(), idle)),
                Ok(Err(e)) if e.is_connect() || e.is_request() => Err(Error::http(what(), e)),
                Ok(Err(e)) => return Err(Error::http(what(), e)),
                Err(_) => Err(deadline::stalled(&what(), idle)),
            };
            let resp = match failure {
                Ok(resp) => resp,
                Err(e) if attempt + 1 < MAX_ATTEMPTS => {
                    tracing::debug!(error = %e, attempt, "retrying after a connection error");
                    tokio::time::sleep(backoff(attempt, None)).await;
                    attempt += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED
                && !authenticated
                && self.owns(&url)
                && self.owns(resp.url())
                && self.learn_challenge(&resp, &access)
            {
                authenticated = true;
                continue;
            }
            let transient = status == StatusCode::REQUEST_TIMEOUT
                || status == StatusCode::TOO_MANY_REQUESTS
                || status.is_server_error();
            if transient && attempt + 1 < MAX_ATTEMPTS {
                let retry_after = resp
                    .headers()
                    .get(header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(std::time::Duration::from_secs);
                tracing::debug!(%status, attempt, url = %redact_query(&url), "retrying");
                tokio::time::sleep(backoff(attempt, retry_after)).await;
                attempt += 1;
                continue;
            }
            return Ok(resp);
        }
    }

    /// Sends a request with a one-shot (streaming) body. Auth must already be
    /// known: callers make a replayable request first (the upload POST).
    /// The request fails as stalled when the registry stops taking the body,
    /// or gives no answer within the idle time after its end.
    async fn send_once<S>(
        &self,
        method: Method,
        url: Url,
        access: Access,
        headers: HeaderMap,
        body: S,
    ) -> Result<reqwest::Response>
    where
        S: Stream<Item = Result<Bytes>> + Send + 'static,
    {
        let activity = deadline::Activity::new();
        let mut req = self
            .client
            .http_for(self.name.api_host())
            .request(method.clone(), url.clone())
            .headers(headers)
            .body(reqwest::Body::wrap_stream(activity.track(body)));
        let auth = self.authorization_for(&url, &access).await?;
        if let Some(auth) = &auth {
            req = req.header(header::AUTHORIZATION, auth.clone());
        }
        let what = || format!("{method} {} failed", redact_query(&url));
        let idle = self.client.options.idle();
        let mut resp = tokio::select! {
            sent = req.send() => sent.map_err(|e| Error::http(what(), e))?,
            () = activity.idle_for(idle) => return Err(deadline::stalled(&what(), idle)),
        };
        remember_authorization(&mut resp, auth);
        Ok(resp)
    }

    /// Records the challenges of a 401; returns whether a retry may help.
    fn learn_challenge(&self, resp: &reqwest::Response, access: &Access) -> bool {
        let challenges: Vec<Challenge> = resp
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(parse_challenges)
            .collect();
        if challenges.is_empty() {
            return false;
        }
        let host = self.name.api_host().to_string();
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let service = bearer.params.get("service").cloned().unwrap_or_default();
            self.client
                .tokens
                .evict(&host, &service, &self.scope(access));
        }
        self.client
            .challenges
            .lock()
            .expect("challenges lock")
            .insert(host, challenges);
        true
    }

    /// A HEAD or GET of a manifest, accepting every manifest type we read.
    async fn manifest_request(&self, method: Method, reference: &str) -> Result<reqwest::Response> {
        let url = self.url(&format!("manifests/{reference}"))?;
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            header_value(&MANIFEST_MEDIA_TYPES.join(", "))?,
        );
        self.send(method, url, Access::Pull, headers, None).await
    }

    /// Resolves a tag or digest to the manifest's descriptor.
    /// A HEAD request answers with the digest, type and size; registries
    /// that leave any out get a GET instead.
    pub async fn resolve(&self, reference: &str) -> Result<Descriptor> {
        let resp = self.manifest_request(Method::HEAD, reference).await?;
        match resp.status() {
            StatusCode::NOT_FOUND => {
                return Err(Error::not_found(format!(
                    "{}: manifest {reference} not found",
                    self.name.registry()
                )))
            }
            // Registries that do not do HEAD on manifests get a GET below.
            s if s.is_success()
                || s == StatusCode::METHOD_NOT_ALLOWED
                || s == StatusCode::NOT_IMPLEMENTED
                || s == StatusCode::BAD_REQUEST => {}
            _ => return Err(self.error(resp, &format!("manifest {reference}")).await),
        }
        if resp.status().is_success() {
            let h = resp.headers();
            let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
            let digest = text("docker-content-digest").and_then(|d| digest::parse(d).ok());
            let media_type = text("content-type")
                .map(|ct| ct.split(';').next().unwrap_or(ct).trim())
                .filter(|ct| MANIFEST_MEDIA_TYPES.contains(ct));
            let size = resp.content_length().filter(|n| *n > 0);
            // A digest reference must come back as itself.
            let consistent = match (reference.parse::<Digest>(), &digest) {
                (Ok(asked), Some(got)) => &asked == got,
                _ => true,
            };
            if let (Some(digest), Some(media_type), Some(size), true) =
                (digest, media_type, size, consistent)
            {
                return Ok(Descriptor {
                    media_type: media_type.to_string(),
                    digest,
                    size,
                    artifact_type: None,
                    annotations: Default::default(),
                });
            }
        }
        let (desc, _) = self.fetch_manifest(reference).await?;
        Ok(desc)
    }

    /// Fetches a manifest by tag or digest; the bytes are verified against
    /// the digest when the reference is one.
    pub async fn fetch_manifest(&self, reference: &str) -> Result<(Descriptor, Bytes)> {
        let resp = self.manifest_request(Method::GET, reference).await?;
        if !resp.status().is_success() {
            return Err(self.error(resp, &format!("manifest {reference}")).await);
        }
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or(s).trim().to_string());
        let body = read_limited(resp, MAX_MANIFEST_BYTES, self.client.options.idle()).await?;
        let digest = match reference.parse::<Digest>() {
            Ok(expected) if reference.contains(':') => {
                digest::verify(&body, &expected, None)?;
                expected
            }
            _ => digest::sha256(&body),
        };
        let media_type = match content_type {
            Some(ct) if MANIFEST_MEDIA_TYPES.contains(&ct.as_str()) => ct,
            _ => sniff_media_type(&body)?,
        };
        Ok((
            Descriptor {
                media_type,
                digest,
                size: body.len() as u64,
                artifact_type: None,
                annotations: Default::default(),
            },
            body,
        ))
    }

    /// Pushes a manifest under `reference` (a tag or its digest). Returns
    /// its descriptor and whether the registry sent `OCI-Subject`, which
    /// proves it indexed the subject itself.
    pub async fn push_manifest(
        &self,
        reference: &str,
        media_type: &str,
        content: Bytes,
    ) -> Result<(Descriptor, bool)> {
        let desc = Descriptor::for_bytes(media_type, &content);
        let url = self.url(&format!("manifests/{reference}"))?;
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, header_value(media_type)?);
        let resp = self
            .send(Method::PUT, url, Access::Push, headers, Some(content))
            .await?;
        if !resp.status().is_success() {
            return Err(self.error(resp, &format!("manifest {reference}")).await);
        }
        let subject_indexed = resp.headers().contains_key("oci-subject");
        if subject_indexed {
            self.learn_referrers_mode(ReferrersMode::Api);
        }
        Ok((desc, subject_indexed))
    }

    /// Deletes a manifest by digest.
    pub async fn delete_manifest(&self, digest: &Digest) -> Result<()> {
        let url = self.url(&format!("manifests/{digest}"))?;
        let resp = self
            .send(Method::DELETE, url, Access::Delete, HeaderMap::new(), None)
            .await?;
        if !resp.status().is_success() {
            return Err(self
                .error(resp, &format!("delete of manifest {digest}"))
                .await);
        }
        Ok(())
    }

    /// Waits until no other task of this process is uploading `digest` to
    /// this repository; hold the guard across the existence check and the
    /// upload.
    pub async fn lock_blob(&self, digest: &Digest) -> tokio::sync::OwnedMutexGuard<()> {
        self.client
            .blob_locks
            .lock(&format!("{}@{digest}", self.name.name()))
            .await
    }

    /// Remembers that this repository has `digest`.
    fn saw_blob(&self, digest: &Digest) {
        let mut homes = self.client.blob_homes.lock().expect("blob homes");
        if homes.len() >= MAX_BLOB_HOMES {
            homes.clear();
        }
        homes.insert(
            digest.clone(),
            (
                self.name.registry().to_string(),
                self.name.repository().to_string(),
            ),
        );
    }

    /// Mounts `digest` from another repository of this registry where it
    /// was seen, if any (`POST ?mount=&from=`). `false` means nothing was
    /// mounted and the blob must be uploaded; a refused mount is not an error.
    pub async fn try_mount(&self, digest: &Digest) -> Result<bool> {
        let from = {
            let homes = self.client.blob_homes.lock().expect("blob homes");
            match homes.get(digest) {
                Some((registry, repo))
                    if registry == self.name.registry() && repo != self.name.repository() =>
                {
                    repo.clone()
                }
                _ => return Ok(false),
            }
        };
        let mut url = self.url("blobs/uploads/")?;
        url.query_pairs_mut()
            .append_pair("mount", digest.as_ref())
            .append_pair("from", &from);
        let resp = self
            .send(
                Method::POST,
                url,
                Access::MountFrom(from.clone()),
                HeaderMap::new(),
                Some(Bytes::new()),
            )
            .await?;
        // 202 means the registry opened an upload session instead; it is
        // left to expire, and the blob goes up the usual way.
        let mounted = resp.status() == StatusCode::CREATED;
        if mounted {
            tracing::debug!(%digest, %from, to = self.name.repository(), "mounted blob");
            self.saw_blob(digest);
        }
        Ok(mounted)
    }

    /// Whether the repository has the blob.
    pub async fn blob_exists(&self, digest: &Digest) -> Result<bool> {
        let url = self.url(&format!("blobs/{digest}"))?;
        let resp = self
            .send(Method::HEAD, url, Access::Pull, HeaderMap::new(), None)
            .await?;
        match resp.status() {
            s if s.is_success() => {
                self.saw_blob(digest);
                Ok(true)
            }
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.error(resp, &format!("blob {digest}")).await),
        }
    }

    /// Uploads a blob from a stream, after a POST that opens the session:
    /// - digest and size known, size at most [`MONOLITHIC_MAX`]: one PUT
    ///   with the body;
    /// - size known otherwise: PATCHes of [`CHUNK`] bytes (or the
    ///   registry's `OCI-Chunk-Min-Length`, if larger) with `Content-Range`,
    ///   then a closing PUT;
    /// - size unknown: one streamed PATCH, then a closing PUT.
    ///
    /// Without a digest, the closing PUT names `digest_of()`, called once
    /// the stream has ended.
    pub async fn push_blob<S>(
        &self,
        expected: Expected<'_>,
        body: S,
        digest_of: impl FnOnce() -> Result<Digest>,
    ) -> Result<()>
    where
        S: Stream<Item = Result<Bytes>> + Send + Unpin + 'static,
    {
        let start = self.url("blobs/uploads/")?;
        let resp = self
            .send(
                Method::POST,
                start,
                Access::Push,
                HeaderMap::new(),
                Some(Bytes::new()),
            )
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.error(resp, "blob upload start").await);
        }
        let min_chunk = resp
            .headers()
            .get("oci-chunk-min-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let mut location = self.location(&resp)?;
        let octet = || {
            let mut h = HeaderMap::new();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            h
        };
        let digest = match (expected.digest, expected.size) {
            (Some(digest), Some(size))
                if size <= self.client.options.monolithic_max.unwrap_or(MONOLITHIC_MAX) =>
            {
                location
                    .query_pairs_mut()
                    .append_pair("digest", digest.as_ref());
                let mut headers = octet();
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
                let resp = self
                    .send_once(Method::PUT, location, Access::Push, headers, body)
                    .await?;
                if resp.status() != StatusCode::CREATED {
                    return Err(self.error(resp, &format!("upload of blob {digest}")).await);
                }
                self.saw_blob(digest);
                return Ok(());
            }
            (digest, Some(size)) => {
                let chunk = self
                    .client
                    .options
                    .chunk_size
                    .unwrap_or(CHUNK)
                    .max(min_chunk)
                    .max(1);
                let mut input = body;
                let mut leftover: Option<Bytes> = None;
                let mut offset = 0u64;
                while offset < size {
                    let len = chunk.min(size - offset);
                    location = self
                        .patch_chunk(&mut input, &mut leftover, location, offset, len)
                        .await
                        .map_err(|e| {
                            let what = digest.map_or("a blob".to_string(), |d| format!("blob {d}"));
                            Error::new(e.kind(), format!("upload of {what}")).with_source(e)
                        })?;
                    offset += len;
                }
                match digest {
                    Some(d) => d.clone(),
                    None => digest_of()?,
                }
            }
            (_, None) => {
                let resp = self
                    .send_once(Method::PATCH, location, Access::Push, octet(), body)
                    .await?;
                if resp.status() != StatusCode::ACCEPTED {
                    return Err(self.error(resp, "blob upload").await);
                }
                location = self.location(&resp)?;
                digest_of()?
            }
        };
        location
            .query_pairs_mut()
            .append_pair("digest", digest.as_ref());
        let resp = self
            .send(
                Method::PUT,
                location,
                Access::Push,
                HeaderMap::new(),
                Some(Bytes::new()),
            )
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.error(resp, &format!("upload of blob {digest}")).await);
        }
        self.saw_blob(&digest);
        Ok(())
    }

    /// Sends `len` bytes of `input` as one PATCH at `offset`. The bytes are
    /// also written to a spool file (when the client has a spool directory),
    /// so that after a dropped connection or a registry error the chunk
    /// resumes from the offset the registry reports, not from its start.
    /// Returns the next upload location.
    async fn patch_chunk<S>(
        &self,
        input: &mut S,
        leftover: &mut Option<Bytes>,
        mut location: Url,
        offset: u64,
        len: u64,
    ) -> Result<Url>
    where
        S: Stream<Item = Result<Bytes>> + Unpin,
    {
        let mut spool = match &self.client.options.spool_dir {
            Some(dir) => Some(Spool::create(dir).await?),
            None => None,
        };
        let mut fed = 0u64; // bytes of this chunk taken from `input`
        let mut from = 0u64; // where in the chunk this attempt starts
        let mut attempt = 0u32;
        loop {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes>>(4);
            let mut headers = HeaderMap::new();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len - from));
            headers.insert(
                header::CONTENT_RANGE,
                header_value(&format!("{}-{}", offset + from, offset + len - 1))?,
            );
            let body = tokio_stream_from_receiver(rx);
            let patch =
                self.send_once(Method::PATCH, location.clone(), Access::Push, headers, body);
            let feed = async {
                if let Some(spool) = spool.as_mut() {
                    if !spool.replay(from, fed, &tx).await? {
                        return Ok(());
                    }
                }
                feed_exactly(input, leftover, len - fed, tx, spool.as_mut(), &mut fed).await
            };
            let (resp, fed_result) = tokio::join!(patch, feed);
            // A failing source is the caller's problem: no resume.
            fed_result?;
            let failure = match resp {
                Ok(resp) if resp.status() == StatusCode::ACCEPTED => return self.location(&resp),
                Ok(resp)
                    if resp.status().is_server_error()
                        || resp.status() == StatusCode::TOO_MANY_REQUESTS
                        || resp.status() == StatusCode::REQUEST_TIMEOUT =>
                {
                    self.error(resp, "chunk upload").await
                }
                Ok(resp) => return Err(self.error(resp, "chunk upload").await),
                Err(e) => e,
            };
            attempt += 1;
            if spool.is_none() || attempt >= MAX_ATTEMPTS {
                return Err(failure);
            }
            tokio::time::sleep(backoff(attempt - 1, None)).await;
            let (next, have) = match self.upload_status(&location).await {
                Ok(status) => status,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot learn where the interrupted upload stands");
                    return Err(failure);
                }
            };
            if have < offset || have > offset + fed {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    format!("cannot resume the upload: the registry holds {have} bytes, we hold {offset} to {}", offset + fed),
                ));
            }
            tracing::warn!(offset = have, attempt, "chunk upload interrupted; resuming");
            from = have - offset;
            location = next;
        }
    }

    /// Asks where an upload stands: its location and how many bytes the
    /// registry holds (from the `Range: 0-<last>` it reports).
    async fn upload_status(&self, location: &Url) -> Result<(Url, u64)> {
        let resp = self
            .send(
                Method::GET,
                location.clone(),
                Access::Push,
                HeaderMap::new(),
                None,
            )
            .await?;
        if resp.status() != StatusCode::NO_CONTENT {
            return Err(self.error(resp, "upload status").await);
        }
        let have = resp
            .headers()
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|r| r.rsplit('-').next())
            .and_then(|last| last.trim().parse::<u64>().ok())
            .map_or(0, |last| last + 1);
        let next = self.location(&resp).unwrap_or_else(|_| location.clone());
        Ok((next, have))
    }

    fn location(&self, resp: &reqwest::Response) -> Result<Url> {
        let loc = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Unavailable,
                    "the registry's upload answer has no Location",
                )
            })?;
        resp.url()
            .join(loc)
            .map_err(|e| Error::new(ErrorKind::Unavailable, format!("bad upload Location: {e}")))
    }

    /// Streams a blob's bytes, unverified ([`crate::Target`] verifies).
    /// When the connection drops mid-body, the download resumes where it
    /// stopped with a `Range` request, a few times at most.
    pub async fn fetch_blob(&self, digest: &Digest) -> Result<ByteStream> {
        let first = self.get_blob(digest, 0).await?;
        self.saw_blob(digest);
        let repo = self.clone();
        let digest = digest.clone();
        Ok(async_stream::try_stream! {
            let mut offset = 0u64;
            let mut resumes = 0u32;
            let idle = repo.client.options.idle();
            let mut body = deadline::Paced::new(first.bytes_stream(), idle);
            loop {
                let failure = match body.next().await {
                    Ok(Some(chunk)) => {
                        offset += chunk.len() as u64;
                        yield chunk;
                        continue;
                    }
                    Ok(None) => break,
                    Err(Some(e)) => Error::http(format!("download of {digest} failed at byte {offset}"), e),
                    Err(None) => deadline::stalled(&format!("download of {digest} at byte {offset}"), idle),
                };
                if resumes + 1 >= MAX_ATTEMPTS {
                    let kind = failure.kind();
                    Err(Error::new(kind, format!("gave up after {resumes} resumes")).with_source(failure))?;
                    break;
                }
                tracing::warn!(%digest, offset, error = %failure, "download interrupted; resuming");
                tokio::time::sleep(backoff(resumes, None)).await;
                resumes += 1;
                body = deadline::Paced::new(repo.get_blob(&digest, offset).await?.bytes_stream(), idle);
            }
        }
        .boxed())
    }

    /// GETs a blob from `offset` on. reqwest follows redirects to blob
    /// storage and drops `Authorization` when the host changes.
    async fn get_blob(&self, digest: &Digest, offset: u64) -> Result<reqwest::Response> {
        let url = self.url(&format!("blobs/{digest}"))?;
        let mut headers = HeaderMap::new();
        if offset > 0 {
            headers.insert(header::RANGE, header_value(&format!("bytes={offset}-"))?);
        }
        let resp = self
            .send(Method::GET, url, Access::Pull, headers, None)
            .await?;
        if !resp.status().is_success() {
            return Err(self.error(resp, &format!("blob {digest}")).await);
        }
        if offset > 0 {
            let resumes_here = resp.status() == StatusCode::PARTIAL_CONTENT
                && resp
                    .headers()
                    .get(header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|r| r.starts_with(&format!("bytes {offset}-")));
            if !resumes_here {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    format!(
                        "{}: cannot resume {digest} at byte {offset}: no usable Range support",
                        self.name.registry()
                    ),
                ));
            }
        }
        Ok(resp)
    }

    /// Builds the error for an unsuccessful response.
    async fn error(&self, resp: reqwest::Response, what: &str) -> Error {
        let status = resp.status();
        let sent = resp
            .extensions()
            .get::<SentAuthorization>()
            .map(|s| s.0.clone());
        let body = read_limited(resp, MAX_ERROR_BODY, self.client.options.idle())
            .await
            .unwrap_or_default();
        // Scrub the whole body before taking its first line or cutting it,
        // so no fragment of a credential survives.
        let body = self.client.scrub(
            self.name.registry(),
            &String::from_utf8_lossy(&body),
            sent.as_ref(),
        );
        let details = error_details(body.as_bytes());
        let details = crate::text::cut(&details, crate::text::ECHO_MAX * 2);
        let kind = match status {
            StatusCode::NOT_FOUND => ErrorKind::NotFound,
            StatusCode::UNAUTHORIZED => ErrorKind::Unauthenticated,
            StatusCode::FORBIDDEN => ErrorKind::PermissionDenied,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT => ErrorKind::Unavailable,
            s if s.is_server_error() => ErrorKind::Unavailable,
            StatusCode::BAD_REQUEST if details.contains("DIGEST_INVALID") => ErrorKind::DataLoss,
            StatusCode::BAD_REQUEST => ErrorKind::InvalidArgument,
            _ => ErrorKind::FailedPrecondition,
        };
        let mut msg = format!("{}: {what}: HTTP {status}", self.name.registry());
        if !details.is_empty() {
            msg.push_str(": ");
            msg.push_str(&details);
        }
        Error::new(kind, msg)
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

fn error_codes(body: &[u8]) -> Vec<String> {
    serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.errors.into_iter().map(|e| e.code).collect())
        .unwrap_or_default()
}

fn error_details(body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) if !b.errors.is_empty() => b
            .errors
            .iter()
            .map(|e| format!("{} {}", e.code, e.message).trim().to_string())
            .collect::<Vec<_>>()
            .join("; "),
        _ => String::from_utf8_lossy(&body[..body.len().min(200)])
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
    }
}

/// The `Authorization` a request carried, kept on its response so an
/// error built from the answer can scrub it.
#[derive(Clone)]
struct SentAuthorization(HeaderValue);

fn remember_authorization(resp: &mut reqwest::Response, auth: Option<HeaderValue>) {
    if let Some(auth) = auth {
        resp.extensions_mut().insert(SentAuthorization(auth));
    }
}

/// Reads a response body, failing when it exceeds `limit` bytes or stalls
/// (see [`deadline::Paced`]).
async fn read_limited(
    resp: reqwest::Response,
    limit: usize,
    idle: std::time::Duration,
) -> Result<Bytes> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(Error::new(
            ErrorKind::FailedPrecondition,
            format!("response larger than {limit} bytes"),
        ));
    }
    let mut out = BytesMut::new();
    let mut stream = deadline::Paced::new(resp.bytes_stream(), idle);
    loop {
        let chunk = match stream.next().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(Some(e)) => return Err(Error::http("reading a response failed", e)),
            Err(None) => return Err(deadline::stalled("reading a response", idle)),
        };
        if out.len() + chunk.len() > limit {
            return Err(Error::new(
                ErrorKind::FailedPrecondition,
                format!("response larger than {limit} bytes"),
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

fn header_value(s: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(s).map_err(|_| Error::invalid("a header value has invalid characters"))
}

fn basic(username: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
    )
}

/// How long to wait before attempt `attempt + 1`: the server's
/// `Retry-After` if it gave one, else 100 ms doubling per attempt, with up to
/// 50% jitter; never more than [`MAX_BACKOFF`].
fn backoff(attempt: u32, retry_after: Option<std::time::Duration>) -> std::time::Duration {
    if let Some(wait) = retry_after {
        return wait.min(MAX_BACKOFF);
    }
    let base = std::time::Duration::from_millis(100) * 2u32.saturating_pow(attempt.min(10));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let jitter = base.mul_f64(f64::from(nanos % 1000) / 2000.0);
    (base + jitter).min(MAX_BACKOFF)
}

/// A stream over a channel's receiving end.
fn tokio_stream_from_receiver(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes>>,
) -> impl Stream<Item = Result<Bytes>> + Send + 'static {
    async_stream::stream! {
        while let Some(item) = rx.recv().await {
            yield item;
        }
    }
}

/// Sends exactly `len` bytes from `input` (after any `leftover`) into `tx`,
/// keeping what goes past `len` in `leftover` for the next chunk, writing
/// each piece to `spool` first and counting it in `fed`.
async fn feed_exactly<S>(
    input: &mut S,
    leftover: &mut Option<Bytes>,
    len: u64,
    tx: tokio::sync::mpsc::Sender<Result<Bytes>>,
    mut spool: Option<&mut Spool>,
    fed: &mut u64,
) -> Result<()>
where
    S: Stream<Item = Result<Bytes>> + Unpin,
{
    let mut left = len;
    while left > 0 {
        let mut piece = match leftover.take() {
            Some(p) => p,
            None => match input.next().await {
                Some(Ok(p)) => p,
                Some(Err(e)) => {
                    let _ = tx
                        .send(Err(Error::new(e.kind(), "the upload's source failed")))
                        .await;
                    return Err(e);
                }
                None => {
                    let msg = format!("the content ended {left} bytes short of its declared size");
                    let _ = tx
                        .send(Err(Error::new(ErrorKind::DataLoss, msg.clone())))
                        .await;
                    return Err(Error::new(ErrorKind::DataLoss, msg));
                }
            },
        };
        if piece.len() as u64 > left {
            *leftover = Some(piece.split_off(left as usize));
        }
        left -= piece.len() as u64;
        if let Some(spool) = spool.as_deref_mut() {
            spool.write(&piece).await?;
        }
        *fed += piece.len() as u64;
        if tx.send(Ok(piece)).await.is_err() {
            // The request gave up; its error is the one to report.
            return Ok(());
        }
    }
    Ok(())
}

/// A chunk's bytes on disk, for resending after an interrupted PATCH.
/// Removed when dropped.
struct Spool {
    path: std::path::PathBuf,
    file: tokio::fs::File,
}

impl Spool {
    async fn create(dir: &std::path::Path) -> Result<Spool> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = dir.join(format!(
            "spool-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let file = tokio::fs::OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .await
            .map_err(|e| Error::io(format!("cannot create spool {}", path.display()), e))?;
        Ok(Spool { path, file })
    }

    async fn write(&mut self, data: &[u8]) -> Result<()> {
        use tokio::io::{AsyncSeekExt, AsyncWriteExt};
        self.file
            .seek(std::io::SeekFrom::End(0))
            .await
            .map_err(|e| Error::io("cannot seek the spool", e))?;
        self.file
            .write_all(data)
            .await
            .map_err(|e| Error::io("cannot write the spool", e))
    }

    /// Sends spooled bytes `from..to` into `tx`; `false` if the receiver
    /// went away.
    async fn replay(
        &mut self,
        from: u64,
        to: u64,
        tx: &tokio::sync::mpsc::Sender<Result<Bytes>>,
    ) -> Result<bool> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        self.file
            .seek(std::io::SeekFrom::Start(from))
            .await
            .map_err(|e| Error::io("cannot seek the spool", e))?;
        let mut left = to.saturating_sub(from);
        while left > 0 {
            let mut buf = vec![0u8; left.min(1 << 20) as usize];
            self.file
                .read_exact(&mut buf)
                .await
                .map_err(|e| Error::io("cannot read the spool", e))?;
            left -= buf.len() as u64;
            if tx.send(Ok(Bytes::from(buf))).await.is_err() {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Builds an HTTP client, with a registry's TLS settings if given.
/// Every client has the daemon's timeouts and idle-connection cap,
/// resolves names to no link-local address ([`secrets::NoLinkLocal`]), and
/// follows redirects only as far as 10 hops and never from https to http
/// (reqwest drops `Authorization` whenever a redirect changes origin); a
/// token client (`follow_redirects` false) follows none.
fn http_client(
    tls: Option<&RegistryTls>,
    options: &RegistryOptions,
    follow_redirects: bool,
) -> std::result::Result<reqwest::Client, reqwest::Error> {
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        if !follow_redirects {
            // The 3xx itself is the answer: not a token.
            return attempt.stop();
        }
        let downgrade = attempt.previous().iter().any(|u| u.scheme() == "https")
            && attempt.url().scheme() != "https";
        if downgrade {
            attempt.error("refusing a redirect from https to http")
        } else if attempt.previous().len() >= 10 {
            attempt.error("more than 10 redirects")
        } else {
            attempt.follow()
        }
    });
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("satchel/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(options.connect_timeout.unwrap_or(DEFAULT_CONNECT))
        .read_timeout(options.idle())
        .pool_idle_timeout(std::time::Duration::from_secs(90))
        .pool_max_idle_per_host(
            options
                .max_idle_per_host
                .unwrap_or(DEFAULT_MAX_IDLE_PER_HOST),
        )
        .redirect(redirects)
        .dns_resolver(secrets::NoLinkLocal);
    if let Some(tls) = tls {
        if let Some(ca) = &tls.ca_pem {
            builder = builder.tls_certs_merge(reqwest::Certificate::from_pem_bundle(ca)?);
        }
        if let Some(identity) = &tls.identity_pem {
            builder = builder.identity(reqwest::Identity::from_pem(identity)?);
        }
        if tls.insecure {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
    }
    builder.build()
}

/// `host[:port]` of a URL.
fn authority(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => String::new(),
    }
}

/// The URL without its query, which may carry upload state.
fn redact_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_details_prefer_the_json_codes() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
        assert_eq!(error_details(body), "MANIFEST_UNKNOWN manifest unknown");
        assert_eq!(error_details(b"404 page not found\n"), "404 page not found");
    }
}

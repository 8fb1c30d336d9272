//! Registry authentication: credentials, `WWW-Authenticate` challenges and
//! the bearer-token cache.
//!
//! This module reads no files and no environment: the caller hands it a
//! [`CredentialSource`]. Secrets live in [`Secret`], whose `Debug` and
//! `Display` print `<redacted>`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::future::BoxFuture;
use serde::Deserialize;

use crate::error::{Error, ErrorKind, Result};

/// A secret string: a password, token or refresh token.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself, for building a request header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Credentials for one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A username and password, sent as HTTP basic auth or traded for a token.
    Basic {
        /// The user name; not secret.
        username: String,
        /// The password.
        password: Secret,
    },
    /// An OAuth2 refresh token (docker's `identitytoken`).
    IdentityToken(Secret),
}

impl Credential {
    /// The user name, or `<token>` for an identity token (docker's
    /// convention in credential helpers).
    pub fn username(&self) -> &str {
        match self {
            Credential::Basic { username, .. } => username,
            Credential::IdentityToken(_) => "<token>",
        }
    }
}

/// Where registry credentials come from; the daemon implements it over
/// docker's `config.json` and credential helpers.
pub trait CredentialSource: Send + Sync {
    /// Credentials for `registry` (`host[:port]`, `docker.io` for Docker
    /// Hub); `None` means anonymous. Errors (a failing helper) are reported.
    fn get<'a>(&'a self, registry: &'a str) -> BoxFuture<'a, Result<Option<Credential>>>;
}

/// A source with no credentials: every request is anonymous.
pub struct Anonymous;

impl CredentialSource for Anonymous {
    fn get<'a>(&'a self, _registry: &'a str) -> BoxFuture<'a, Result<Option<Credential>>> {
        Box::pin(async { Ok(None) })
    }
}

/// What a docker `config.json` says about credentials.
#[derive(Default, Clone)]
pub struct DockerConfig {
    /// Inline credentials per registry.
    auths: BTreeMap<String, Credential>,
    /// `credHelpers`: a helper name per registry.
    cred_helpers: BTreeMap<String, String>,
    /// `credsStore`: the helper for every other registry.
    creds_store: Option<String>,
}

impl fmt::Debug for DockerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerConfig")
            .field("registries", &self.auths.keys().collect::<Vec<_>>())
            .field("cred_helpers", &self.cred_helpers)
            .field("creds_store", &self.creds_store)
            .finish()
    }
}

impl DockerConfig {
    /// Parses the content of a docker `config.json`.
    pub fn parse(json: &[u8]) -> Result<DockerConfig> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct File {
            #[serde(default)]
            auths: BTreeMap<String, Entry>,
            #[serde(default)]
            cred_helpers: BTreeMap<String, String>,
            creds_store: Option<String>,
        }
        #[derive(Deserialize)]
        struct Entry {
            auth: Option<String>,
            username: Option<String>,
            password: Option<String>,
            identitytoken: Option<String>,
        }
        // Parse errors from serde can quote the input; do not pass them on.
        let file: File = serde_json::from_slice(json).map_err(|e| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "docker config.json is not valid (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        let mut auths = BTreeMap::new();
        for (key, entry) in file.auths {
            let registry = normalize_config_key(&key);
            let cred = if let Some(token) = entry.identitytoken.filter(|t| !t.is_empty()) {
                Credential::IdentityToken(Secret::new(token))
            } else if let (Some(u), Some(p)) = (entry.username.clone(), entry.password) {
                Credential::Basic {
                    username: u,
                    password: Secret::new(p),
                }
            } else if let Some(auth) = entry.auth.filter(|a| !a.is_empty()) {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        Error::invalid(format!("the auth entry for {key:?} is not base64"))
                    })?;
                let (u, p) = decoded.split_once(':').ok_or_else(|| {
                    Error::invalid(format!("the auth entry for {key:?} is not user:password"))
                })?;
                Credential::Basic {
                    username: u.to_string(),
                    password: Secret::new(p),
                }
            } else {
                continue;
            };
            auths.insert(registry, cred);
        }
        let cred_helpers = file
            .cred_helpers
            .into_iter()
            .map(|(k, v)| (normalize_config_key(&k), v))
            .collect();
        Ok(DockerConfig {
            auths,
            cred_helpers,
            creds_store: file.creds_store.filter(|s| !s.is_empty()),
        })
    }

    /// The inline credentials, by registry.
    pub fn auths(&self) -> &BTreeMap<String, Credential> {
        &self.auths
    }

    /// The inline credentials for `registry`.
    pub fn auth_for(&self, registry: &str) -> Option<Credential> {
        self.auths.get(registry).cloned()
    }

    /// The credential helper for `registry`, in docker's order:
    /// `credHelpers[registry]`, then `credsStore`.
    pub fn helper_for(&self, registry: &str) -> Option<&str> {
        self.cred_helpers
            .get(registry)
            .or(self.creds_store.as_ref())
            .map(String::as_str)
    }

    /// Every helper named in the file.
    pub fn helpers(&self) -> impl Iterator<Item = &str> {
        let mut all: Vec<&str> = self.cred_helpers.values().map(String::as_str).collect();
        all.extend(self.creds_store.as_deref());
        all.sort();
        all.dedup();
        all.into_iter()
    }
}

/// The key docker uses for `registry` in `config.json` and when talking to
/// credential helpers.
pub fn config_key(registry: &str) -> String {
    if registry == crate::reference::DOCKER_HUB {
        "https://index.docker.io/v1/".to_string()
    } else {
        registry.to_string()
    }
}

/// Turns a `config.json` or helper key into a registry name.
pub fn registry_of_key(key: &str) -> String {
    normalize_config_key(key)
}

/// When a JWT says it expires (its `exp` claim), if the token is a JWT.
pub fn jwt_expiry(token: &str) -> Option<std::time::SystemTime> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?.as_u64()?;
    Some(std::time::UNIX_EPOCH + Duration::from_secs(exp))
}

/// Turns a `config.json` key (`https://index.docker.io/v1/`,
/// `http://host:5000`, `host:5000`) into a registry name.
fn normalize_config_key(key: &str) -> String {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key.split('/').next().unwrap_or(key);
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        other => other.to_string(),
    }
}

/// One challenge from a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme, lowercased: `bearer` or `basic`.
    pub scheme: String,
    /// The parameters, keys lowercased.
    pub params: BTreeMap<String, String>,
}

/// Parses a `WWW-Authenticate` header value, which may hold several
/// challenges and quoted values with commas in them.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    let s = header.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < s.len() && (s[*i] == b' ' || s[*i] == b'\t' || s[*i] == b',') {
            *i += 1;
        }
    };
    let is_token = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&c);
    loop {
        skip_ws(&mut i);
        if i >= s.len() {
            break;
        }
        let start = i;
        while i < s.len() && is_token(s[i]) {
            i += 1;
        }
        if i == start {
            i += 1; // skip a stray character
            continue;
        }
        let word = &header[start..i];
        // Look past spaces: '=' means a parameter of the current challenge.
        let mut j = i;
        while j < s.len() && s[j] == b' ' {
            j += 1;
        }
        if j < s.len() && s[j] == b'=' && !out.is_empty() {
            i = j + 1;
            while i < s.len() && s[i] == b' ' {
                i += 1;
            }
            let value = if i < s.len() && s[i] == b'"' {
                i += 1;
                let mut v = String::new();
                while i < s.len() && s[i] != b'"' {
                    if s[i] == b'\\' && i + 1 < s.len() {
                        i += 1;
                    }
                    let ch = header[i..].chars().next().unwrap_or('\u{fffd}');
                    v.push(ch);
                    i += ch.len_utf8();
                }
                i += 1; // closing quote
                v
            } else {
                let vs = i;
                while i < s.len() && s[i] != b',' && s[i] != b' ' {
                    i += 1;
                }
                header[vs..i].to_string()
            };
            if let Some(last) = out.last_mut() {
                last.params.insert(word.to_ascii_lowercase(), value);
            }
        } else {
            out.push(Challenge {
                scheme: word.to_ascii_lowercase(),
                params: BTreeMap::new(),
            });
        }
    }
    out
}

/// A bearer token and when to stop using it.
#[derive(Clone)]
struct CachedToken {
    token: Secret,
    refresh_at: Instant,
}

/// Bearer tokens keyed by (registry, service, scope).
#[derive(Default)]
pub(crate) struct TokenCache {
    tokens: Mutex<HashMap<(String, String, String), CachedToken>>,
}

impl TokenCache {
    pub(crate) fn get(&self, registry: &str, service: &str, scope: &str) -> Option<Secret> {
        let tokens = self.tokens.lock().expect("token cache lock");
        let key = (registry.to_string(), service.to_string(), scope.to_string());
        tokens
            .get(&key)
            .filter(|t| t.refresh_at > Instant::now())
            .map(|t| t.token.clone())
    }

    pub(crate) fn put(
        &self,
        registry: &str,
        service: &str,
        scope: &str,
        token: Secret,
        lifetime: Duration,
    ) {
        // Refresh at 90% of the lifetime so a token never expires in flight.
        let refresh_at = Instant::now() + lifetime.mul_f32(0.9);
        let key = (registry.to_string(), service.to_string(), scope.to_string());
        self.tokens
            .lock()
            .expect("token cache lock")
            .insert(key, CachedToken { token, refresh_at });
    }

    /// Forgets the token for the key if it is the one `rejected` names
    /// (`Bearer <token>`, the `Authorization` a 401 answered). A token
    /// fetched meanwhile by a concurrent request (one that went out before
    /// the challenge was known, say) is kept.
    pub(crate) fn evict_rejected(
        &self,
        registry: &str,
        service: &str,
        scope: &str,
        rejected: Option<&str>,
    ) {
        let key = (registry.to_string(), service.to_string(), scope.to_string());
        let mut tokens = self.tokens.lock().expect("token cache lock");
        let stale = tokens.get(&key).is_some_and(|t| {
            t.refresh_at <= Instant::now()
                || rejected.and_then(|r| r.strip_prefix("Bearer ")) == Some(t.token.expose())
        });
        if stale {
            tokens.remove(&key);
        }
    }

    /// Forgets every token for `registry`, after its credentials changed.
    pub(crate) fn evict_registry(&self, registry: &str) {
        self.tokens
            .lock()
            .expect("token cache lock")
            .retain(|(r, _, _), _| r != registry);
    }
}

/// The body of a token endpoint's answer.
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    pub(crate) token: Option<String>,
    pub(crate) access_token: Option<String>,
    pub(crate) expires_in: Option<u64>,
}

impl TokenResponse {
    /// The token and its lifetime (60 s when the server does not say, as
    /// the distribution spec prescribes).
    /// A JWT's `exp`, when earlier than `expires_in` says, wins.
    pub(crate) fn into_token(self) -> Option<(Secret, Duration)> {
        let token = self.token.or(self.access_token)?;
        let mut lifetime = Duration::from_secs(self.expires_in.unwrap_or(60).max(1));
        if let Some(exp) = jwt_expiry(&token) {
            let left = exp
                .duration_since(std::time::SystemTime::now())
                .unwrap_or(Duration::ZERO);
            lifetime = lifetime.min(left);
        }
        Some((Secret::new(token), lifetime))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_with_quoted_commas() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].params["realm"], "https://auth.example.com/token");
        assert_eq!(c[0].params["scope"], "repository:a/b:pull,push");
    }

    #[test]
    fn parses_several_challenges() {
        let c = parse_challenges(r#"Basic realm="x", Bearer realm="https://t/token", service=reg"#);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].params["service"], "reg");
    }

    #[test]
    fn docker_config_forms() {
        let json = br#"{"auths":{
            "https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"},
            "localhost:5000":{"username":"u","password":"s3cr3t-canary"},
            "ghcr.io":{"identitytoken":"tok"}}}"#;
        let cfg = DockerConfig::parse(json).unwrap();
        assert_eq!(
            cfg.auth_for("docker.io"),
            Some(Credential::Basic {
                username: "user".into(),
                password: Secret::new("pass")
            })
        );
        assert!(matches!(
            cfg.auth_for("localhost:5000"),
            Some(Credential::Basic { .. })
        ));
        assert!(matches!(
            cfg.auth_for("ghcr.io"),
            Some(Credential::IdentityToken(_))
        ));
        assert!(!format!("{cfg:?}").contains("s3cr3t-canary"));
        assert!(!format!("{:?}", cfg.auth_for("localhost:5000")).contains("s3cr3t-canary"));
        assert!(format!("{:?}", cfg.auth_for("localhost:5000")).contains("<redacted>"));
    }

    #[test]
    fn helpers_in_docker_order() {
        let cfg = DockerConfig::parse(
            br#"{"credsStore":"desktop","credHelpers":{"gcr.io":"gcloud","https://index.docker.io/v1/":"hub"}}"#,
        )
        .unwrap();
        assert_eq!(cfg.helper_for("gcr.io"), Some("gcloud"));
        assert_eq!(cfg.helper_for("docker.io"), Some("hub"));
        assert_eq!(cfg.helper_for("other.io"), Some("desktop"));
        assert_eq!(config_key("docker.io"), "https://index.docker.io/v1/");
    }

    #[test]
    fn jwt_exp_is_read() {
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let token = format!("{}.{}.sig", enc("{}"), enc(r#"{"exp":2000000000}"#));
        assert_eq!(
            jwt_expiry(&token),
            Some(std::time::UNIX_EPOCH + Duration::from_secs(2_000_000_000))
        );
        assert_eq!(jwt_expiry("opaque-token"), None);
    }

    /// A 401 to a request sent before a concurrent one fetched the token
    /// (so without it) leaves that token; a 401 to the token itself drops
    /// it.
    #[test]
    fn only_the_rejected_token_is_evicted() {
        let cache = TokenCache::default();
        let key = ("reg", "svc", "repository:a:pull");
        let hour = Duration::from_secs(3600);
        cache.put(key.0, key.1, key.2, Secret::new("fresh"), hour);
        cache.evict_rejected(key.0, key.1, key.2, None);
        cache.evict_rejected(key.0, key.1, key.2, Some("Bearer older"));
        let kept = cache
            .get(key.0, key.1, key.2)
            .map(|s| s.expose().to_string());
        assert_eq!(kept.as_deref(), Some("fresh"));
        cache.evict_rejected(key.0, key.1, key.2, Some("Bearer fresh"));
        assert!(cache.get(key.0, key.1, key.2).is_none());
    }
}

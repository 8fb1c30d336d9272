//! The daemon's configuration: flags, plus an optional TOML file.
//!
//! ```toml
//! # satcheld.toml
//! docker_config = "/etc/satchel/docker-config.json"
//! upload_monolithic_max = 268435456   # larger blobs go in chunks...
//! upload_chunk_size = 134217728       # ...of this many bytes
//! cache_dir = "/var/cache/satchel"    # pulled blobs, kept for the next pull
//! cache_max_bytes = 10737418240
//! state_dir = "/var/lib/satchel"      # the referrers journal; survives restarts
//! reconcile_window_secs = 60          # how long written referrers are watched
//! watch_poll_secs = 5                 # WatchReferrers: how often a subject is polled
//! verify_policy = "/etc/satchel/policy.toml"  # trusted signing keys (see `policy`)
//! concurrency = 4                     # blobs one pull moves at once
//! upload_expiry_secs = 3600           # uploads and pull ingest idle this long are removed
//! # OCI layouts that callers other than satcheld's own user may name
//! # (--socket-group members, TCP callers); none by default.
//! layout_roots = ["/srv/layouts"]
//! registry_idle_timeout_secs = 30     # no progress for this long fails a request
//! registry_connect_timeout_secs = 10
//! registry_max_idle_connections = 8   # kept open per registry host
//! registry_tag_cache_secs = 3         # tags and referrer listings remembered; 0: never
//!
//! [registries."registry.example.com"]
//! # auto (default), v1.1-referrers-api or v1.1-referrers-tag
//! referrers = "v1.1-referrers-tag"
//! ca_file = "/etc/satchel/registry-ca.pem"      # trusted besides system roots
//! client_cert = "/etc/satchel/client.pem"       # mTLS to the registry
//! client_key = "/etc/satchel/client-key.pem"
//!
//! [registries."localhost:5000"]
//! plain_http = true                             # never assumed for localhost
//!
//! [registries."lab.internal:443"]
//! insecure = true                               # skip certificate checks
//! ```
//!
//! Files named here are read when the daemon starts; relative paths are
//! relative to the config file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use satchel_oci::registry::{ReferrersMode, RegistryOptions, RegistryTls};
use serde::Deserialize;

/// The daemon's settings, resolved by the binary.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Docker's `config.json`, the source of registry credentials; `None`
    /// means anonymous access only.
    pub docker_config: Option<PathBuf>,
    /// Settings handed to the registry client.
    pub registry: RegistryOptions,
    /// The bearer token callers must present; `None` means none is needed.
    pub auth_token: Option<satchel_oci::auth::Secret>,
    /// TLS for the listener (TCP).
    pub tls: Option<ServerTls>,
    /// The local content cache: its directory and size bound in bytes.
    pub cache: Option<(PathBuf, u64)>,
    /// How many blobs one pull moves at once (default 4).
    pub concurrency: Option<usize>,
    /// Directories under which callers other than the daemon's own user
    /// may name OCI layouts (none by default: only the owner may).
    pub layout_roots: Vec<PathBuf>,
    /// How long an upload or a pull's ingest file may sit idle before it is
    /// removed (default [`satchel_oci::content::UPLOAD_EXPIRY`]).
    pub upload_expiry: Option<std::time::Duration>,
    /// Where the daemon keeps what must survive a restart: the journal of
    /// the referrers it wrote to tag-schema indexes. `None`: no journal.
    pub state_dir: Option<PathBuf>,
    /// How often WatchReferrers polls a watched subject (default
    /// [`crate::service::watch::DEFAULT_POLL`]).
    pub watch_interval: Option<std::time::Duration>,
    /// Where the metrics endpoint listens (`GET /metrics`); none by default.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Where grpc.health.v1 alone is served in plain text, for probes; none
    /// by default.
    pub health_listen: Option<std::net::SocketAddr>,
    /// The trust policy's file ([`crate::policy`]); none: signatures are
    /// checked only against keys callers send.
    pub verify_policy: Option<PathBuf>,
}

/// The default bound of the content cache: 10 GiB.
pub const DEFAULT_CACHE_BYTES: u64 = 10 << 30;

/// The default cache directory: `$XDG_CACHE_HOME/satchel/content`, else
/// `~/.cache/satchel/content`.
pub fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|d| d.join("satchel").join("content"))
}

/// The default state directory: `$XDG_STATE_HOME/satchel`, else
/// `~/.local/state/satchel`.
pub fn default_state_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_STATE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .map(|d| d.join("satchel"))
}

/// The listener's TLS material, as PEM bytes.
#[derive(Clone)]
pub struct ServerTls {
    /// The server certificate chain.
    pub cert_pem: Vec<u8>,
    /// The server's private key.
    pub key_pem: Vec<u8>,
    /// When set, callers must present a client certificate signed by this CA.
    pub client_ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("mtls", &self.client_ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

/// The TOML file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    docker_config: Option<PathBuf>,
    /// Blobs up to this many bytes are uploaded in one PUT.
    upload_monolithic_max: Option<u64>,
    /// The chunk size, in bytes, of larger uploads.
    upload_chunk_size: Option<u64>,
    /// Where pulled blobs are cached.
    cache_dir: Option<PathBuf>,
    /// The cache's size bound in bytes.
    cache_max_bytes: Option<u64>,
    /// How many blobs one pull moves at once.
    concurrency: Option<usize>,
    /// Seconds an upload or pull ingest file may sit idle before removal.
    upload_expiry_secs: Option<u64>,
    /// Where the referrers journal lives.
    state_dir: Option<PathBuf>,
    /// Seconds a written referrer is watched in its index.
    reconcile_window_secs: Option<f64>,
    /// Seconds between two polls of a watched subject.
    watch_poll_secs: Option<f64>,
    /// The trust policy's file.
    verify_policy: Option<PathBuf>,
    /// Where callers other than the daemon's own user may name layouts.
    #[serde(default)]
    layout_roots: Vec<PathBuf>,
    /// Seconds a registry request may make no progress before it fails.
    registry_idle_timeout_secs: Option<f64>,
    /// Seconds connecting to a registry may take.
    registry_connect_timeout_secs: Option<f64>,
    /// Idle connections kept per registry host.
    registry_max_idle_connections: Option<usize>,
    /// Seconds tags and referrer listings are remembered; 0 disables.
    registry_tag_cache_secs: Option<f64>,
    #[serde(default)]
    registries: BTreeMap<String, RegistryEntry>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryEntry {
    referrers: Option<String>,
    #[serde(default)]
    plain_http: bool,
    #[serde(default)]
    insecure: bool,
    ca_file: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
}

impl Config {
    /// Reads the TOML file at `path`.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse_in(&text, base).with_context(|| format!("bad config {}", path.display()))
    }

    /// Parses TOML configuration text; files it names are read relative to
    /// the current directory.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        Self::parse_in(text, Path::new("."))
    }

    fn parse_in(text: &str, base: &Path) -> anyhow::Result<Config> {
        let read = |p: &Path| -> anyhow::Result<Vec<u8>> {
            let p = base.join(p);
            std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))
        };
        let file: File = toml::from_str(text)?;
        let mut registry = RegistryOptions {
            monolithic_max: file.upload_monolithic_max,
            chunk_size: file.upload_chunk_size,
            idle_timeout: seconds(
                file.registry_idle_timeout_secs,
                "registry_idle_timeout_secs",
            )?,
            connect_timeout: seconds(
                file.registry_connect_timeout_secs,
                "registry_connect_timeout_secs",
            )?,
            max_idle_per_host: file.registry_max_idle_connections,
            tag_ttl: match file.registry_tag_cache_secs {
                Some(0.0) => Some(std::time::Duration::ZERO),
                other => seconds(other, "registry_tag_cache_secs")?,
            },
            reconcile_window: seconds(file.reconcile_window_secs, "reconcile_window_secs")?,
            ..RegistryOptions::default()
        };
        for (host, entry) in file.registries {
            if let Some(mode) = entry.referrers {
                let mode: ReferrersMode = mode
                    .parse()
                    .with_context(|| format!("registries.{host:?}.referrers"))?;
                registry.referrers_modes.insert(host.clone(), mode);
            }
            if entry.plain_http {
                registry.plain_http.insert(host.clone());
            }
            let identity = match (&entry.client_cert, &entry.client_key) {
                (Some(cert), Some(key)) => {
                    let mut pem = read(cert)?;
                    pem.push(b'\n');
                    pem.extend(read(key)?);
                    Some(pem)
                }
                (None, None) => None,
                _ => anyhow::bail!("registries.{host:?}: client_cert and client_key go together"),
            };
            let ca_pem = entry.ca_file.as_deref().map(read).transpose()?;
            if ca_pem.is_some() || identity.is_some() || entry.insecure {
                registry.tls.insert(
                    host,
                    RegistryTls {
                        ca_pem,
                        identity_pem: identity,
                        insecure: entry.insecure,
                    },
                );
            }
        }
        let cache = file.cache_dir.map(|d| {
            (
                base.join(d),
                file.cache_max_bytes.unwrap_or(DEFAULT_CACHE_BYTES),
            )
        });
        Ok(Config {
            docker_config: file.docker_config,
            registry,
            cache,
            concurrency: file.concurrency,
            layout_roots: file.layout_roots.iter().map(|r| base.join(r)).collect(),
            upload_expiry: file.upload_expiry_secs.map(std::time::Duration::from_secs),
            state_dir: file.state_dir.map(|d| base.join(d)),
            verify_policy: file.verify_policy.map(|p| base.join(p)),
            watch_interval: seconds(file.watch_poll_secs, "watch_poll_secs")?,
            ..Config::default()
        })
    }
}

/// A positive number of seconds from the TOML file, as a duration.
fn seconds(value: Option<f64>, key: &str) -> anyhow::Result<Option<std::time::Duration>> {
    match value {
        None => Ok(None),
        Some(s) if s.is_finite() && s > 0.0 && s < 1e9 => {
            Ok(Some(std::time::Duration::from_secs_f64(s)))
        }
        Some(s) => anyhow::bail!("{key} must be a positive number of seconds, not {s}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_registry_modes() {
        let cfg = Config::parse(
            r#"
            [registries."localhost:5000"]
            referrers = "v1.1-referrers-tag"
            "#,
        )
        .unwrap();
        assert_eq!(
            cfg.registry.referrers_modes["localhost:5000"],
            ReferrersMode::TagSchema
        );
        assert!(Config::parse("[registries.x]\nreferrers = \"nope\"").is_err());
        assert!(Config::parse("unknown = 1").is_err());
        let cfg =
            Config::parse("layout_roots = [\"/srv/layouts\"]\nupload_expiry_secs = 5").unwrap();
        assert_eq!(cfg.layout_roots, vec![PathBuf::from("/srv/layouts")]);
        assert_eq!(cfg.upload_expiry, Some(std::time::Duration::from_secs(5)));
    }

    #[test]
    fn tag_cache_seconds_zero_disables() {
        let ttl = |text: &str| Config::parse(text).unwrap().registry.tag_ttl;
        assert_eq!(ttl(""), None);
        assert_eq!(
            ttl("registry_tag_cache_secs = 0"),
            Some(std::time::Duration::ZERO)
        );
        assert_eq!(
            ttl("registry_tag_cache_secs = 1.5"),
            Some(std::time::Duration::from_millis(1500))
        );
        assert!(Config::parse("registry_tag_cache_secs = -1").is_err());
    }
}

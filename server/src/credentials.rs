//! Registry credentials the way docker finds them: `credHelpers[registry]`,
//! then `credsStore`, then `auths` in `config.json`. The file is re-read
//! when it changes, so a `docker login` elsewhere takes effect at once.
//!
//! Helpers (`docker-credential-NAME get|store|erase|list`) run with a
//! timeout. Their output may hold secrets, so errors name the helper and
//! its exit status, never what it printed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use futures::future::BoxFuture;
use satchel_oci::auth::{
    config_key, registry_of_key, Credential, CredentialSource, DockerConfig, Secret,
};
use satchel_oci::{Error, ErrorKind, Result};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

/// How long a credential helper may take.
const HELPER_TIMEOUT: Duration = Duration::from_secs(10);

/// Finds docker's `config.json`: `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`.
pub fn default_docker_config() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

/// One stored credential, as listed: never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The registry.
    pub registry: String,
    /// The user name (`<token>` for identity tokens).
    pub username: String,
    /// Where it is kept: `config.json` or `docker-credential-NAME`.
    pub source: String,
}

/// Credentials from a docker `config.json` and the helpers it names.
pub struct DockerCredentials {
    /// The file; it may not exist, which means no credentials.
    path: Option<PathBuf>,
    /// The parsed file and the modification time it was read at.
    cached: Mutex<Option<(SystemTime, DockerConfig)>>,
}

#[derive(Deserialize)]
struct HelperCredential {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

impl DockerCredentials {
    /// Credentials from `path`, read lazily.
    pub fn new(path: Option<PathBuf>) -> Self {
        DockerCredentials {
            path,
            cached: Mutex::new(None),
        }
    }

    /// The parsed file; empty when there is none.
    fn config(&self) -> Result<DockerConfig> {
        let Some(path) = self.path.as_deref() else {
            return Ok(DockerConfig::default());
        };
        let Ok(mtime) = std::fs::metadata(path).and_then(|m| m.modified()) else {
            return Ok(DockerConfig::default());
        };
        let mut cached = self.cached.lock().expect("credentials lock");
        if let Some((seen, cfg)) = cached.as_ref() {
            if *seen == mtime {
                return Ok(cfg.clone());
            }
        }
        let data = std::fs::read(path).map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                format!("cannot read {}", path.display()),
            )
            .with_source(e)
        })?;
        let cfg = DockerConfig::parse(&data)?;
        *cached = Some((mtime, cfg.clone()));
        Ok(cfg)
    }

    /// Runs `docker-credential-NAME verb` with `input` on stdin.
    async fn helper(&self, name: &str, verb: &str, input: &[u8]) -> Result<HelperOutput> {
        let program = format!("docker-credential-{name}");
        let fail = |why: String| {
            Error::new(
                ErrorKind::Unauthenticated,
                format!("credential helper {program} failed to {verb}: {why}"),
            )
        };
        let mut child = tokio::process::Command::new(&program)
            .arg(verb)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(format!("cannot run it ({e})")))?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let input = input.to_vec();
        let run = async move {
            stdin.write_all(&input).await?;
            drop(stdin);
            child.wait_with_output().await
        };
        let out = tokio::time::timeout(HELPER_TIMEOUT, run)
            .await
            .map_err(|_| fail(format!("no answer within {HELPER_TIMEOUT:?}")))?
            .map_err(|e| fail(e.to_string()))?;
        Ok(HelperOutput {
            program,
            success: out.status.success(),
            status: out.status.to_string(),
            stdout: out.stdout,
        })
    }

    /// Credentials from a helper; `None` when it has none for `registry`.
    async fn get_from_helper(&self, name: &str, registry: &str) -> Result<Option<Credential>> {
        let out = self
            .helper(name, "get", config_key(registry).as_bytes())
            .await?;
        if !out.success {
            // Docker's helpers say so on stdout; that text is not secret.
            if String::from_utf8_lossy(&out.stdout).contains("credentials not found") {
                return Ok(None);
            }
            return Err(out.failed(&format!("get credentials for {registry}")));
        }
        let cred: HelperCredential = serde_json::from_slice(&out.stdout).map_err(|_| {
            Error::new(
                ErrorKind::Unauthenticated,
                format!("credential helper {} answered get for {registry} with something that is not a credential", out.program),
            )
        })?;
        Ok(Some(if cred.username == "<token>" {
            Credential::IdentityToken(Secret::new(cred.secret))
        } else {
            Credential::Basic {
                username: cred.username,
                password: Secret::new(cred.secret),
            }
        }))
    }

    /// Stores `credential` for `registry` through its helper, or in the
    /// config file (mode 0600). Returns where it went.
    pub async fn store(&self, registry: &str, credential: &Credential) -> Result<String> {
        let cfg = self.config()?;
        let (username, secret) = match credential {
            Credential::Basic { username, password } => (username.as_str(), password.expose()),
            Credential::IdentityToken(t) => ("<token>", t.expose()),
        };
        if let Some(name) = cfg.helper_for(registry) {
            let input = serde_json::json!({
                "ServerURL": config_key(registry),
                "Username": username,
                "Secret": secret,
            });
            let out = self
                .helper(name, "store", input.to_string().as_bytes())
                .await?;
            if !out.success {
                return Err(out.failed(&format!("store credentials for {registry}")));
            }
            return Ok(out.program);
        }
        let path = self.writable_path()?;
        self.edit_file(&path, |auths| {
            let entry = match credential {
                Credential::Basic { username, password } => serde_json::json!({
                    "auth": base64::engine::general_purpose::STANDARD
                        .encode(format!("{username}:{}", password.expose())),
                }),
                Credential::IdentityToken(t) => serde_json::json!({ "identitytoken": t.expose() }),
            };
            auths.retain(|k, _| registry_of_key(k) != registry);
            auths.insert(config_key(registry), entry);
        })?;
        Ok(path.display().to_string())
    }

    /// Removes the credentials for `registry`; says whether there were any.
    pub async fn erase(&self, registry: &str) -> Result<bool> {
        let cfg = self.config()?;
        if let Some(name) = cfg.helper_for(registry) {
            let out = self
                .helper(name, "erase", config_key(registry).as_bytes())
                .await?;
            if !out.success {
                if String::from_utf8_lossy(&out.stdout).contains("credentials not found") {
                    return Ok(false);
                }
                return Err(out.failed(&format!("erase credentials for {registry}")));
            }
            return Ok(true);
        }
        if cfg.auth_for(registry).is_none() {
            return Ok(false);
        }
        let path = self.writable_path()?;
        self.edit_file(&path, |auths| {
            auths.retain(|k, _| registry_of_key(k) != registry)
        })?;
        Ok(true)
    }

    /// Every stored credential: registries and user names, never secrets.
    pub async fn list(&self) -> Result<Vec<Listed>> {
        let cfg = self.config()?;
        let mut out: Vec<Listed> = cfg
            .auths()
            .iter()
            .map(|(registry, cred)| Listed {
                registry: registry.clone(),
                username: cred.username().to_string(),
                source: self
                    .path
                    .as_deref()
                    .map_or("config.json".into(), |p| p.display().to_string()),
            })
            .collect();
        for name in cfg.helpers() {
            // A broken helper must not hide what the others hold.
            let out_h = match self.helper(name, "list", b"").await {
                Ok(out) if out.success => out,
                Ok(out) => {
                    tracing::warn!(error = %out.failed("list credentials"), "skipping a credential helper");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "skipping a credential helper");
                    continue;
                }
            };
            let listed: BTreeMap<String, String> =
                serde_json::from_slice(&out_h.stdout).unwrap_or_default();
            for (url, username) in listed {
                let registry = registry_of_key(&url);
                if cfg.helper_for(&registry) == Some(name) {
                    out.retain(|l| l.registry != registry);
                    out.push(Listed {
                        registry,
                        username,
                        source: out_h.program.clone(),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.registry.cmp(&b.registry));
        Ok(out)
    }

    fn writable_path(&self) -> Result<PathBuf> {
        self.path.clone().ok_or_else(|| {
            Error::new(
                ErrorKind::FailedPrecondition,
                "satcheld has no docker config file to store credentials in (set --docker-config)",
            )
        })
    }

    /// Rewrites the `auths` of the config file, keeping everything else,
    /// through a 0600 temporary file and a rename.
    fn edit_file(
        &self,
        path: &Path,
        change: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
    ) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let io = |what: &str, e: std::io::Error| {
            Error::new(
                ErrorKind::Internal,
                format!("cannot {what} {}", path.display()),
            )
            .with_source(e)
        };
        let mut doc: serde_json::Value = match std::fs::read(path) {
            Ok(data) => serde_json::from_slice(&data).map_err(|_| {
                Error::new(
                    ErrorKind::FailedPrecondition,
                    format!("{} is not valid JSON", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::json!({}),
            Err(e) => return Err(io("read", e)),
        };
        let root = doc.as_object_mut().ok_or_else(|| {
            Error::new(
                ErrorKind::FailedPrecondition,
                format!("{} is not a JSON object", path.display()),
            )
        })?;
        let auths = root.entry("auths").or_insert_with(|| serde_json::json!({}));
        if !auths.is_object() {
            *auths = serde_json::json!({});
        }
        change(auths.as_object_mut().expect("auths is an object"));
        let dir = path.parent().unwrap_or(Path::new("."));
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| io("create the directory of", e))?;
        }
        let tmp = dir.join(format!(".config.json.satchel-{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&serde_json::to_vec_pretty(&doc).expect("JSON serialises"))?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io("write", e)
        })?;
        *self.cached.lock().expect("credentials lock") = None;
        Ok(())
    }
}

use std::os::unix::fs::DirBuilderExt;

/// What a helper run produced.
struct HelperOutput {
    program: String,
    success: bool,
    status: String,
    stdout: Vec<u8>,
}

impl HelperOutput {
    fn failed(&self, what: &str) -> Error {
        Error::new(
            ErrorKind::Unauthenticated,
            format!(
                "credential helper {} failed to {what}: {}",
                self.program, self.status
            ),
        )
    }
}

impl CredentialSource for DockerCredentials {
    fn get<'a>(&'a self, registry: &'a str) -> BoxFuture<'a, Result<Option<Credential>>> {
        Box::pin(async move {
            let cfg = self.config()?;
            match cfg.helper_for(registry) {
                Some(name) => self.get_from_helper(name, registry).await,
                None => Ok(cfg.auth_for(registry)),
            }
        })
    }
}

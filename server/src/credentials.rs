//! Registry credentials from docker's `config.json`, re-read when the file
//! changes so `docker login` takes effect without a daemon restart.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use satchel_oci::auth::{Credential, CredentialSource, DockerConfig};

/// Finds docker's `config.json`: `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`.
pub fn default_docker_config() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

/// Credentials read from a docker `config.json`.
pub struct DockerConfigFile {
    /// The file; it may not exist, which means no credentials.
    path: Option<PathBuf>,
    /// The parsed file and the modification time it was read at.
    cached: Mutex<Option<(SystemTime, DockerConfig)>>,
}

impl DockerConfigFile {
    /// Credentials from `path`, read lazily.
    pub fn new(path: Option<PathBuf>) -> Self {
        DockerConfigFile {
            path,
            cached: Mutex::new(None),
        }
    }

    fn load(&self, path: &Path) -> Option<DockerConfig> {
        let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
        let mut cached = self.cached.lock().expect("credentials lock");
        if let Some((seen, cfg)) = cached.as_ref() {
            if *seen == mtime {
                return Some(cfg.clone());
            }
        }
        let data = std::fs::read(path).ok()?;
        match DockerConfig::parse(&data) {
            Ok(cfg) => {
                *cached = Some((mtime, cfg.clone()));
                Some(cfg)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable docker config");
                None
            }
        }
    }
}

impl CredentialSource for DockerConfigFile {
    fn get(&self, registry: &str) -> Option<Credential> {
        let path = self.path.as_deref()?;
        self.load(path)?.get(registry)
    }
}

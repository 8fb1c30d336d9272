//! The daemon's configuration: flags, plus an optional TOML file.
//!
//! ```toml
//! # satcheld.toml
//! docker_config = "/etc/satchel/docker-config.json"
//!
//! [registries."registry.example.com"]
//! # auto (default), v1.1-referrers-api or v1.1-referrers-tag
//! referrers = "v1.1-referrers-tag"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use satchel_oci::registry::{ReferrersMode, RegistryOptions};
use serde::Deserialize;

/// The daemon's settings, resolved by the binary.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Docker's `config.json`, the source of registry credentials; `None`
    /// means anonymous access only.
    pub docker_config: Option<PathBuf>,
    /// Settings handed to the registry client.
    pub registry: RegistryOptions,
}

/// The TOML file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    docker_config: Option<PathBuf>,
    #[serde(default)]
    registries: BTreeMap<String, RegistryEntry>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryEntry {
    referrers: Option<String>,
}

impl Config {
    /// Reads the TOML file at `path`.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("bad config {}", path.display()))
    }

    /// Parses TOML configuration text.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let file: File = toml::from_str(text)?;
        let mut registry = RegistryOptions::default();
        for (host, entry) in file.registries {
            if let Some(mode) = entry.referrers {
                let mode: ReferrersMode = mode
                    .parse()
                    .with_context(|| format!("registries.{host:?}.referrers"))?;
                registry.referrers_modes.insert(host, mode);
            }
        }
        Ok(Config {
            docker_config: file.docker_config,
            registry,
        })
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
    }
}

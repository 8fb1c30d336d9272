//! The trust policy: which public keys must have signed which artifacts,
//! per registry or repository scope and per artifact type. A TOML file of
//! its own (`--verify-policy`, or `verify_policy` in the config):
//!
//! ```toml
//! [[trust]]
//! scope = "registry.internal/*"              # a repository, or a prefix ending in "*"
//! artifact_type = "application/vnd.cyclonedx+json"   # optional: every type
//! keys = ["build.pub"]                       # PEM files, relative to this file
//! ```
//!
//! Every rule whose scope and type match an artifact adds its keys; an
//! artifact one of them signed verifies. An artifact no rule matches needs
//! no signature (unless the caller names keys).
//!
//! The file and its keys are read again whenever one of them changes (by
//! content, checked on every use), so a new policy or key takes effect on
//! the next call; when they cannot be read, every call that needs the
//! policy fails rather than go unverified. Replace the file by renaming
//! a complete one over it: a policy caught half-written may parse.
//!
//! Scopes are matched against `registry/repository` as references name
//! them, the registry's host in lower case, its port as written (no port
//! and `:443` are different scopes).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use satchel_oci::{Error, ErrorKind, Result};
use satchel_verify::PublicKey;
use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    trust: Vec<RuleFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    scope: String,
    #[serde(default)]
    artifact_type: Option<String>,
    keys: Vec<PathBuf>,
}

/// One `[[trust]]` rule, its keys read.
#[derive(Debug)]
struct Rule {
    scope: String,
    artifact_type: Option<String>,
    keys: Vec<PublicKey>,
}

/// A policy as read at one moment.
#[derive(Debug, Default)]
pub struct Policy {
    rules: Vec<Rule>,
    /// `sha256:<hex>` over the file and every key it names: what the
    /// verification cache is keyed by, so any change misses it.
    fingerprint: String,
}

impl Policy {
    /// Reads the policy at `path` and the keys it names; `stamps` gets
    /// every file read, for [`PolicySource`] to watch.
    fn read(path: &Path, stamps: &mut Vec<(PathBuf, Stamp)>) -> anyhow::Result<Policy> {
        let text = read_stamped(path, stamps)?;
        let file: PolicyFile =
            toml::from_str(std::str::from_utf8(&text).context("the policy is not UTF-8")?)
                .with_context(|| format!("reading the policy {}", path.display()))?;
        let mut hash = Sha256::new();
        hash.update(&text);
        let base = path.parent().unwrap_or(Path::new("."));
        let mut rules = Vec::new();
        for rule in file.trust {
            if rule.keys.is_empty() {
                anyhow::bail!("the trust rule for {:?} names no keys", rule.scope);
            }
            let mut keys = Vec::new();
            for key in &rule.keys {
                let key_path = base.join(key);
                let pem = read_stamped(&key_path, stamps)?;
                hash.update(&pem);
                keys.push(
                    PublicKey::from_pem(&pem)
                        .with_context(|| format!("reading the key {}", key_path.display()))?,
                );
            }
            rules.push(Rule {
                scope: rule.scope,
                artifact_type: rule.artifact_type,
                keys,
            });
        }
        Ok(Policy {
            rules,
            fingerprint: format!("sha256:{}", hex::encode(hash.finalize())),
        })
    }

    /// The keys trusted for an artifact of `artifact_type` in `repository`
    /// (`registry/repository`, as a reference names it); empty when no rule
    /// applies.
    pub fn keys_for(&self, repository: &str, artifact_type: &str) -> Vec<PublicKey> {
        let mut keys: Vec<PublicKey> = Vec::new();
        for rule in &self.rules {
            let type_matches = rule
                .artifact_type
                .as_deref()
                .is_none_or(|t| t == artifact_type);
            if type_matches && scope_matches(&rule.scope, repository) {
                for key in &rule.keys {
                    if !keys.contains(key) {
                        keys.push(key.clone());
                    }
                }
            }
        }
        keys
    }

    /// Changes whenever the policy file or one of its keys does.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

/// Whether `scope` covers `repository`: equal, or a prefix ending in `*`
/// (`registry.internal/*`, `registry.internal/team/*`, `*`).
fn scope_matches(scope: &str, repository: &str) -> bool {
    let (scope, repository) = (host_lowercase(scope), host_lowercase(repository));
    match scope.strip_suffix('*') {
        Some(prefix) => repository.starts_with(prefix),
        None => scope == repository,
    }
}

/// `name` with its first component (the registry host) in lower case, as
/// DNS compares it.
fn host_lowercase(name: &str) -> String {
    match name.split_once('/') {
        Some((host, rest)) => format!("{}/{rest}", host.to_ascii_lowercase()),
        None => name.to_ascii_lowercase(),
    }
}

/// What identifies a version of a file: the SHA-256 of its bytes (the
/// files are small, and a time or size can stay the same across a change:
/// `cp -p`, a key of the same length).
type Stamp = [u8; 32];

fn stamp(path: &Path) -> Option<Stamp> {
    std::fs::read(path).ok().map(|b| Sha256::digest(b).into())
}

fn read_stamped(path: &Path, stamps: &mut Vec<(PathBuf, Stamp)>) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    stamps.push((path.to_path_buf(), Sha256::digest(&bytes).into()));
    Ok(bytes)
}

/// The policy file, read again when it or a key changes.
pub struct PolicySource {
    path: Option<PathBuf>,
    current: Mutex<Loaded>,
}

struct Loaded {
    stamps: Vec<(PathBuf, Stamp)>,
    policy: std::result::Result<Arc<Policy>, String>,
}

impl PolicySource {
    /// A source for the policy at `path`, read now so a bad policy stops
    /// the daemon at start; `None` for a daemon with no policy.
    pub fn open(path: Option<PathBuf>) -> anyhow::Result<PolicySource> {
        let mut stamps = Vec::new();
        let policy = match &path {
            Some(p) => Policy::read(p, &mut stamps)?,
            None => Policy::default(),
        };
        Ok(PolicySource {
            path,
            current: Mutex::new(Loaded {
                stamps,
                policy: Ok(Arc::new(policy)),
            }),
        })
    }

    /// The policy now: read again if a file it came from changed. Fails
    /// FAILED_PRECONDITION while the files cannot be read.
    pub fn current(&self) -> Result<Arc<Policy>> {
        let Some(path) = &self.path else {
            return Ok(self.loaded());
        };
        let mut loaded = self.current.lock().expect("policy lock");
        let changed = loaded.stamps.is_empty()
            || loaded
                .stamps
                .iter()
                .any(|(p, s)| stamp(p).as_ref() != Some(s));
        if changed {
            let mut stamps = Vec::new();
            loaded.policy = Policy::read(path, &mut stamps)
                .map(Arc::new)
                .map_err(|e| format!("{e:#}"));
            if let Err(e) = &loaded.policy {
                tracing::warn!(error = %e, "the verification policy cannot be read");
            }
            loaded.stamps = stamps;
        }
        loaded.policy.clone().map_err(|e| {
            Error::new(
                ErrorKind::FailedPrecondition,
                format!("the daemon's verification policy cannot be read: {e}"),
            )
        })
    }

    fn loaded(&self) -> Arc<Policy> {
        match &self.current.lock().expect("policy lock").policy {
            Ok(p) => p.clone(),
            Err(_) => Arc::new(Policy::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_match_repositories_and_prefixes() {
        assert!(scope_matches("reg.io/*", "reg.io/team/app"));
        assert!(scope_matches("*", "anything/at/all"));
        assert!(scope_matches("reg.io/app", "reg.io/app"));
        assert!(!scope_matches("reg.io/app", "reg.io/app2"));
        assert!(!scope_matches("reg.io/team/*", "reg.io/other"));
        assert!(scope_matches("reg.io/*", "REG.io/team/app"));
        assert!(!scope_matches("reg.io/App", "reg.io/app"));
    }

    #[test]
    fn an_unreadable_policy_fails_closed_and_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, "").unwrap();
        let source = PolicySource::open(Some(path.clone())).unwrap();
        let first = source.current().unwrap().fingerprint().to_string();
        std::fs::write(
            &path,
            "[[trust]]\nscope = \"*\"\nkeys = [\"missing.pub\"]\n",
        )
        .unwrap();
        let err = source.current().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
        std::fs::write(&path, "# again empty\n").unwrap();
        let again = source.current().unwrap();
        assert_ne!(again.fingerprint(), first);
        assert!(again.keys_for("reg/repo", "t").is_empty());
    }
}

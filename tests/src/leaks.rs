//! Looking for secrets where they must not be: the canaries of
//! [`crate::auth`] in answers, CLI output, a daemon's log and its files.

use std::path::Path;

use crate::auth::{CANARY_PASSWORD, USER};
use crate::Daemon;

/// The canary credential as a Basic `Authorization` carries it.
pub fn basic_b64() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{CANARY_PASSWORD}"))
}

/// Fails if `needle` is in any file under `dir`, but under `docker/`, where
/// login keeps credentials on purpose.
pub fn absent_from_tree(dir: &Path, needle: &str) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.file_name().is_some_and(|n| n == "docker") {
            continue;
        }
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            absent_from_tree(&path, needle);
        } else if meta.is_file() {
            let bytes = std::fs::read(&path).unwrap_or_default();
            let found = bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
            assert!(!found, "{needle:?} leaked into {}", path.display());
        }
    }
}

/// Fails if any of `secrets` is in `answer` (a gRPC answer or CLI output,
/// as text), the daemon's log or the files it keeps (its content store
/// included).
pub fn kept_secret(daemon: &Daemon, answer: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !answer.contains(secret),
            "{secret:?} leaked into the answer: {answer}"
        );
        assert!(
            !daemon.log().contains(secret),
            "{secret:?} leaked into the daemon log"
        );
        absent_from_tree(daemon.scratch(), secret);
    }
}

/// The gRPC code at the end of a CLI error line.
pub fn cli_code(err: &str) -> &str {
    let line = err.trim_end();
    line.rsplit_once('(')
        .and_then(|(_, c)| c.strip_suffix(')'))
        .unwrap_or(line)
}

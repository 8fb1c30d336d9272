//! Image references, parsed and normalised the way docker does it:
//! `alpine` is `docker.io/library/alpine:latest`, `localhost:5000/app` keeps
//! its port, and `name:tag@digest` keeps both parts.

use std::fmt;

use crate::digest::{self, Digest};
use crate::error::{Error, Result};

/// The registry that bare names belong to.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that serves the Docker Hub API.
const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// The longest registry host name (DNS's limit). With the limits on
/// repository, tag and digest, this keeps every reference we print (with a
/// digest added, `docker.io/library/` spelt out) short enough to parse.
const MAX_HOST_LEN: usize = 253;
/// The tag used when a reference names neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";

/// A parsed registry reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// The registry host, with port when one was given (`localhost:5000`).
    registry: String,
    /// The repository path inside the registry (`library/alpine`).
    repository: String,
    /// The tag, if the reference names one.
    tag: Option<String>,
    /// The digest, if the reference names one; it wins over the tag.
    digest: Option<Digest>,
}

impl Reference {
    /// Parses a reference such as `alpine`, `ghcr.io/org/app:v1` or
    /// `localhost:5000/app@sha256:...`.
    pub fn parse(input: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::invalid(format!(
                "invalid reference {}: {why}",
                crate::text::quoted(input)
            ))
        };
        if input.is_empty() {
            return Err(bad("empty"));
        }
        if input.len() > 4096 || input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("contains whitespace or is too long"));
        }
        let (name_tag, digest) = match input.split_once('@') {
            Some((n, d)) => (n, Some(digest::parse(d).map_err(|e| bad(e.message()))?)),
            None => (input, None),
        };
        // A tag is a ':' after the last '/'.
        let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&name_tag[..at], Some(name_tag[at + 1..].to_string()))
            }
            None => (name_tag, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let registry = if registry == "index.docker.io" {
            DOCKER_HUB.to_string()
        } else {
            registry
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        validate_registry(&registry).map_err(|why| bad(&why))?;
        validate_repository(&repository).map_err(|why| bad(&why))?;
        if let Some(tag) = &tag {
            validate_tag(tag).map_err(|why| bad(&why))?;
        }
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The registry as named (`docker.io`, `localhost:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host[:port] to send API requests to.
    pub fn api_host(&self) -> &str {
        api_host_of(&self.registry)
    }

    /// The repository path.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What to ask the registry for: the digest if there is one, else the
    /// tag, else `latest`.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }

    /// The same repository, pinned to `digest` and without a tag.
    pub fn with_digest(&self, digest: &Digest) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest.clone()),
        }
    }

    /// The same repository with `tag` and without a digest.
    pub fn with_tag(&self, tag: &str) -> Result<Reference> {
        validate_tag(tag).map_err(|why| {
            Error::invalid(format!("invalid tag {}: {why}", crate::text::quoted(tag)))
        })?;
        Ok(Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        })
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// The host[:port] that serves the API of `registry`.
pub fn api_host_of(registry: &str) -> &str {
    if registry == DOCKER_HUB || registry == "index.docker.io" {
        DOCKER_HUB_API
    } else {
        registry
    }
}

/// Checks a tag against the distribution grammar `[\w][\w.-]{0,127}`.
pub fn validate_tag(tag: &str) -> std::result::Result<(), String> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = tag.chars();
    match chars.next() {
        None => return Err("empty tag".into()),
        Some(c) if !word(c) => {
            return Err(format!(
                "tag {} must start with [A-Za-z0-9_]",
                crate::text::quoted(tag)
            ))
        }
        _ => {}
    }
    if tag.len() > 128 {
        return Err(format!(
            "tag {} is longer than 128 characters",
            crate::text::quoted(tag)
        ));
    }
    if !chars.all(|c| word(c) || c == '.' || c == '-') {
        return Err(format!(
            "tag {} may contain only [A-Za-z0-9_.-]",
            crate::text::quoted(tag)
        ));
    }
    Ok(())
}

fn validate_registry(registry: &str) -> std::result::Result<(), String> {
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        // [ipv6]:port
        let (h, p) = rest
            .split_once(']')
            .ok_or_else(|| format!("bad IPv6 registry {}", crate::text::quoted(registry)))?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!(
                "bad IPv6 registry {}",
                crate::text::quoted(registry)
            ));
        }
        return match p {
            "" => Ok(()),
            p => match p.strip_prefix(':').map(str::parse::<u16>) {
                Some(Ok(_)) if p[1..].bytes().all(|b| b.is_ascii_digit()) => Ok(()),
                _ => Err(format!(
                    "bad port in registry {}",
                    crate::text::quoted(registry)
                )),
            },
        };
    } else {
        match registry.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (registry, None),
        }
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.len() > MAX_HOST_LEN {
        return Err(format!(
            "registry host longer than {MAX_HOST_LEN} characters"
        ));
    }
    // The URL parser must agree: it reads `1.2.3.4.5` or `a.0x5` as a bad
    // IPv4 address and `xn--` labels as punycode.
    if host.is_empty() || !host.split('.').all(label_ok) || url::Host::parse(host).is_err() {
        return Err(format!("bad registry host {}", crate::text::quoted(host)));
    }
    if let Some(p) = port {
        if p.parse::<u16>().is_err() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("bad port {}", crate::text::quoted(p)));
        }
    }
    Ok(())
}

/// Checks a repository path: lowercase components of `[a-z0-9]` joined by
/// `.`, `_`, `__` or runs of `-`, separated by `/`.
fn validate_repository(repo: &str) -> std::result::Result<(), String> {
    if repo.is_empty() {
        return Err("empty repository".into());
    }
    if repo.len() > 255 {
        return Err("repository longer than 255 characters".into());
    }
    for component in repo.split('/') {
        let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        let ok = !component.is_empty()
            && component.starts_with(alnum)
            && component.ends_with(alnum)
            && component
                .chars()
                .all(|c| alnum(c) || matches!(c, '.' | '_' | '-'))
            && !component.contains("..")
            && !component.contains("___")
            && !component.contains("._")
            && !component.contains("_.");
        if !ok {
            return Err(format!(
                "repository component {component:?} must be lowercase letters and digits joined by '.', '_', '__' or '-'"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    #[test]
    fn docker_defaults() {
        let r = p("alpine");
        assert_eq!(r.to_string(), "docker.io/library/alpine");
        assert_eq!(r.manifest_reference(), "latest");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(p("user/app:1").to_string(), "docker.io/user/app:1");
        assert_eq!(
            p("index.docker.io/library/alpine:3").to_string(),
            "docker.io/library/alpine:3"
        );
    }

    #[test]
    fn ports_tags_digests() {
        let r = p("localhost:5000/demo/hugo-builder:latest");
        assert_eq!(r.registry(), "localhost:5000");
        assert_eq!(r.repository(), "demo/hugo-builder");
        assert_eq!(r.tag(), Some("latest"));
        let d = crate::digest::sha256(b"x");
        let r = p(&format!("127.0.0.1:5000/app:v1@{d}"));
        assert_eq!(r.tag(), Some("v1"));
        assert_eq!(r.digest(), Some(&d));
        assert_eq!(r.manifest_reference(), d.to_string());
        let r = p("localhost/app");
        assert_eq!(r.registry(), "localhost");
        assert_eq!(p("[::1]:5000/app:x").registry(), "[::1]:5000");
        assert_eq!(p("registry.example.com/a/b/c").repository(), "a/b/c");
    }

    /// Inputs the `reference` fuzz target (oci/fuzz) found accepted though
    /// the registry client cannot build a URL from them, or whose printed
    /// form, pinned to a digest, did not parse back.
    #[test]
    fn fuzz_regressions() {
        for bad in [
            "[2:1]:5000/app:x",
            "[::1]:+5/app",
            "host:+5000/app",
            "1.2.3.4.5/app",
            "a.0x5/app",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let too_long = format!("{}.example/app", "a".repeat(4000));
        assert!(Reference::parse(&too_long).is_err());
        // The longest of each part still prints to a reference that parses.
        let sha512 = format!("sha512:{}", "ab".repeat(64));
        let longest = format!(
            "{}.example:65535/{}:{}@{sha512}",
            "h".repeat(245),
            "r".repeat(255),
            "t".repeat(128)
        );
        let r = p(&longest);
        assert_eq!(p(&r.to_string()), r);
        let pinned = p("alpine").with_digest(&crate::digest::parse(&sha512).unwrap());
        assert_eq!(p(&pinned.to_string()), pinned);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "UPPER/case",
            "host:5000/app:",
            "host:notaport/app",
            "app@sha256:123",
            "a b",
            "host/-app",
            "host/app:-tag",
            "host/app::x",
            "host//app",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}

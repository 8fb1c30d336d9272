//! `--platform os[/arch[/variant]][:os_version]`: which manifest of an
//! index a reference means, as the ORAS CLI and crane pick it. An index's
//! first entry whose platform has that OS and, where given, architecture,
//! variant and OS version is chosen. An image manifest is checked against
//! its config's platform instead; either way a miss is NOT_FOUND.

use serde::Deserialize;

use crate::error::{Error, ErrorKind, Result};
use crate::manifest::{Descriptor, Manifest};
use crate::Target;

/// A platform asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`, `windows`, ...
    pub os: String,
    /// `amd64`, `arm64`, ...; any when `None`.
    pub architecture: Option<String>,
    /// `v7`, `v8`, ...; any when `None`.
    pub variant: Option<String>,
    /// Windows' `10.0.17763.1234`, ...; any when `None`.
    pub os_version: Option<String>,
}

/// How a platform is written in an index entry or an image config.
#[derive(Debug, Default, Deserialize)]
struct Described {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: String,
    #[serde(default, rename = "os.version")]
    os_version: String,
}

#[derive(Deserialize)]
struct IndexEntry {
    #[serde(default)]
    platform: Option<Described>,
}

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<IndexEntry>,
}

/// The largest image config read to learn its platform.
const MAX_CONFIG_BYTES: usize = 4 << 20;

impl Platform {
    /// Parses `os[/arch[/variant]][:os_version]`; anything else is
    /// INVALID_ARGUMENT.
    pub fn parse(text: &str) -> Result<Platform> {
        let bad = || {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("bad platform {text:?}: expected os[/arch[/variant]][:os_version]"),
            )
        };
        let (path, os_version) = match text.split_once(':') {
            Some((p, v)) if !v.is_empty() => (p, Some(v.to_string())),
            Some(_) => return Err(bad()),
            None => (text, None),
        };
        let parts: Vec<&str> = path.split('/').collect();
        let name_ok = |p: &&str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        };
        if parts.len() > 3 || !parts.iter().all(name_ok) {
            return Err(bad());
        }
        Ok(Platform {
            os: parts[0].to_string(),
            architecture: parts.get(1).map(|s| s.to_string()),
            variant: parts.get(2).map(|s| s.to_string()),
            os_version,
        })
    }

    fn matches(&self, d: &Described) -> bool {
        let same = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        self.os == d.os
            && same(&self.architecture, &d.architecture)
            && same(&self.variant, &d.variant)
            && same(&self.os_version, &d.os_version)
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.os)?;
        for part in [&self.architecture, &self.variant].into_iter().flatten() {
            write!(f, "/{part}")?;
        }
        if let Some(v) = &self.os_version {
            write!(f, ":{v}")?;
        }
        Ok(())
    }
}

/// The manifest of `platform` that `desc` (fetched as `content` from
/// `target`) stands for: an index's matching entry, or `desc` itself when
/// it is an image manifest built for that platform.
pub async fn select(
    target: &Target,
    desc: Descriptor,
    content: &[u8],
    platform: &Platform,
) -> Result<Descriptor> {
    let missing = || {
        Error::new(
            ErrorKind::NotFound,
            format!(
                "no manifest for platform {platform} in {}",
                target.reference_for(&desc.digest)
            ),
        )
    };
    match Manifest::parse(&desc.media_type, content)? {
        Manifest::Index(index) => {
            let raw: Index = serde_json::from_slice(content).map_err(|e| {
                Error::new(
                    ErrorKind::FailedPrecondition,
                    format!("malformed index: {e}"),
                )
            })?;
            let chosen = raw
                .manifests
                .iter()
                .position(|e| e.platform.as_ref().is_some_and(|p| platform.matches(p)))
                .ok_or_else(missing)?;
            let entry = index
                .manifests
                .into_iter()
                .nth(chosen)
                .ok_or_else(missing)?;
            Ok(entry)
        }
        Manifest::Image(image) => {
            let stream = target.fetch_blob(&image.config).await?;
            let config = read_config(stream).await?;
            let described: Described = serde_json::from_slice(&config).unwrap_or_default();
            match platform.matches(&described) {
                true => Ok(desc),
                false => Err(missing()),
            }
        }
    }
}

/// An image config's bytes, at most [`MAX_CONFIG_BYTES`].
async fn read_config(mut stream: crate::ByteStream) -> Result<Vec<u8>> {
    use futures::StreamExt;
    let mut out = Vec::new();
    while let Some(piece) = stream.next().await {
        out.extend_from_slice(&piece?);
        if out.len() > MAX_CONFIG_BYTES {
            return Err(Error::new(
                ErrorKind::FailedPrecondition,
                "an image config is larger than 4 MiB",
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_as_oras_writes_them() {
        let p = Platform::parse("linux/arm64/v8:10.0").unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8:10.0");
        assert_eq!(Platform::parse("linux").unwrap().architecture, None);
        for bad in [
            "",
            "linux/",
            "/amd64",
            "a/b/c/d",
            "linux/amd64:",
            "li nux/amd64",
        ] {
            let err = Platform::parse(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad:?}");
        }
    }

    #[test]
    fn a_platform_matches_what_it_names_and_no_more() {
        let d = |os: &str, arch: &str, variant: &str| Described {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.into(),
            os_version: String::new(),
        };
        let arm = Platform::parse("linux/arm64").unwrap();
        assert!(arm.matches(&d("linux", "arm64", "v8")));
        assert!(!arm.matches(&d("linux", "amd64", "")));
        assert!(!Platform::parse("linux/arm64/v7")
            .unwrap()
            .matches(&d("linux", "arm64", "v8")));
        assert!(Platform::parse("linux")
            .unwrap()
            .matches(&d("linux", "s390x", "")));
        assert!(!Platform::parse("windows")
            .unwrap()
            .matches(&d("linux", "amd64", "")));
    }
}

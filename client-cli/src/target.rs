//! Turning a command-line reference into a `Target`.

use anyhow::{bail, Context};
use satchel_client::pb;

use crate::{PlatformFlag, TargetFlags};

/// [`parse`], picking `platform`'s manifest when the reference names an
/// index.
pub fn parse_for(
    reference: &str,
    flags: &TargetFlags,
    platform: &PlatformFlag,
) -> anyhow::Result<pb::Target> {
    let mut target = parse(reference, flags)?;
    target.platform = match platform.platform.as_deref() {
        // An OS alone means this machine's architecture, as ORAS reads it.
        Some(os) if !os.is_empty() && !os.contains(['/', ':']) => format!("{os}/{}", host_arch()),
        Some(p) => p.to_string(),
        None => String::new(),
    };
    Ok(target)
}

/// This machine's architecture in the OCI (Go) spelling.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// Parses `reference` as a registry reference, or with `--oci-layout` as
/// `DIR`, `DIR:TAG` or `DIR@DIGEST` (DIR made absolute, since the daemon
/// resolves it).
pub fn parse(reference: &str, flags: &TargetFlags) -> anyhow::Result<pb::Target> {
    if reference.is_empty() {
        bail!("a reference is required");
    }
    let referrers_mode = match flags.distribution_spec.as_deref() {
        Some("v1.1-referrers-api") => pb::ReferrersMode::Api,
        Some("v1.1-referrers-tag") => pb::ReferrersMode::Tag,
        _ => pb::ReferrersMode::Unspecified,
    } as i32;
    if !flags.oci_layout {
        return Ok(pb::Target {
            reference: reference.to_string(),
            oci_layout: String::new(),
            plain_http: flags.plain_http,
            referrers_mode,
            platform: String::new(),
        });
    }
    let (dir, name) = if let Some((dir, digest)) = reference.rsplit_once('@') {
        (dir, digest.to_string())
    } else {
        match reference.rsplit_once(':') {
            Some((dir, tag)) if !tag.contains('/') && !dir.is_empty() => (dir, tag.to_string()),
            _ => (reference, String::new()),
        }
    };
    let abs = std::path::absolute(dir).with_context(|| format!("bad layout path {dir:?}"))?;
    Ok(pb::Target {
        reference: name,
        oci_layout: abs.to_string_lossy().into_owned(),
        plain_http: false,
        referrers_mode,
        platform: String::new(),
    })
}

/// The repository part of a reference by digest (`repo@sha256:...`).
pub fn repo_of(reference: &str) -> &str {
    reference.split_once('@').map_or(reference, |(r, _)| r)
}

/// For Push: splits `REF:tag1,tag2` into the reference with its first tag
/// and the extra tags, as `oras push` does.
pub fn split_tags(reference: &str) -> (String, Vec<String>) {
    if reference.contains('@') {
        return (reference.to_string(), vec![]);
    }
    let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[last_slash..].rfind(':') {
        Some(i) if reference[last_slash + i..].contains(',') => {
            let at = last_slash + i;
            let mut tags = reference[at + 1..].split(',').map(str::to_string);
            let first = tags.next().unwrap_or_default();
            (format!("{}:{first}", &reference[..at]), tags.collect())
        }
        _ => (reference.to_string(), vec![]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_forms() {
        let flags = TargetFlags {
            plain_http: false,
            oci_layout: true,
            distribution_spec: None,
        };
        let t = parse("/tmp/lay:v1", &flags).unwrap();
        assert_eq!(
            (t.oci_layout.as_str(), t.reference.as_str()),
            ("/tmp/lay", "v1")
        );
        let t = parse("/tmp/lay@sha256:abc", &flags).unwrap();
        assert_eq!(t.reference, "sha256:abc");
        let t = parse("/tmp/lay", &flags).unwrap();
        assert_eq!(t.reference, "");
    }

    #[test]
    fn tag_lists() {
        assert_eq!(
            split_tags("localhost:5000/a:v1,v2,v3"),
            ("localhost:5000/a:v1".into(), vec!["v2".into(), "v3".into()])
        );
        assert_eq!(
            split_tags("localhost:5000/a:v1"),
            ("localhost:5000/a:v1".into(), vec![])
        );
    }
}

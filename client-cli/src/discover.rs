//! `satchel discover`: the referrers of a subject as a tree, a table or JSON.
//!
//! The JSON shape is stable (see docs/cli-json.md): the subject object with
//! `reference`, `mediaType`, `digest`, `size` and `referrers`; each referrer
//! adds `artifactType`, `annotations` and its own `referrers`.

use clap::Args;
use satchel_client::pb;
use serde_json::{json, Value};

use crate::show::esc;
use crate::target;
use crate::TargetFlags;

/// `satchel discover`.
#[derive(Args, Debug)]
pub struct DiscoverArgs {
    /// The subject, by tag or digest.
    reference: String,
    /// Only referrers of this artifact type.
    #[arg(long)]
    artifact_type: Option<String>,
    /// Output format.
    #[arg(long, value_parser = ["tree", "table", "json"], default_value = "tree")]
    format: String,
    /// Show annotations in the tree.
    #[arg(short, long)]
    verbose: bool,
    /// Levels of referrers to show: 2 adds referrers of referrers, etc.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    depth: u32,
    #[command(flatten)]
    target: TargetFlags,
}

/// Runs `satchel discover`.
pub async fn discover(addr: &satchel_client::Daemon, args: DiscoverArgs) -> anyhow::Result<()> {
    let subject = target::parse(&args.reference, &args.target)?;
    let mut client = addr.connect().await?;
    let resp = client
        .discover(pb::DiscoverRequest {
            subject: Some(subject),
            artifact_type: args.artifact_type.clone().unwrap_or_default(),
            depth: args.depth,
        })
        .await?
        .into_inner();
    let out = match args.format.as_str() {
        "json" => serde_json::to_string_pretty(&to_json(&resp))? + "\n",
        "table" => table(&resp),
        _ => tree(&resp, args.verbose),
    };
    print!("{out}");
    Ok(())
}

fn repo_of(reference: &str) -> &str {
    reference.split_once('@').map_or(reference, |(r, _)| r)
}

fn referrer_json(repo: &str, r: &pb::Referrer) -> Value {
    let d = r.manifest.clone().unwrap_or_default();
    json!({
        "reference": format!("{repo}@{}", d.digest),
        "mediaType": d.media_type,
        "digest": d.digest,
        "size": d.size,
        "artifactType": d.artifact_type,
        "annotations": d.annotations.iter().collect::<std::collections::BTreeMap<_, _>>(),
        "referrers": r.referrers.iter().map(|c| referrer_json(repo, c)).collect::<Vec<_>>(),
    })
}

fn to_json(resp: &pb::DiscoverResponse) -> Value {
    let s = resp.subject.clone().unwrap_or_default();
    let repo = repo_of(&resp.reference);
    json!({
        "reference": resp.reference,
        "mediaType": s.media_type,
        "digest": s.digest,
        "size": s.size,
        "referrers": resp.referrers.iter().map(|r| referrer_json(repo, r)).collect::<Vec<_>>(),
    })
}

/// The ORAS tree: the subject, then artifact types, then digests.
fn tree(resp: &pb::DiscoverResponse, verbose: bool) -> String {
    let mut out = format!("{}\n", esc(&resp.reference));
    render_level(&mut out, &resp.referrers, "", verbose);
    out
}

fn render_level(out: &mut String, referrers: &[pb::Referrer], prefix: &str, verbose: bool) {
    // Group by artifact type, in order of first appearance.
    let mut groups: Vec<(String, Vec<&pb::Referrer>)> = Vec::new();
    for r in referrers {
        let t = r
            .manifest
            .as_ref()
            .map(|d| d.artifact_type.clone())
            .unwrap_or_default();
        let t = if t.is_empty() {
            "<unknown>".to_string()
        } else {
            t
        };
        match groups.iter_mut().find(|(name, _)| *name == t) {
            Some((_, list)) => list.push(r),
            None => groups.push((t, vec![r])),
        }
    }
    for (gi, (artifact_type, list)) in groups.iter().enumerate() {
        let last_group = gi + 1 == groups.len();
        out.push_str(&format!(
            "{prefix}{}{}\n",
            if last_group {
                "└── "
            } else {
                "├── "
            },
            esc(artifact_type)
        ));
        let group_prefix = format!("{prefix}{}", if last_group { "    " } else { "│   " });
        for (i, r) in list.iter().enumerate() {
            let last = i + 1 == list.len();
            let d = r.manifest.clone().unwrap_or_default();
            out.push_str(&format!(
                "{group_prefix}{}{}\n",
                if last { "└── " } else { "├── " },
                esc(&d.digest)
            ));
            let child_prefix = format!("{group_prefix}{}", if last { "    " } else { "│   " });
            if verbose && !d.annotations.is_empty() {
                let mut keys: Vec<_> = d.annotations.iter().collect();
                keys.sort();
                for (k, v) in keys {
                    out.push_str(&format!("{child_prefix}    {}: {}\n", esc(k), esc(v)));
                }
            }
            render_level(out, &r.referrers, &child_prefix, verbose);
        }
    }
}

fn table(resp: &pb::DiscoverResponse) -> String {
    let mut out = format!("{:<72}  {}\n", "Digest", "Artifact Type");
    fn walk(out: &mut String, list: &[pb::Referrer]) {
        for r in list {
            let d = r.manifest.clone().unwrap_or_default();
            out.push_str(&format!(
                "{:<72}  {}\n",
                esc(&d.digest),
                esc(&d.artifact_type)
            ));
            walk(out, &r.referrers);
        }
    }
    walk(&mut out, &resp.referrers);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn referrer(t: &str, digest: &str) -> pb::Referrer {
        pb::Referrer {
            manifest: Some(pb::Descriptor {
                digest: digest.into(),
                artifact_type: t.into(),
                ..Default::default()
            }),
            referrers: vec![],
        }
    }

    #[test]
    fn tree_and_table_escape_what_a_terminal_would_obey() {
        let mut hostile = referrer("application/\x1b[2Jx", "sha256:1\u{202e}");
        if let Some(d) = hostile.manifest.as_mut() {
            d.annotations
                .insert("k\x1b]0;t\x07".into(), "v\n\u{9b}31m".into());
        }
        let resp = pb::DiscoverResponse {
            reference: "r/app\x1b[31m@sha256:s".into(),
            subject: None,
            referrers: vec![hostile],
        };
        let tree = tree(&resp, true);
        assert!(!tree.contains('\x1b') && !tree.contains('\u{9b}') && !tree.contains('\u{202e}'));
        assert!(tree.contains("r/app\\x1b[31m@sha256:s"), "{tree}");
        assert!(tree.contains("k\\x1b]0;t\\x07: v\\n\\u{9b}31m"), "{tree}");
        assert_eq!(tree.lines().count(), 4, "{tree}");
        let table = table(&resp);
        assert!(!table.contains('\x1b') && !table.contains('\u{202e}'));
        assert!(table.contains("application/\\x1b[2Jx"), "{table}");
    }

    #[test]
    fn tree_groups_by_type() {
        let resp = pb::DiscoverResponse {
            reference: "r/app@sha256:s".into(),
            subject: None,
            referrers: vec![
                referrer("application/a", "sha256:1"),
                referrer("application/b", "sha256:2"),
                referrer("application/a", "sha256:3"),
            ],
        };
        assert_eq!(
            tree(&resp, false),
            "r/app@sha256:s\n├── application/a\n│   ├── sha256:1\n│   └── sha256:3\n└── application/b\n    └── sha256:2\n"
        );
    }
}

//! `satchel discover`: the referrers of a subject as a tree, a table or JSON.
//!
//! The JSON shape is stable (see docs/cli-json.md): the subject object with
//! `reference`, `mediaType`, `digest`, `size` and `referrers`; each referrer
//! adds `artifactType`, `annotations` and its own `referrers`.

use std::borrow::Cow;
use std::path::PathBuf;

use clap::Args;
use satchel_client::pb;
use serde_json::{json, Value};

use crate::format::Format;
use crate::show::{esc, referrer_fields};
use crate::target::{self, repo_of};
use crate::TargetFlags;

/// `satchel discover`.
#[derive(Args, Debug)]
pub struct DiscoverArgs {
    /// The subject, by tag or digest.
    reference: String,
    /// Only referrers of this artifact type.
    #[arg(long)]
    artifact_type: Option<String>,
    /// Output format: tree, table, json, or go-template (with --template,
    /// or as go-template=TEMPLATE) over the JSON document.
    #[arg(long, default_value = "tree")]
    format: String,
    /// The Go template of --format go-template.
    #[arg(long)]
    template: Option<String>,
    /// Accepted for older scripts: the tree always shows annotations, as
    /// the ORAS CLI's does.
    #[arg(short, long, hide = true)]
    verbose: bool,
    /// Levels of referrers to show: 1 the direct ones, 2 adds referrers of
    /// referrers, etc. Without it, every level (up to 16).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=16))]
    depth: Option<u32>,
    /// Keep watching: print the direct referrers, then a line for each one
    /// that appears (+) or disappears (-), until interrupted. With
    /// --format json, one JSON object per line.
    #[arg(long, conflicts_with_all = ["depth", "template"])]
    watch: bool,
    /// Say of each direct referrer whether it verifies (is signed, by
    /// cosign, by a key the daemon's policy trusts for it).
    #[arg(long, conflicts_with = "watch")]
    verify: bool,
    /// Verify under this PEM public key instead of the policy's (implies
    /// --verify); repeat for several.
    #[arg(long = "verify-key", value_name = "PUB", conflicts_with = "watch")]
    verify_keys: Vec<PathBuf>,
    #[command(flatten)]
    target: TargetFlags,
    #[command(flatten)]
    platform: crate::PlatformFlag,
}

/// The depth asked for without `--depth`: the daemon's deepest.
pub const ALL_LEVELS: u32 = 16;

/// Runs `satchel discover`.
pub async fn discover(addr: &satchel_client::Daemon, args: DiscoverArgs) -> anyhow::Result<()> {
    let subject = target::parse_for(&args.reference, &args.target, &args.platform)?;
    if args.watch {
        let json = match args.format.as_str() {
            "json" => true,
            "tree" | "table" => false,
            other => anyhow::bail!("--watch prints text or json, not {other}"),
        };
        return crate::watch::watch(addr, subject, args.artifact_type, json).await;
    }
    let mut client = addr.connect().await?;
    let resp = client
        .discover(pb::DiscoverRequest {
            subject: Some(subject),
            artifact_type: args.artifact_type.clone().unwrap_or_default(),
            depth: args.depth.unwrap_or(ALL_LEVELS),
            verify: args.verify || !args.verify_keys.is_empty(),
            verify_keys: crate::verify::read_keys(&args.verify_keys)?,
        })
        .await?
        .into_inner();
    let format = Format::parse(
        &args.format,
        args.template.as_deref(),
        &["tree", "table", "json"],
    )?;
    let out = match &format {
        Format::Template(t) => crate::format::render(t, &to_json(&resp))?,
        f if f.is("json") => serde_json::to_string_pretty(&to_json(&resp))? + "\n",
        f if f.is("table") => table(&resp),
        _ => tree(&resp),
    };
    print!("{out}");
    Ok(())
}

fn referrer_json(repo: &str, r: &pb::Referrer) -> Value {
    let mut fields = referrer_fields(repo, &r.manifest.clone().unwrap_or_default());
    let children = r.referrers.iter().map(|c| referrer_json(repo, c)).collect();
    fields["referrers"] = Value::Array(children);
    if let Some(v) = &r.verification {
        fields["verification"] = match &v.signature {
            Some(s) if v.verified => {
                json!({"verified": true, "signature": crate::verify::signature_json(s)})
            }
            _ => json!({"verified": false, "code": v.code, "reason": v.reason}),
        };
    }
    fields
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

/// The ORAS tree: the subject, then artifact types, then digests, each
/// with its annotations (as YAML, sorted by key) under `[annotations]`
/// before its own referrers.
fn tree(resp: &pb::DiscoverResponse) -> String {
    let mut out = format!("{}\n", esc(&resp.reference));
    render_level(&mut out, &resp.referrers, "");
    out
}

fn branch(last: bool) -> (&'static str, &'static str) {
    match last {
        true => ("└── ", "    "),
        false => ("├── ", "│   "),
    }
}

fn render_level(out: &mut String, referrers: &[pb::Referrer], prefix: &str) {
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
        let (line, indent) = branch(gi + 1 == groups.len());
        out.push_str(&format!("{prefix}{line}{}\n", esc(artifact_type)));
        let group_prefix = format!("{prefix}{indent}");
        for (i, r) in list.iter().enumerate() {
            let (line, indent) = branch(i + 1 == list.len());
            let d = r.manifest.clone().unwrap_or_default();
            out.push_str(&format!(
                "{group_prefix}{line}{}{}\n",
                esc(&d.digest),
                verification_note(r.verification.as_ref())
            ));
            let child_prefix = format!("{group_prefix}{indent}");
            if !d.annotations.is_empty() {
                let (line, indent) = branch(r.referrers.is_empty());
                out.push_str(&format!("{child_prefix}{line}[annotations]\n"));
                let mut keys: Vec<_> = d.annotations.iter().collect();
                keys.sort();
                for (k, (key, value)) in keys.iter().enumerate() {
                    let (leaf, _) = branch(k + 1 == keys.len());
                    out.push_str(&format!(
                        "{child_prefix}{indent}{leaf}{}: {}\n",
                        esc(&yaml_scalar(key)),
                        esc(&yaml_scalar(value))
                    ));
                }
            }
            render_level(out, &r.referrers, &child_prefix);
        }
    }
}

/// What the tree says after a digest about its verification.
fn verification_note(v: Option<&pb::Verification>) -> String {
    match v {
        None => String::new(),
        Some(v) if v.verified => {
            let key = v
                .signature
                .as_ref()
                .map_or("", |s| s.key_fingerprint.as_str());
            format!(" [verified: key {}]", esc(key))
        }
        Some(v) => format!(" [not verified: {}]", esc(&v.reason)),
    }
}

/// A string as YAML writes it in `key: value`, as the ORAS tree shows
/// annotations: plain when YAML would read it back as that string,
/// double-quoted when it would read as something else (a number, a bool, a
/// null, a date) or holds a control character, single-quoted when it starts or ends
/// with what YAML would take as syntax.
fn yaml_scalar(s: &str) -> Cow<'_, str> {
    if s.is_empty() {
        return Cow::Borrowed("\"\"");
    }
    if s.contains(char::is_control) || resolves_to_non_string(s) {
        return Cow::Owned(serde_json::Value::String(s.to_string()).to_string());
    }
    let first = s.chars().next().expect("not empty");
    let indicator = "-?:,[]{}#&*!|>'\"%@`".contains(first)
        && !(matches!(first, '-' | '?' | ':') && s.len() > 1 && !s[1..].starts_with(' '));
    let needs_quotes = indicator
        || s.starts_with(' ')
        || s.ends_with(' ')
        || s.ends_with(':')
        || s.contains(": ")
        || s.contains(" #")
        || s.contains('\t');
    match needs_quotes {
        true => Cow::Owned(format!("'{}'", s.replace('\'', "''"))),
        false => Cow::Borrowed(s),
    }
}

/// Whether YAML would read the plain scalar `s` as other than a string.
fn resolves_to_non_string(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "~", "null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE", "y", "Y",
        "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF",
        ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan",
        ".NaN", ".NAN",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    let unsigned = s.strip_prefix(['-', '+']).unwrap_or(s).replace('_', "");
    let radix = [("0x", 16), ("0o", 8), ("0b", 2)].iter().any(|(p, radix)| {
        unsigned
            .strip_prefix(p)
            .is_some_and(|r| !r.is_empty() && r.chars().all(|c| c.is_digit(*radix)))
    });
    radix || is_yaml_decimal(&unsigned) || is_yaml_date(s)
}

/// `[0-9]+`, or a float: `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`.
fn is_yaml_decimal(s: &str) -> bool {
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let (mantissa, exponent) = match s.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e.strip_prefix(['-', '+']).unwrap_or(e))),
        None => (s, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((whole, frac)) => {
            (digits(whole) && (frac.is_empty() || digits(frac)))
                || (whole.is_empty() && digits(frac))
        }
        None => digits(mantissa),
    };
    mantissa_ok && exponent.is_none_or(digits)
}

/// `YYYY-M-D`, alone or followed by a time: what YAML reads as a timestamp.
fn is_yaml_date(s: &str) -> bool {
    let date = s.split(['T', 't', ' ']).next().unwrap_or_default();
    let parts: Vec<&str> = date.split('-').collect();
    parts.len() == 3
        && parts[0].len() == 4
        && (1..=2).contains(&parts[1].len())
        && (1..=2).contains(&parts[2].len())
        && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_digit()))
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
            verification: None,
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
        let tree = tree(&resp);
        assert!(!tree.contains('\x1b') && !tree.contains('\u{9b}') && !tree.contains('\u{202e}'));
        assert!(tree.contains("r/app\\x1b[31m@sha256:s"), "{tree}");
        assert!(
            tree.contains(r#""k\u001b]0;t\u0007": "v\n\u{9b}31m""#),
            "{tree}"
        );
        assert_eq!(tree.lines().count(), 5, "{tree}");
        let table = table(&resp);
        assert!(!table.contains('\x1b') && !table.contains('\u{202e}'));
        assert!(table.contains("application/\\x1b[2Jx"), "{table}");
    }

    #[test]
    fn annotation_values_are_quoted_as_yaml_quotes_them() {
        for (value, shown) in [
            ("v 1", "v 1"),
            ("2026-12-02T12:50:02Z", "\"2026-12-02T12:50:02Z\""),
            ("2026-12-02", "\"2026-12-02\""),
            ("123", "\"123\""),
            ("-1.5e3", "\"-1.5e3\""),
            ("0x1F", "\"0x1F\""),
            ("true", "\"true\""),
            ("yes", "\"yes\""),
            ("null", "\"null\""),
            ("", "\"\""),
            ("a\nb", "\"a\\nb\""),
            ("a: b", "'a: b'"),
            ("- x", "'- x'"),
            ("-x", "-x"),
            ("*ref", "'*ref'"),
            ("it's", "it's"),
            (" lead", "' lead'"),
            ("1.2.3", "1.2.3"),
            ("sha256:abc", "sha256:abc"),
            ("e5", "e5"),
        ] {
            assert_eq!(yaml_scalar(value), shown, "{value:?}");
        }
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
            tree(&resp),
            "r/app@sha256:s\n├── application/a\n│   ├── sha256:1\n│   └── sha256:3\n└── application/b\n    └── sha256:2\n"
        );
    }
}

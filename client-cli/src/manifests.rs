//! `satchel manifest fetch`, `satchel repo tags` and `satchel tag`, shaped
//! like the ORAS CLI's commands of those names: each flags to one RPC
//! (FetchManifest, ListTags, Tag) and its answer to ORAS's output.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use satchel_client::pb;

use crate::format::Format;
use crate::show::esc;
use crate::{target, TargetFlags};

#[derive(Args, Debug)]
pub struct FetchArgs {
    /// The manifest, by tag or digest.
    reference: String,
    /// Print the manifest's descriptor instead of its content.
    #[arg(long, conflicts_with = "format")]
    descriptor: bool,
    /// Write the content to this file instead of standard output (`-` is
    /// standard output).
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
    /// Print the content indented.
    #[arg(long)]
    pretty: bool,
    /// `json`: the descriptor with the content, as one document; or
    /// go-template (with --template, or as go-template=TEMPLATE) over it.
    #[arg(long)]
    format: Option<String>,
    /// The Go template of --format go-template.
    #[arg(long)]
    template: Option<String>,
    #[command(flatten)]
    target: TargetFlags,
    #[command(flatten)]
    platform: crate::PlatformFlag,
}

#[derive(Subcommand, Debug)]
pub enum RepoCommand {
    /// List a repository's tags: satchel repo tags REPO.
    Tags(TagsArgs),
    /// List a registry's repositories: satchel repo ls REGISTRY[/NAMESPACE].
    #[command(alias = "list")]
    Ls(LsArgs),
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// host[:port], optionally with /NAMESPACE.
    registry: String,
    /// Output format: text, json, or go-template (with --template, or as
    /// go-template=TEMPLATE).
    #[arg(long, default_value = "text")]
    format: String,
    /// The Go template of --format go-template.
    #[arg(long)]
    template: Option<String>,
    /// Talk plain HTTP to the registry instead of HTTPS.
    #[arg(long)]
    plain_http: bool,
}

#[derive(Args, Debug)]
pub struct TagsArgs {
    /// The repository (a tag or digest in it is ignored), or with
    /// --oci-layout the layout.
    repository: String,
    /// Leave out tags that read as digests (`sha256-<hex>`: the referrers
    /// tag schema's, cosign's).
    #[arg(long)]
    exclude_digest_tags: bool,
    /// Only tags after this one, as the registry reads `last`.
    #[arg(long)]
    last: Option<String>,
    /// Output format: text, json, or go-template (with --template, or as
    /// go-template=TEMPLATE).
    #[arg(long, default_value = "text")]
    format: String,
    /// The Go template of --format go-template.
    #[arg(long)]
    template: Option<String>,
    #[command(flatten)]
    target: TargetFlags,
}

#[derive(Args, Debug)]
pub struct TagArgs {
    /// The manifest, by tag or digest.
    reference: String,
    /// The tags to add.
    #[arg(required = true)]
    tags: Vec<String>,
    #[command(flatten)]
    target: TargetFlags,
}

/// Runs `satchel manifest fetch`.
pub async fn fetch(addr: &satchel_client::Daemon, args: FetchArgs) -> anyhow::Result<()> {
    let target = target::parse_for(&args.reference, &args.target, &args.platform)?;
    let mut client = addr.connect().await?;
    let resp = client
        .fetch_manifest(pb::FetchManifestRequest {
            target: Some(target),
        })
        .await?
        .into_inner();
    let format = match args.format.as_deref() {
        Some(f) => Some(Format::parse(f, args.template.as_deref(), &["json"])?),
        None => None,
    };
    let desc = resp.manifest.clone().unwrap_or_default();
    let content = resp.content.to_vec();
    let out = if args.descriptor {
        crate::raw::descriptor_json(&desc).into_bytes()
    } else if let Some(format) = &format {
        let parsed: serde_json::Value =
            serde_json::from_slice(&content).context("the manifest is not JSON")?;
        let doc = serde_json::json!({
            "reference": resp.reference,
            "mediaType": desc.media_type,
            "digest": desc.digest,
            "size": desc.size,
            "content": parsed,
        });
        match format.template() {
            Some(t) => crate::format::render(t, &doc)?.into_bytes(),
            None => {
                let mut out = serde_json::to_vec_pretty(&doc)?;
                out.push(b'\n');
                out
            }
        }
    } else if args.pretty {
        serde_json::from_slice::<serde_json::Value>(&content)
            .context("the manifest is not JSON")?;
        let mut doc = indent_json(&content);
        doc.push(b'\n');
        doc
    } else {
        content
    };
    // As ORAS: `-o FILE` gets the manifest's own bytes; a descriptor or a
    // JSON document still goes to standard output.
    match args.output.as_deref() {
        Some(path) if path.as_os_str() != "-" => {
            std::fs::write(path, &resp.content)
                .with_context(|| format!("cannot write {}", path.display()))?;
            if args.descriptor || format.is_some() {
                std::io::stdout().write_all(&out)?;
            }
        }
        _ => std::io::stdout().write_all(&out)?,
    }
    Ok(())
}

/// Valid JSON `data` indented by two spaces, its keys in their order.
fn indent_json(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * 2);
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let newline = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        out.extend(std::iter::repeat_n(b' ', depth * 2));
    };
    let mut bytes = data.iter().copied().peekable();
    while let Some(b) = bytes.next() {
        if in_string {
            out.push(b);
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b' ' | b'\t' | b'\n' | b'\r' => {}
            b'"' => {
                in_string = true;
                out.push(b);
            }
            b'{' | b'[' => {
                out.push(b);
                while bytes.next_if(|c| c.is_ascii_whitespace()).is_some() {}
                match bytes.peek() {
                    Some(b'}' | b']') => out.push(bytes.next().expect("peeked")),
                    _ => {
                        depth += 1;
                        newline(&mut out, depth);
                    }
                }
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(b);
            }
            b',' => {
                out.push(b);
                newline(&mut out, depth);
            }
            b':' => out.extend_from_slice(b": "),
            b => out.push(b),
        }
    }
    out
}

/// Runs `satchel repo tags`.
pub async fn tags(addr: &satchel_client::Daemon, args: TagsArgs) -> anyhow::Result<()> {
    let repository = target::parse(&args.repository, &args.target)?;
    let mut client = addr.connect().await?;
    let resp = client
        .list_tags(pb::ListTagsRequest {
            same_manifest: names_a_manifest(&args),
            repository: Some(repository),
            exclude_digest_tags: args.exclude_digest_tags,
            last: args.last.clone().unwrap_or_default(),
        })
        .await?
        .into_inner();
    let format = Format::parse(&args.format, args.template.as_deref(), &["text", "json"])?;
    if format.is_document() {
        return crate::format::emit(&format, &serde_json::json!({ "tags": resp.tags }));
    }
    for tag in &resp.tags {
        println!("{}", esc(tag));
    }
    Ok(())
}

/// Whether `repo tags` was given a tag or digest (`REPO:TAG`,
/// `REPO@DIGEST`, `DIR:TAG` with --oci-layout): then, as ORAS, only the
/// tags of that manifest are listed.
fn names_a_manifest(args: &TagsArgs) -> bool {
    let r = &args.repository;
    let last = r.rfind('/').map_or(0, |i| i + 1);
    r.contains('@') || r[last..].contains(':') || (args.target.oci_layout && r.contains(':'))
}

/// Runs `satchel repo ls`: names under a namespace are printed without it,
/// as the ORAS CLI prints them.
pub async fn repositories(addr: &satchel_client::Daemon, args: LsArgs) -> anyhow::Result<()> {
    let mut client = addr.connect().await?;
    let resp = client
        .list_repositories(pb::ListRepositoriesRequest {
            registry: args.registry.trim_end_matches('/').to_string(),
            plain_http: args.plain_http,
        })
        .await?
        .into_inner();
    let registry = args.registry.trim_end_matches('/');
    let (host, namespace) = match registry.split_once('/') {
        Some((host, ns)) => (host, Some(format!("{}/", ns.trim_end_matches('/')))),
        None => (registry, None),
    };
    let format = Format::parse(&args.format, args.template.as_deref(), &["text", "json"])?;
    if format.is_document() {
        let doc = serde_json::json!({ "registry": host, "repositories": resp.repositories });
        return crate::format::emit(&format, &doc);
    }
    for name in &resp.repositories {
        let shown = namespace.as_deref().and_then(|ns| name.strip_prefix(ns));
        println!("{}", esc(shown.unwrap_or(name)));
    }
    Ok(())
}

/// Runs `satchel tag`.
pub async fn tag(addr: &satchel_client::Daemon, args: TagArgs) -> anyhow::Result<()> {
    let target = target::parse(&args.reference, &args.target)?;
    let where_ = if args.target.oci_layout {
        "[oci-layout]"
    } else {
        "[registry]"
    };
    let mut client = addr.connect().await?;
    let resp = client
        .tag(pb::TagRequest {
            target: Some(target),
            tags: args.tags,
        })
        .await?
        .into_inner();
    println!("Tagging {where_} {}", esc(&resp.reference));
    for tag in &resp.tags {
        println!("Tagged {}", esc(tag));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::indent_json;

    #[test]
    fn indenting_keeps_key_order_strings_and_empty_containers() {
        let raw = br#"{"z":1,"a":{"s":"x,{:}\"y","e":{},"l":[]},"n":[1,2]}"#;
        let want = "{\n  \"z\": 1,\n  \"a\": {\n    \"s\": \"x,{:}\\\"y\",\n    \"e\": {},\n    \"l\": []\n  },\n  \"n\": [\n    1,\n    2\n  ]\n}";
        assert_eq!(String::from_utf8(indent_json(raw)).unwrap(), want);
    }
}

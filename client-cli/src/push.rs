//! `satchel push` and `satchel attach`: flags to an artifact, files handed
//! to [`satchel_client::push`] and [`satchel_client::attach`], which hash
//! those below the daemon's hash-first size first (its ServerInfo; see
//! [`satchel_client::Client::server_info`]) and stream them in the daemon's
//! chunk size.

use std::collections::HashMap;

use anyhow::{bail, Context};
use clap::Args;
use satchel_client::{pb, LocalFile};

use crate::format::Format;
use crate::progress::Progress;
use crate::show::esc;
use crate::target;
use crate::TargetFlags;

/// Flags shared by push and attach.
#[derive(Args, Debug)]
pub struct ArtifactFlags {
    /// Hash every file before sending it, also those at or over the
    /// daemon's hash-first size (256 MiB by default; smaller ones always
    /// are): reads them twice, but skips those the registry has.
    #[arg(long)]
    hash_first: bool,
    /// Manifest annotation KEY=VALUE; repeatable.
    #[arg(short = 'a', long = "annotation")]
    annotations: Vec<String>,
    /// Config file and media type, FILE[:MEDIATYPE].
    #[arg(long)]
    config: Option<String>,
    /// Output format: text, json, or go-template (with --template, or as
    /// go-template=TEMPLATE).
    #[arg(long, default_value = "text")]
    format: String,
    /// The Go template of --format go-template.
    #[arg(long)]
    template: Option<String>,
    /// Write the pushed manifest's bytes to this file.
    #[arg(long)]
    export_manifest: Option<std::path::PathBuf>,
    #[command(flatten)]
    target: TargetFlags,
}

impl ArtifactFlags {
    /// The output `--format` and `--template` ask for.
    fn output_format(&self) -> anyhow::Result<Format> {
        Format::parse(&self.format, self.template.as_deref(), &["text", "json"])
    }
}

/// `satchel push`.
#[derive(Args, Debug)]
pub struct PushArgs {
    /// Where to push: REF[:TAG[,TAG...]].
    reference: String,
    /// Files, each FILE[:MEDIATYPE].
    files: Vec<String>,
    /// The artifact type (default application/vnd.unknown.artifact.v1).
    #[arg(long)]
    artifact_type: Option<String>,
    #[command(flatten)]
    flags: ArtifactFlags,
}

/// `satchel attach`.
#[derive(Args, Debug)]
pub struct AttachArgs {
    /// The subject, by tag or digest.
    reference: String,
    /// Files, each FILE[:MEDIATYPE].
    files: Vec<String>,
    /// The artifact type; required.
    #[arg(long)]
    artifact_type: String,
    #[command(flatten)]
    flags: ArtifactFlags,
    #[command(flatten)]
    platform: crate::PlatformFlag,
}

/// Splits `FILE[:MEDIATYPE]`: the part after the last ':' is a media type
/// only if it looks like one (has a '/').
fn split_operand(operand: &str) -> (&str, Option<&str>) {
    match operand.rsplit_once(':') {
        Some((file, mt)) if mt.contains('/') && !file.is_empty() => (file, Some(mt)),
        _ => (operand, None),
    }
}

/// The title of the file or directory `path`, as the ORAS CLI makes it:
/// a relative path cleaned lexically (`./a//b` is `a/b`, `a/../b` is `b`);
/// an absolute one, which ORAS refuses without `--disable-path-validation`,
/// is titled with its last part.
fn title_of(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            ".." if path.starts_with('/') => {}
            part => parts.push(part),
        }
    }
    match path.starts_with('/') {
        true => parts.last().copied().unwrap_or_default().to_string(),
        false if parts.is_empty() => ".".to_string(),
        false => parts.join("/"),
    }
}

/// Stats each file (packing directories), and hashes all of them now with
/// `hash_first` (else the push hashes those below the daemon's hash-first
/// size).
async fn prepare_files(operands: &[String], hash_first: bool) -> anyhow::Result<Vec<LocalFile>> {
    let mut out = Vec::new();
    for operand in operands {
        let (file, media_type) = split_operand(operand);
        let title = title_of(file);
        out.push(LocalFile::named(file, &title, media_type.unwrap_or_default(), hash_first).await?);
    }
    Ok(out)
}

fn annotations(flags: &ArtifactFlags) -> anyhow::Result<HashMap<String, String>> {
    flags
        .annotations
        .iter()
        .map(|a| {
            a.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("annotation {a:?} is not KEY=VALUE"))
        })
        .collect()
}

async fn config(flags: &ArtifactFlags) -> anyhow::Result<Option<pb::ConfigSpec>> {
    let Some(operand) = &flags.config else {
        return Ok(None);
    };
    let (file, media_type) = split_operand(operand);
    let data = tokio::fs::read(file)
        .await
        .with_context(|| format!("cannot read config {file}"))?;
    if data.len() > 4 << 20 {
        bail!("config {file} is larger than 4 MiB");
    }
    Ok(Some(pb::ConfigSpec {
        media_type: media_type
            .unwrap_or("application/vnd.oci.empty.v1+json")
            .to_string(),
        data: data.into(),
    }))
}

async fn artifact(
    files: &[String],
    artifact_type: String,
    flags: &ArtifactFlags,
    tags: Vec<String>,
) -> anyhow::Result<(pb::ArtifactSpec, Vec<LocalFile>)> {
    let local = prepare_files(files, flags.hash_first).await?;
    let spec = pb::ArtifactSpec {
        artifact_type,
        annotations: annotations(flags)?,
        files: vec![], // satchel_client fills them in from `local`
        config: config(flags).await?,
        tags,
    };
    Ok((spec, local))
}

/// Runs `satchel push`.
pub async fn push(
    addr: &satchel_client::Daemon,
    args: PushArgs,
    quiet: bool,
) -> anyhow::Result<()> {
    let (reference, tags) = target::split_tags(&args.reference);
    let target = target::parse(&reference, &args.flags.target)?;
    let (spec, local) = artifact(
        &args.files,
        args.artifact_type.unwrap_or_default(),
        &args.flags,
        tags,
    )
    .await?;
    let mut client = addr.connect().await?;
    let format = args.flags.output_format()?;
    let mut progress = Progress::new(quiet || format.is_document());
    let result = satchel_client::push(&mut client, target, spec, local, |p| {
        progress.update(&p.name, p.done, p.total)
    })
    .await;
    progress.finish();
    let result = result?;
    export_manifest(&mut client, &result, &args.flags).await?;
    report("Pushed", &result, &format)
}

/// Runs `satchel attach`.
pub async fn attach(
    addr: &satchel_client::Daemon,
    args: AttachArgs,
    quiet: bool,
) -> anyhow::Result<()> {
    if args.artifact_type.is_empty() {
        bail!("--artifact-type is required");
    }
    let subject = target::parse_for(&args.reference, &args.flags.target, &args.platform)?;
    let (spec, local) = artifact(&args.files, args.artifact_type, &args.flags, vec![]).await?;
    let mut client = addr.connect().await?;
    let format = args.flags.output_format()?;
    let mut progress = Progress::new(quiet || format.is_document());
    let result = satchel_client::attach(&mut client, subject, spec, local, |p| {
        progress.update(&p.name, p.done, p.total)
    })
    .await;
    progress.finish();
    let result = result?;
    export_manifest(&mut client, &result, &args.flags).await?;
    report("Attached to", &result, &format)
}

/// With `--export-manifest`, writes the manifest just pushed, fetched back
/// by digest, to the file named.
async fn export_manifest(
    client: &mut satchel_client::Client,
    pushed: &pb::PushResult,
    flags: &ArtifactFlags,
) -> anyhow::Result<()> {
    let Some(path) = &flags.export_manifest else {
        return Ok(());
    };
    let target = target::parse(&pushed.reference, &flags.target)?;
    let fetched = client
        .fetch_manifest(pb::FetchManifestRequest {
            target: Some(target),
        })
        .await?
        .into_inner();
    std::fs::write(path, &fetched.content)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// ORAS 1.3's `referenceAsTags`: each tag as a full reference.
fn reference_as_tags(reference: &str, tags: &[String]) -> Vec<String> {
    let repo = target::repo_of(reference);
    tags.iter().map(|t| format!("{repo}:{t}")).collect()
}

fn report(verb: &str, resp: &pb::PushResult, format: &Format) -> anyhow::Result<()> {
    let manifest = resp.manifest.clone().unwrap_or_default();
    for warning in &resp.warnings {
        eprintln!("Warning: {}", esc(warning));
    }
    if format.is_document() {
        let out = serde_json::json!({
            "reference": resp.reference,
            "mediaType": manifest.media_type,
            "digest": manifest.digest,
            "size": manifest.size,
            "artifactType": manifest.artifact_type,
            "annotations": manifest.annotations,
            "tags": resp.tags,
            "referenceAsTags": reference_as_tags(&resp.reference, &resp.tags),
            "blobsSkipped": resp.blobs_skipped,
        });
        match format.template() {
            Some(t) => print!("{}", crate::format::render(t, &out)?),
            None => println!("{}", serde_json::to_string_pretty(&out)?),
        }
        return Ok(());
    }
    for layer in &resp.layers {
        let name = layer
            .annotations
            .get("org.opencontainers.image.title")
            .cloned()
            .unwrap_or_default();
        println!(
            "Uploaded  {} ({} bytes) {}",
            esc(&name),
            layer.size,
            esc(&layer.digest)
        );
    }
    match (&resp.subject, verb) {
        (Some(subject), "Attached to") => {
            let subject_ref = resp
                .reference
                .split_once('@')
                .map(|(name, _)| format!("{name}@{}", subject.digest))
                .unwrap_or_else(|| subject.digest.clone());
            println!("{verb} {}", esc(&subject_ref));
        }
        _ => println!("{verb} {}", esc(&resp.reference)),
    }
    println!("ArtifactType: {}", esc(&manifest.artifact_type));
    println!("Digest: {}", esc(&manifest.digest));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::title_of;

    #[test]
    fn titles_are_relative_paths_cleaned_as_oras_cleans_them() {
        assert_eq!(title_of("dir/top.txt"), "dir/top.txt");
        assert_eq!(title_of("./dir//top.txt"), "dir/top.txt");
        assert_eq!(title_of("dir/../top.txt"), "top.txt");
        assert_eq!(title_of("dir/"), "dir");
        assert_eq!(title_of("../up.txt"), "../up.txt");
        assert_eq!(title_of("a/../../up.txt"), "../up.txt");
        assert_eq!(title_of("."), ".");
        assert_eq!(title_of("/abs/path/f.json"), "f.json");
        assert_eq!(title_of("/../f.json"), "f.json");
    }
}

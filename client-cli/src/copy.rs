//! `satchel cp`, `satchel backup` and `satchel restore`, as the ORAS CLI's:
//! every byte moves inside satcheld (Copy); backup and restore are copies
//! between a repository and an OCI layout, tag by tag, the layout a
//! directory or (`*.tar`) an archive of one.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use satchel_client::pb;

use crate::raw::short;
use crate::show::esc;
use crate::{target, PlatformFlag};

#[derive(Args, Debug)]
pub struct CopyArgs {
    /// What to copy: REF (a tag or digest), or with --from-oci-layout
    /// DIR[:TAG|@DIGEST].
    from: String,
    /// Where to: REF[:TAG[,TAG...]], or with --to-oci-layout DIR[:TAG...].
    to: String,
    /// Copy the referrers too, at every level.
    #[arg(short, long)]
    recursive: bool,
    /// The source is an OCI image layout.
    #[arg(long)]
    from_oci_layout: bool,
    /// The destination is an OCI image layout.
    #[arg(long)]
    to_oci_layout: bool,
    /// Talk plain HTTP to the source registry.
    #[arg(long)]
    from_plain_http: bool,
    /// Talk plain HTTP to the destination registry.
    #[arg(long)]
    to_plain_http: bool,
    /// How the source's referrers are found: v1.1-referrers-api or
    /// v1.1-referrers-tag (default: detect).
    #[arg(long, value_parser = ["v1.1-referrers-api", "v1.1-referrers-tag"])]
    from_distribution_spec: Option<String>,
    /// How the destination records referrers (default: detect).
    #[arg(long, value_parser = ["v1.1-referrers-api", "v1.1-referrers-tag"])]
    to_distribution_spec: Option<String>,
    #[command(flatten)]
    platform: PlatformFlag,
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// REG/REPO[:TAG[,TAG...]]; without tags, every tag of the repository.
    reference: String,
    /// A directory, or a file ending in .tar.
    #[arg(short, long)]
    output: PathBuf,
    /// Back up each artifact's referrers too.
    #[arg(long)]
    include_referrers: bool,
    /// Talk plain HTTP to the registry.
    #[arg(long)]
    plain_http: bool,
    /// How referrers are found (default: detect).
    #[arg(long, value_parser = ["v1.1-referrers-api", "v1.1-referrers-tag"])]
    distribution_spec: Option<String>,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// REG/REPO[:TAG[,TAG...]]; without tags, every tag of the backup.
    reference: String,
    /// The backup: a directory, or a tar archive of one.
    #[arg(long)]
    input: PathBuf,
    /// Leave the referrers out.
    #[arg(long)]
    exclude_referrers: bool,
    /// Say what would be restored; push nothing.
    #[arg(long)]
    dry_run: bool,
    /// Talk plain HTTP to the registry.
    #[arg(long)]
    plain_http: bool,
    /// How referrers are recorded (default: detect).
    #[arg(long, value_parser = ["v1.1-referrers-api", "v1.1-referrers-tag"])]
    distribution_spec: Option<String>,
}

fn flags(plain_http: bool, oci_layout: bool, spec: &Option<String>) -> crate::TargetFlags {
    crate::TargetFlags {
        plain_http,
        oci_layout,
        distribution_spec: spec.clone(),
    }
}

/// Runs `satchel cp`.
pub async fn copy(
    addr: &satchel_client::Daemon,
    args: CopyArgs,
    quiet: bool,
) -> anyhow::Result<()> {
    let from_flags = flags(
        args.from_plain_http,
        args.from_oci_layout,
        &args.from_distribution_spec,
    );
    let source = target::parse_for(&args.from, &from_flags, &args.platform)?;
    let (to, extra_tags) = target::split_tags(&args.to);
    let to_flags = flags(
        args.to_plain_http,
        args.to_oci_layout,
        &args.to_distribution_spec,
    );
    let destination = target::parse(&to, &to_flags)?;
    let request = pb::CopyRequest {
        source: Some(source),
        destination: Some(destination),
        recursive: args.recursive,
        extra_tags,
    };
    let done = run_copy(addr, request, (!quiet).then_some(&CP_PROMPTS)).await?;
    let kind = |layout: bool| if layout { "oci-layout" } else { "registry" };
    println!(
        "Copied [{}] {} => [{}] {}",
        kind(args.from_oci_layout),
        esc(&args.from),
        kind(args.to_oci_layout),
        esc(&to)
    );
    for tag in done.tags.iter().skip(1) {
        println!("Tagged {}", esc(tag));
    }
    println!("Digest: {}", done.manifest.unwrap_or_default().digest);
    Ok(())
}

/// The status words of one command, by event: copying, copied, exists,
/// mounted (ORAS's, each padded to one width).
type Prompts = [&'static str; 4];
const CP_PROMPTS: Prompts = ["Copying", "Copied ", "Exists ", "Mounted"];
const BACKUP_PROMPTS: Prompts = ["Pulling  ", "Pulled   ", "Exists   ", "Exists   "];
const RESTORE_PROMPTS: Prompts = ["Pushing  ", "Pushed   ", "Exists   ", "Exists   "];

/// Sends a Copy, printing its events as ORAS's status lines unless
/// `quiet`; returns the result.
async fn run_copy(
    addr: &satchel_client::Daemon,
    request: pb::CopyRequest,
    prompts: Option<&Prompts>,
) -> anyhow::Result<pb::CopyResult> {
    use pb::copy_event::Kind;
    let mut client = addr.connect().await?;
    let mut answers = client.copy(request).await?.into_inner();
    while let Some(answer) = answers.message().await? {
        match answer.answer {
            Some(pb::copy_response::Answer::Event(e)) if prompts.is_some() => {
                let words = prompts.expect("matched");
                let prompt = match e.kind() {
                    Kind::Copying => words[0],
                    Kind::Copied => words[1],
                    Kind::Exists => words[2],
                    Kind::Mounted => words[3],
                    Kind::Unspecified => continue,
                };
                let desc = e.content.unwrap_or_default();
                println!("{prompt} {} {}", short(&desc.digest), esc(&name_of(&desc)));
            }
            Some(pb::copy_response::Answer::Result(done)) => return Ok(done),
            _ => {}
        }
    }
    bail!("satcheld ended the copy without a result")
}

fn name_of(desc: &pb::Descriptor) -> String {
    desc.annotations
        .get("org.opencontainers.image.title")
        .cloned()
        .unwrap_or_else(|| desc.media_type.clone())
}

/// `REG/REPO[:TAG[,TAG...]]` as a repository and its tags, as ORAS reads
/// backup's and restore's argument: digests are refused.
fn repository_and_tags(reference: &str) -> anyhow::Result<(String, Vec<String>)> {
    if reference.contains('@') {
        bail!("digest references are not supported: {reference:?}");
    }
    let (first, extra) = target::split_tags(reference);
    let last_slash = first.rfind('/').map_or(0, |i| i + 1);
    match first[last_slash..].rfind(':') {
        Some(i) => {
            let at = last_slash + i;
            let mut tags = vec![first[at + 1..].to_string()];
            tags.extend(extra);
            if tags.iter().any(String::is_empty) {
                bail!("empty tag in reference {reference:?}");
            }
            Ok((first[..at].to_string(), tags))
        }
        None => Ok((first, Vec::new())),
    }
}

fn registry_target(
    repository: &str,
    tag: &str,
    plain_http: bool,
    spec: &Option<String>,
) -> anyhow::Result<pb::Target> {
    let reference = match tag {
        "" => repository.to_string(),
        tag => format!("{repository}:{tag}"),
    };
    target::parse(&reference, &flags(plain_http, false, spec))
}

fn layout_target(dir: &Path, tag: &str) -> pb::Target {
    pb::Target {
        reference: tag.to_string(),
        oci_layout: dir.to_string_lossy().into_owned(),
        ..Default::default()
    }
}

/// Runs `satchel backup`.
pub async fn backup(
    addr: &satchel_client::Daemon,
    args: BackupArgs,
    quiet: bool,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let (repository, mut tags) = repository_and_tags(&args.reference)?;
    let to_tar = is_tar_name(&args.output);
    if to_tar && args.output.is_dir() {
        bail!(
            "the output path {:?} already exists and is a directory",
            args.output
        );
    }
    // Next to the archive, where a daemon serving other users may be
    // allowed to write (its layout roots), and on the same file system.
    let scratch = match to_tar {
        true => Some(
            tempfile::Builder::new()
                .prefix(".satchel-backup-")
                .tempdir_in(parent_of(&args.output))?,
        ),
        false => None,
    };
    let dir = match &scratch {
        Some(t) => t.path().to_path_buf(),
        None => std::path::absolute(&args.output)?,
    };
    let mut client = addr.connect().await?;
    if tags.is_empty() {
        let repo = registry_target(&repository, "", args.plain_http, &args.distribution_spec)?;
        tags = list_tags(&mut client, repo).await?;
        if tags.is_empty() {
            bail!("no tags found in repository {repository:?}");
        }
    }
    let mut sources = Vec::new();
    for tag in &tags {
        let source = registry_target(&repository, tag, args.plain_http, &args.distribution_spec)?;
        resolve_all(&mut client, &source, tag).await?;
        sources.push(source);
    }
    print_found(&tags, &format!("in {}", esc(&repository)));
    for (tag, source) in tags.iter().zip(sources) {
        let request = pb::CopyRequest {
            source: Some(source),
            destination: Some(layout_target(&dir, tag)),
            recursive: args.include_referrers,
            extra_tags: Vec::new(),
        };
        let done = run_copy(addr, request, (!quiet).then_some(&BACKUP_PROMPTS)).await?;
        println!(
            "Pulled tag {} with {} referrer(s)",
            esc(tag),
            done.referrers
        );
    }
    // The layout's staging directory, empty once the copies are done, as
    // ORAS removes its own.
    let _ = std::fs::remove_dir(dir.join("ingest"));
    if let Some(scratch) = scratch {
        println!("Exporting to {}", args.output.display());
        let size = satchel_client::layout_archive::write(scratch.path(), &args.output)?;
        println!("Exported to {} ({size} B)", args.output.display());
    }
    println!(
        "Successfully backed up {} tag(s) from {:?} to {:?} in {:.1?}.",
        tags.len(),
        repository,
        args.output.display().to_string(),
        started.elapsed()
    );
    Ok(())
}

/// Runs `satchel restore`.
pub async fn restore(
    addr: &satchel_client::Daemon,
    args: RestoreArgs,
    quiet: bool,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let (repository, mut tags) = repository_and_tags(&args.reference)?;
    let (_scratch, dir) = open_backup(&args.input)?;
    let mut client = addr.connect().await?;
    if tags.is_empty() {
        tags = list_tags(&mut client, layout_target(&dir, "")).await?;
        if tags.is_empty() {
            bail!("no tags found in OCI layout {:?}", args.input);
        }
    }
    for tag in &tags {
        resolve_all(&mut client, &layout_target(&dir, tag), tag).await?;
    }
    print_found(&tags, "in the backup");
    for tag in &tags {
        if args.dry_run {
            let count = match args.exclude_referrers {
                true => 0,
                false => count_referrers(&mut client, &dir, tag).await?,
            };
            println!(
                "Dry run: would push tag {} with {count} referrer(s)",
                esc(tag)
            );
            continue;
        }
        let request = pb::CopyRequest {
            source: Some(layout_target(&dir, tag)),
            destination: Some(registry_target(
                &repository,
                tag,
                args.plain_http,
                &args.distribution_spec,
            )?),
            recursive: !args.exclude_referrers,
            extra_tags: Vec::new(),
        };
        let done = run_copy(addr, request, (!quiet).then_some(&RESTORE_PROMPTS)).await?;
        println!(
            "Pushed tag {} with {} referrer(s)",
            esc(tag),
            done.referrers
        );
    }
    match args.dry_run {
        true => println!(
            "Dry run complete: {} tag(s) would be restored to {repository:?} (no data pushed)",
            tags.len()
        ),
        false => println!(
            "Successfully restored {} tag(s) to {repository:?} in {:.1?}",
            tags.len(),
            started.elapsed()
        ),
    }
    Ok(())
}

/// The directory a path is in (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Fails before anything is copied when `tag` does not resolve, as ORAS
/// resolves every tag first.
async fn resolve_all(
    client: &mut satchel_client::Client,
    target: &pb::Target,
    tag: &str,
) -> anyhow::Result<()> {
    let request = pb::ResolveRequest {
        target: Some(target.clone()),
    };
    client
        .resolve(request)
        .await
        .with_context(|| format!("failed to resolve tag {tag:?}"))?;
    Ok(())
}

/// `Found N tag(s) WHERE: a, b` as ORAS prints it: one line for up to five
/// tags, else a tag per line.
fn print_found(tags: &[String], place: &str) {
    match tags.len() {
        ..=5 => println!(
            "Found {} tag(s) {place}: {}",
            tags.len(),
            esc(&tags.join(", "))
        ),
        n => {
            println!("Found {n} tag(s) {place}:");
            for tag in tags {
                println!("{}", esc(tag));
            }
        }
    }
}

/// A backup as a layout directory: `input` itself, or a tar archive of
/// one extracted into a temporary directory (returned, to keep it alive).
fn open_backup(input: &Path) -> anyhow::Result<(Option<tempfile::TempDir>, PathBuf)> {
    let meta =
        std::fs::metadata(input).with_context(|| format!("cannot read {}", input.display()))?;
    if !meta.is_file() {
        return Ok((None, std::path::absolute(input)?));
    }
    // Beside the archive (see backup), else in the temporary directory.
    let scratch = tempfile::Builder::new()
        .prefix(".satchel-restore-")
        .tempdir_in(parent_of(input))
        .or_else(|_| {
            tempfile::Builder::new()
                .prefix("satchel-restore-")
                .tempdir()
        })?;
    satchel_client::layout_archive::extract(input, scratch.path())?;
    println!("Loaded backup archive: {}", input.display());
    let dir = scratch.path().to_path_buf();
    Ok((Some(scratch), dir))
}

/// Every tag of `repository`, the referrers tag schema's included (as ORAS
/// backs them up).
async fn list_tags(
    client: &mut satchel_client::Client,
    repository: pb::Target,
) -> anyhow::Result<Vec<String>> {
    let request = pb::ListTagsRequest {
        repository: Some(repository),
        ..Default::default()
    };
    Ok(client.list_tags(request).await?.into_inner().tags)
}

/// The referrers a restore of `tag` would push: the referrer tree of its
/// manifest and, for an index, of each of its manifests.
async fn count_referrers(
    client: &mut satchel_client::Client,
    dir: &Path,
    tag: &str,
) -> anyhow::Result<u32> {
    let fetched = client
        .fetch_manifest(pb::FetchManifestRequest {
            target: Some(layout_target(dir, tag)),
        })
        .await?
        .into_inner();
    let mut subjects = vec![fetched.manifest.unwrap_or_default().digest];
    let doc: serde_json::Value = serde_json::from_slice(&fetched.content).unwrap_or_default();
    if let Some(list) = doc.get("manifests").and_then(|m| m.as_array()) {
        subjects.extend(
            list.iter()
                .filter_map(|m| m["digest"].as_str().map(str::to_string)),
        );
    }
    let mut count = 0;
    for subject in &subjects {
        let found = client
            .discover(pb::DiscoverRequest {
                subject: Some(layout_target(dir, subject)),
                depth: crate::discover::ALL_LEVELS,
                ..Default::default()
            })
            .await?
            .into_inner();
        count += nodes(&found.referrers);
    }
    Ok(count)
}

fn nodes(list: &[pb::Referrer]) -> u32 {
    list.iter().map(|r| 1 + nodes(&r.referrers)).sum()
}

fn is_tar_name(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("tar"))
}

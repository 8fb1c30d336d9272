//! `satchel pull`: receive files from the daemon and write each one under
//! a temporary name, renaming it into place only after its digest checks
//! out. Nothing is ever written outside the output directory.

use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use futures::StreamExt;
use satchel_client::pb;
use tokio::io::AsyncWriteExt;

use crate::target;
use crate::TargetFlags;

/// `satchel pull`.
#[derive(Args, Debug)]
pub struct PullArgs {
    /// The artifact, by tag or digest. Leave out with --subject.
    #[arg(required_unless_present = "subject", conflicts_with = "subject")]
    reference: Option<String>,
    /// Pull the newest attachment of --artifact-type on this image instead.
    #[arg(long, requires = "artifact_type")]
    subject: Option<String>,
    /// With --subject: the artifact type of the attachment to pull.
    #[arg(long, requires = "subject")]
    artifact_type: Option<String>,
    /// The directory to write files into.
    #[arg(short = 'o', long = "output", default_value = ".")]
    output: PathBuf,
    #[command(flatten)]
    target: TargetFlags,
}

/// A file being received.
struct Partial {
    name: String,
    final_path: PathBuf,
    temp_path: PathBuf,
    file: tokio::fs::File,
    layer_size: u64,
    expected: String,
    size: u64,
}

/// Maps a title to a path inside `out`, refusing anything that could leave it.
fn safe_path(out: &Path, title: &str) -> anyhow::Result<PathBuf> {
    let rel = Path::new(title);
    if title.is_empty()
        || title.contains('\\')
        || !rel.components().all(|c| matches!(c, Component::Normal(_)))
    {
        bail!("refusing to write {title:?}: it is not a plain relative path");
    }
    Ok(out.join(rel))
}

/// Runs `satchel pull`.
pub async fn pull(
    addr: &satchel_client::Daemon,
    args: PullArgs,
    quiet: bool,
) -> anyhow::Result<()> {
    let mut progress = crate::progress::Progress::new(quiet);
    let request = match (&args.reference, &args.subject) {
        (Some(reference), None) => pb::PullRequest {
            target: Some(target::parse(reference, &args.target)?),
            ..Default::default()
        },
        (None, Some(subject)) => pb::PullRequest {
            subject: Some(target::parse(subject, &args.target)?),
            artifact_type: args.artifact_type.clone().unwrap_or_default(),
            ..Default::default()
        },
        _ => bail!("give a reference, or --subject with --artifact-type"),
    };
    let mut client = addr.connect().await?;
    let mut stream = client.pull(request).await?.into_inner();
    let mut pulled_ref = String::new();
    let mut current: Option<Partial> = None;
    let mut manifest_digest = String::new();
    let mut written = 0usize;
    let result: anyhow::Result<()> = async {
        while let Some(msg) = stream.next().await {
            match msg?.payload {
                Some(pb::pull_response::Payload::Manifest(m)) => {
                    manifest_digest = m.manifest.unwrap_or_default().digest;
                    pulled_ref = m.reference;
                }
                Some(pb::pull_response::Payload::File(header)) => {
                    if current.is_some() {
                        bail!("the daemon started a file before finishing the last one");
                    }
                    let desc = header.layer.unwrap_or_default();
                    let final_path = safe_path(&args.output, &header.name)?;
                    let dir = final_path.parent().unwrap_or(&args.output).to_path_buf();
                    tokio::fs::create_dir_all(&dir)
                        .await
                        .with_context(|| format!("cannot create {}", dir.display()))?;
                    let base = final_path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let temp_path =
                        dir.join(format!(".{base}.satchel-{}.partial", std::process::id()));
                    let file = tokio::fs::File::create(&temp_path)
                        .await
                        .with_context(|| format!("cannot create {}", temp_path.display()))?;
                    current = Some(Partial {
                        name: header.name,
                        final_path,
                        temp_path,
                        file,
                        layer_size: desc.size,
                        expected: desc.digest,
                        size: 0,
                    });
                }
                Some(pb::pull_response::Payload::Chunk(data)) => {
                    let p = current
                        .as_mut()
                        .context("the daemon sent bytes outside a file")?;
                    p.size += data.len() as u64;
                    p.file
                        .write_all(&data)
                        .await
                        .with_context(|| format!("cannot write {}", p.temp_path.display()))?;
                }
                Some(pb::pull_response::Payload::Progress(p)) => {
                    progress.update(&p.name, p.done, p.total);
                }
                Some(pb::pull_response::Payload::Done(done)) => {
                    let mut p = current
                        .take()
                        .context("the daemon ended a file it never started")?;
                    p.file.flush().await?;
                    p.file.sync_data().await?;
                    // The daemon hashed every byte it sent and says which
                    // digest they matched; the size we count must agree.
                    let checked = done.digest == p.expected && p.size == p.layer_size;
                    if !checked {
                        let _ = tokio::fs::remove_file(&p.temp_path).await;
                        bail!("{} does not match its digest {}", p.name, p.expected);
                    }
                    tokio::fs::rename(&p.temp_path, &p.final_path)
                        .await
                        .with_context(|| format!("cannot move {} into place", p.name))?;
                    println!("Downloaded {} ({} bytes) {}", p.name, p.size, p.expected);
                    written += 1;
                }
                None => {}
            }
        }
        if current.is_some() {
            bail!("the stream ended in the middle of a file");
        }
        Ok(())
    }
    .await;
    progress.finish();
    if let Some(p) = current.take() {
        drop(p.file);
        let _ = tokio::fs::remove_file(&p.temp_path).await;
    }
    result?;
    if written == 0 {
        eprintln!("Warning: the artifact has no files with a title annotation; nothing written");
    }
    println!("Pulled {pulled_ref}");
    println!("Digest: {manifest_digest}");
    Ok(())
}

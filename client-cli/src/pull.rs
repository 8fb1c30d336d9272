//! `satchel pull`: flags to a request for [`satchel_client::pull`], which
//! writes each file under a temporary name (or, on the daemon's Unix
//! socket, has the daemon fill it) and renames it into place only after
//! its digest checks out, never outside the output directory.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use satchel_client::{pb, PullEvent};

use crate::progress::Progress;
use crate::show::esc;
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
    /// Receive the bytes over the gRPC stream even on the daemon's Unix
    /// socket, where by default the daemon writes the files itself (the
    /// local file handoff).
    #[arg(long)]
    stream: bool,
    #[command(flatten)]
    target: TargetFlags,
}

/// Runs `satchel pull`.
pub async fn pull(
    addr: &satchel_client::Daemon,
    args: PullArgs,
    quiet: bool,
) -> anyhow::Result<()> {
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
    if args.stream {
        client = client.without_local_handoff();
    }
    let mut progress = Progress::new(quiet);
    let result = satchel_client::pull(&mut client, request, &args.output, |event| match event {
        PullEvent::Progress(p) => progress.update(&p.name, p.done, p.total),
        PullEvent::File(f) => println!(
            "Downloaded {} ({} bytes) {}",
            esc(&f.name),
            f.layer.size,
            esc(&f.layer.digest)
        ),
    })
    .await;
    progress.finish();
    let pulled = result?;
    if pulled.files.is_empty() {
        eprintln!("Warning: the artifact has no files with a title annotation; nothing written");
    }
    println!("Pulled {}", esc(&pulled.reference));
    println!("Digest: {}", esc(&pulled.manifest.digest));
    Ok(())
}

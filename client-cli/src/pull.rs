//! `satchel pull`: flags to a request for [`satchel_client::pull`], which
//! writes each file under a temporary name (or, on the daemon's Unix
//! socket, has the daemon fill it) and renames it into place only after
//! its digest checks out, never outside the output directory.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use satchel_client::{pb, PullEvent};

use crate::format::Format;
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
    /// Pull only what is signed (cosign) by this PEM public key; repeat for
    /// several. With --subject, the newest attachment that verifies. When
    /// none does, nothing is written.
    #[arg(long = "verify-key", value_name = "PUB")]
    verify_keys: Vec<PathBuf>,
    /// The directory to write files into.
    #[arg(short = 'o', long = "output", default_value = ".")]
    output: PathBuf,
    /// Receive the bytes over the gRPC stream even on the daemon's Unix
    /// socket, where by default the daemon writes the files itself (the
    /// local file handoff).
    #[arg(long)]
    stream: bool,
    /// Also write the manifest's config blob to this file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Output format: `json` prints the manifest's reference and each file
    /// written, as the ORAS CLI's `pull --format json` does; go-template
    /// (with --template, or as go-template=TEMPLATE) runs over that.
    #[arg(long, default_value = "text")]
    format: String,
    /// The Go template of --format go-template.
    #[arg(long)]
    template: Option<String>,
    #[command(flatten)]
    target: TargetFlags,
    #[command(flatten)]
    platform: crate::PlatformFlag,
}

/// Runs `satchel pull`.
pub async fn pull(
    addr: &satchel_client::Daemon,
    args: PullArgs,
    quiet: bool,
) -> anyhow::Result<()> {
    let request = match (&args.reference, &args.subject) {
        (Some(reference), None) => pb::PullRequest {
            target: Some(target::parse_for(reference, &args.target, &args.platform)?),
            ..Default::default()
        },
        (None, Some(subject)) => pb::PullRequest {
            subject: Some(target::parse_for(subject, &args.target, &args.platform)?),
            artifact_type: args.artifact_type.clone().unwrap_or_default(),
            ..Default::default()
        },
        _ => bail!("give a reference, or --subject with --artifact-type"),
    };
    let request = pb::PullRequest {
        verify_keys: crate::verify::read_keys(&args.verify_keys)?,
        ..request
    };
    let mut client = addr.connect().await?;
    if args.stream {
        client = client.without_local_handoff();
    }
    let format = Format::parse(&args.format, args.template.as_deref(), &["text", "json"])?;
    let json = format.is_document();
    let mut progress = Progress::new(quiet || json);
    let result = satchel_client::pull(&mut client, request, &args.output, |event| match event {
        PullEvent::Progress(p) => progress.update(&p.name, p.done, p.total),
        PullEvent::File(_) if json => {}
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
    if let Some(path) = &args.config {
        // Relative to the output directory, as ORAS writes it.
        let target = target::parse(&pulled.reference, &args.target)?;
        write_config(&mut client, target, &args.output.join(path)).await?;
    }
    if json {
        crate::format::emit(&format, &to_json(&pulled)?)?;
        return Ok(());
    }
    println!("Pulled {}", esc(&pulled.reference));
    println!("Digest: {}", esc(&pulled.manifest.digest));
    if let Some(s) = &pulled.signature {
        println!(
            "Verified: signature {} by key {}",
            esc(&s.digest),
            esc(&s.key_fingerprint)
        );
    }
    Ok(())
}

/// Writes the config blob of the manifest `target` names to `path`
/// (verified, under a temporary name until whole).
async fn write_config(
    client: &mut satchel_client::Client,
    target: pb::Target,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    let fetched = client
        .fetch_manifest(pb::FetchManifestRequest {
            target: Some(target.clone()),
        })
        .await?
        .into_inner();
    let manifest: serde_json::Value = serde_json::from_slice(&fetched.content)?;
    let config = &manifest["config"];
    let (Some(digest), Some(size)) = (config["digest"].as_str(), config["size"].as_u64()) else {
        bail!("the manifest has no config");
    };
    let request = pb::DownloadBlobRequest {
        digest: digest.to_string(),
        size,
        source: Some(target),
        ..Default::default()
    };
    satchel_client::blob::download(client, request, path, |_| {}).await?;
    Ok(())
}

/// The ORAS CLI's pull document: the manifest's reference and each file
/// with its absolute path (a directory's ends in `/`) and its layer.
fn to_json(pulled: &satchel_client::Pulled) -> anyhow::Result<serde_json::Value> {
    let repo = target::repo_of(&pulled.reference);
    let mut files = Vec::new();
    for f in &pulled.files {
        let mut path = std::path::absolute(&f.path)?.to_string_lossy().into_owned();
        if satchel_client::unpack::is_directory(&f.layer) {
            path.push('/');
        }
        let annotations: std::collections::BTreeMap<_, _> = f.layer.annotations.iter().collect();
        files.push(serde_json::json!({
            "path": path,
            "reference": format!("{repo}@{}", f.layer.digest),
            "mediaType": f.layer.media_type,
            "digest": f.layer.digest,
            "size": f.layer.size,
            "annotations": annotations,
        }));
    }
    let mut doc = serde_json::json!({
        "reference": pulled.reference,
        "files": files,
    });
    if let Some(s) = &pulled.signature {
        doc["signature"] = crate::verify::signature_json(s);
    }
    Ok(doc)
}

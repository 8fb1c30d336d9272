//! `satchel manifest push`, `manifest fetch-config` and `blob
//! fetch|push|delete`, with the ORAS CLI's flags and output.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use satchel_client::fetch::{fetch_blob, Sink};
use satchel_client::pb;

use crate::show::esc;
use crate::{target, PlatformFlag, TargetFlags};

#[derive(Args, Debug)]
pub struct ManifestPushArgs {
    /// REF[:TAG[,TAG...]] or REF@DIGEST.
    reference: String,
    /// The manifest file, or - for standard input.
    file: String,
    /// The manifest's media type (default: its mediaType field).
    #[arg(long)]
    media_type: Option<String>,
    /// Print the manifest's descriptor instead of the summary.
    #[arg(long)]
    descriptor: bool,
    #[command(flatten)]
    target: TargetFlags,
}

#[derive(Args, Debug)]
pub struct FetchConfigArgs {
    /// The manifest, by tag or digest.
    reference: String,
    /// Write the config here, or - for standard output (the default).
    #[arg(short, long)]
    output: Option<String>,
    /// Print the config's descriptor.
    #[arg(long)]
    descriptor: bool,
    #[command(flatten)]
    target: TargetFlags,
    #[command(flatten)]
    platform: PlatformFlag,
}

#[derive(Args, Debug)]
pub struct BlobFetchArgs {
    /// REF@DIGEST.
    reference: String,
    /// Write the blob here, or - for standard output.
    #[arg(short, long)]
    output: Option<String>,
    /// Print the blob's descriptor.
    #[arg(long)]
    descriptor: bool,
    #[command(flatten)]
    target: TargetFlags,
}

#[derive(Args, Debug)]
pub struct BlobPushArgs {
    /// The repository, REF or REF@DIGEST (the digest is checked).
    reference: String,
    /// The file to push.
    file: PathBuf,
    /// The media type the descriptor reports.
    #[arg(long, default_value = "application/vnd.oci.image.layer.v1.tar")]
    media_type: String,
    /// Print the blob's descriptor instead of the summary.
    #[arg(long)]
    descriptor: bool,
    #[command(flatten)]
    target: TargetFlags,
}

#[derive(Args, Debug)]
pub struct BlobDeleteArgs {
    /// REF@DIGEST.
    reference: String,
    /// Delete without asking; a missing blob is then not an error.
    #[arg(short, long)]
    force: bool,
    #[command(flatten)]
    target: TargetFlags,
}

fn kind(flags: &TargetFlags) -> &'static str {
    if flags.oci_layout {
        "oci-layout"
    } else {
        "registry"
    }
}

/// `{"mediaType":…,"digest":…,"size":…}` in ORAS's key order.
pub fn descriptor_json(d: &pb::Descriptor) -> String {
    format!(
        "{{\"mediaType\":{},\"digest\":{},\"size\":{}}}",
        serde_json::Value::from(d.media_type.as_str()),
        serde_json::Value::from(d.digest.as_str()),
        d.size
    )
}

/// Runs `satchel manifest push`.
pub async fn manifest_push(
    addr: &satchel_client::Daemon,
    args: ManifestPushArgs,
) -> anyhow::Result<()> {
    // At most one byte past satcheld's limit, which then refuses it.
    let limit = (4u64 << 20) + 1;
    let mut content = Vec::new();
    match args.file.as_str() {
        "-" => std::io::stdin()
            .take(limit)
            .read_to_end(&mut content)
            .context("cannot read standard input")?,
        path => std::fs::File::open(path)
            .and_then(|f| f.take(limit).read_to_end(&mut content))
            .with_context(|| format!("cannot read {path}"))?,
    };
    let (reference, extra_tags) = target::split_tags(&args.reference);
    let mut client = addr.connect().await?;
    let resp = client
        .push_manifest(pb::PushManifestRequest {
            target: Some(target::parse(&reference, &args.target)?),
            content: content.into(),
            media_type: args.media_type.unwrap_or_default(),
            extra_tags,
        })
        .await?
        .into_inner();
    let desc = resp.manifest.unwrap_or_default();
    let pushed = format!("[{}] {reference}", kind(&args.target));
    if !report_push(&desc, resp.existed, args.descriptor, &pushed) {
        return Ok(());
    }
    for tag in resp
        .tags
        .iter()
        .skip(usize::from(!reference.contains('@') && has_tag(&reference)))
    {
        println!("Tagged {}", esc(tag));
    }
    println!("Digest: {}", desc.digest);
    Ok(())
}

/// Prints what a push did: with `descriptor` the descriptor alone (and
/// false: nothing more to print), else ORAS's status lines and `Pushed: …`.
fn report_push(desc: &pb::Descriptor, existed: bool, descriptor: bool, pushed: &str) -> bool {
    if descriptor {
        println!("{}", descriptor_json(desc));
        return false;
    }
    let (digest, name) = (short(&desc.digest), esc(&desc.media_type));
    match existed {
        true => println!("Exists    {digest} {name}"),
        false => println!("Uploading {digest} {name}\nUploaded  {digest} {name}"),
    }
    println!("Pushed: {}", esc(pushed));
    true
}

fn has_tag(reference: &str) -> bool {
    let last = reference.rfind('/').map_or(0, |i| i + 1);
    reference[last..].contains(':')
}

/// The twelve hex digits ORAS shows of a sha256 digest.
pub fn short(digest: &str) -> &str {
    match digest.strip_prefix("sha256:") {
        Some(hex) if hex.len() >= 12 => &hex[..12],
        _ => digest,
    }
}

fn sink(output: &Option<String>) -> Sink<'_> {
    match output.as_deref() {
        None => Sink::Nowhere,
        Some("-") => Sink::Stdout,
        Some(path) => Sink::File(std::path::Path::new(path)),
    }
}

/// Runs `satchel blob fetch`.
pub async fn blob_fetch(addr: &satchel_client::Daemon, args: BlobFetchArgs) -> anyhow::Result<()> {
    if args.output.is_none() && !args.descriptor {
        bail!("either --output or --descriptor must be provided");
    }
    if args.output.as_deref() == Some("-") && args.descriptor {
        bail!("--descriptor cannot be used with --output -");
    }
    let target = target::parse(&args.reference, &args.target)?;
    let mut client = addr.connect().await?;
    let desc = fetch_blob(&mut client, target, sink(&args.output)).await?;
    if args.descriptor {
        println!("{}", descriptor_json(&desc));
    }
    Ok(())
}

/// Runs `satchel manifest fetch-config`.
pub async fn fetch_config(
    addr: &satchel_client::Daemon,
    args: FetchConfigArgs,
) -> anyhow::Result<()> {
    if args.output.as_deref() == Some("-") && args.descriptor {
        bail!("--descriptor cannot be used with --output -");
    }
    let target = target::parse_for(&args.reference, &args.target, &args.platform)?;
    let mut client = addr.connect().await?;
    let fetched = client
        .fetch_manifest(pb::FetchManifestRequest {
            target: Some(target.clone()),
        })
        .await?
        .into_inner();
    let doc: serde_json::Value =
        serde_json::from_slice(&fetched.content).context("the manifest is not JSON")?;
    let config = &doc["config"];
    let (Some(media_type), Some(digest)) =
        (config["mediaType"].as_str(), config["digest"].as_str())
    else {
        bail!(
            "{} has no config: it is not an image manifest",
            esc(&fetched.reference)
        );
    };
    let config_target = pb::Target {
        reference: match args.target.oci_layout {
            true => digest.to_string(),
            false => format!("{}@{digest}", target::repo_of(&fetched.reference)),
        },
        platform: String::new(),
        ..target
    };
    let output = match (&args.output, args.descriptor) {
        (None, false) => Some("-".to_string()),
        (o, _) => o.clone(),
    };
    let mut desc = fetch_blob(&mut client, config_target, sink(&output)).await?;
    if args.descriptor {
        desc.media_type = media_type.to_string();
        println!("{}", descriptor_json(&desc));
    }
    Ok(())
}

/// Runs `satchel blob push`: the file goes into satcheld's content store
/// (resumable), then from there into the target.
pub async fn blob_push(addr: &satchel_client::Daemon, args: BlobPushArgs) -> anyhow::Result<()> {
    let mut client = addr.connect().await?;
    let options = satchel_client::blob::UploadOptions::default();
    let uploaded = satchel_client::blob::upload(&mut client, &args.file, options, |_| {}).await?;
    // A digest in the reference is checked by satcheld.
    let resp = client
        .push_blob(pb::PushBlobRequest {
            target: Some(target::parse(&args.reference, &args.target)?),
            digest: uploaded.digest.clone(),
            media_type: args.media_type,
        })
        .await?
        .into_inner();
    let desc = resp.blob.unwrap_or_default();
    let pushed = format!("[{}] {}", kind(&args.target), args.reference);
    if !report_push(&desc, resp.existed, args.descriptor, &pushed) {
        return Ok(());
    }
    println!("Digest: {}", desc.digest);
    Ok(())
}

/// Asks on the terminal, as ORAS does without --force; false for anything
/// but y or yes. Without a terminal (a script) nobody is asked: yes, as
/// satchel's deletes have always gone (docs/cli-json.md).
pub fn confirmed(question: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Ok(true);
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// Runs `satchel blob delete`.
pub async fn blob_delete(
    addr: &satchel_client::Daemon,
    args: BlobDeleteArgs,
) -> anyhow::Result<()> {
    let question = format!(
        "Are you sure you want to delete the blob {:?}?",
        args.reference
    );
    if !args.force && !confirmed(&question)? {
        println!("Operation cancelled.");
        return Ok(());
    }
    let target = target::parse(&args.reference, &args.target)?;
    let mut client = addr.connect().await?;
    let request = pb::DeleteBlobRequest {
        target: Some(target),
    };
    match client.delete_blob(request).await {
        Ok(_) => println!("Deleted [{}] {}", kind(&args.target), esc(&args.reference)),
        Err(status) if status.code() == tonic::Code::NotFound && args.force => {
            println!("Missing {}", esc(&args.reference))
        }
        Err(status) => return Err(status.into()),
    }
    Ok(())
}

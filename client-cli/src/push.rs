//! `satchel push` and `satchel attach`: hash each file (small ones; see
//! [`HASH_FIRST_BELOW`]), then stream it to the daemon in chunks of at most
//! 1 MiB.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use futures::Stream;
use satchel_client::pb;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncReadExt;

use crate::target;
use crate::TargetFlags;

/// Files smaller than this are hashed before they are sent, so the daemon
/// can skip blobs the target already has and upload the rest in one
/// request. Larger files are read once: they stream at once, and the daemon
/// hashes them on the way to the registry, in chunked uploads that resume
/// after a dropped connection. `--hash-first` hashes them first too.
const HASH_FIRST_BELOW: u64 = 256 << 20;

/// Flags shared by push and attach.
#[derive(Args, Debug)]
pub struct ArtifactFlags {
    /// Hash files of 256 MiB and more before sending them (smaller ones
    /// always are): reads them twice, but skips those the registry has.
    #[arg(long)]
    hash_first: bool,
    /// Manifest annotation KEY=VALUE; repeatable.
    #[arg(short = 'a', long = "annotation")]
    annotations: Vec<String>,
    /// Config file and media type, FILE[:MEDIATYPE].
    #[arg(long)]
    config: Option<String>,
    /// Output format.
    #[arg(long, value_parser = ["text", "json"], default_value = "text")]
    format: String,
    #[command(flatten)]
    target: TargetFlags,
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
}

/// A local file to send.
struct LocalFile {
    path: PathBuf,
    spec: pb::FileSpec,
}

/// Splits `FILE[:MEDIATYPE]`: the part after the last ':' is a media type
/// only if it looks like one (has a '/').
fn split_operand(operand: &str) -> (&str, Option<&str>) {
    match operand.rsplit_once(':') {
        Some((file, mt)) if mt.contains('/') && !file.is_empty() => (file, Some(mt)),
        _ => (operand, None),
    }
}

/// Stats each file, and hashes those below [`HASH_FIRST_BELOW`] (all with
/// `hash_first`).
async fn prepare_files(operands: &[String], hash_first: bool) -> anyhow::Result<Vec<LocalFile>> {
    let mut out = Vec::new();
    for operand in operands {
        let (file, media_type) = split_operand(operand);
        let path = PathBuf::from(file);
        let meta = tokio::fs::metadata(&path)
            .await
            .with_context(|| format!("cannot read {file}"))?;
        if !meta.is_file() {
            bail!("{file} is not a regular file");
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{file} has no usable file name"))?
            .to_string();
        let (digest, size) = if hash_first || meta.len() < HASH_FIRST_BELOW {
            hash_file(&path).await?
        } else {
            (String::new(), meta.len())
        };
        out.push(LocalFile {
            path,
            spec: pb::FileSpec {
                name,
                media_type: media_type.unwrap_or_default().to_string(),
                size: Some(size),
                digest,
                annotations: HashMap::new(),
                from_content_store: false,
            },
        });
    }
    Ok(out)
}

async fn hash_file(path: &PathBuf) -> anyhow::Result<(String, u64)> {
    let mut f = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((format!("sha256:{}", hex::encode(hasher.finalize())), size))
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

/// The file chunks, file after file, read as they are sent.
fn chunks(files: Vec<LocalFile>) -> impl Stream<Item = pb::FileChunk> {
    async_stream::stream! {
        for (index, file) in files.into_iter().enumerate() {
            let mut f = match tokio::fs::File::open(&file.path).await {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("Error: cannot open {}: {e}", file.path.display());
                    return;
                }
            };
            loop {
                let mut buf = vec![0u8; satchel_proto::MAX_CHUNK];
                let mut filled = 0;
                // Fill whole chunks: fewer, larger messages.
                while filled < buf.len() {
                    match f.read(&mut buf[filled..]).await {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) => {
                            eprintln!("Error: cannot read {}: {e}", file.path.display());
                            return;
                        }
                    }
                }
                if filled == 0 {
                    break;
                }
                buf.truncate(filled);
                yield pb::FileChunk { file_index: index as u32, data: buf.into() };
            }
        }
    }
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
        files: local.iter().map(|f| f.spec.clone()).collect(),
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
    let header = pb::PushRequest {
        payload: Some(pb::push_request::Payload::Header(pb::PushHeader {
            target: Some(target),
            artifact: Some(spec),
        })),
    };
    let body = futures::stream::once(async { header }).chain(futures::StreamExt::map(
        chunks(local),
        |c| pb::PushRequest {
            payload: Some(pb::push_request::Payload::Chunk(c)),
        },
    ));
    let events = client.push(body).await?.into_inner();
    let resp = follow(events, quiet || args.flags.format == "json").await?;
    report("Pushed", &resp, &args.flags.format)
}

/// Shows progress events until the result arrives.
async fn follow(
    mut events: impl futures::Stream<Item = Result<pb::PushResponse, tonic::Status>> + Unpin,
    quiet: bool,
) -> anyhow::Result<pb::PushResult> {
    let mut progress = crate::progress::Progress::new(quiet);
    let result = loop {
        match events.next().await {
            Some(Ok(pb::PushResponse {
                event: Some(pb::push_response::Event::Progress(p)),
            })) => progress.update(&p.name, p.done, p.total),
            Some(Ok(pb::PushResponse {
                event: Some(pb::push_response::Event::Result(r)),
            })) => break Ok(r),
            Some(Ok(_)) => {}
            Some(Err(e)) => break Err(e.into()),
            None => {
                break Err(anyhow::anyhow!(
                    "the daemon ended the push without a result"
                ))
            }
        }
    };
    progress.finish();
    result
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
    let subject = target::parse(&args.reference, &args.flags.target)?;
    let (spec, local) = artifact(&args.files, args.artifact_type, &args.flags, vec![]).await?;
    let mut client = addr.connect().await?;
    let header = pb::AttachRequest {
        payload: Some(pb::attach_request::Payload::Header(pb::AttachHeader {
            subject: Some(subject),
            artifact: Some(spec),
        })),
    };
    let body = futures::stream::once(async { header }).chain(futures::StreamExt::map(
        chunks(local),
        |c| pb::AttachRequest {
            payload: Some(pb::attach_request::Payload::Chunk(c)),
        },
    ));
    let events = client
        .attach(body)
        .await?
        .into_inner()
        .map(|e| e.map(pb::PushResponse::from));
    let resp = follow(events, quiet || args.flags.format == "json").await?;
    report("Attached to", &resp, &args.flags.format)
}

use futures::StreamExt as _;

fn report(verb: &str, resp: &pb::PushResult, format: &str) -> anyhow::Result<()> {
    let manifest = resp.manifest.clone().unwrap_or_default();
    for warning in &resp.warnings {
        eprintln!("Warning: {warning}");
    }
    if format == "json" {
        let out = serde_json::json!({
            "reference": resp.reference,
            "mediaType": manifest.media_type,
            "digest": manifest.digest,
            "size": manifest.size,
            "artifactType": manifest.artifact_type,
            "annotations": manifest.annotations,
            "tags": resp.tags,
            "blobsSkipped": resp.blobs_skipped,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    for layer in &resp.layers {
        let name = layer
            .annotations
            .get("org.opencontainers.image.title")
            .cloned()
            .unwrap_or_default();
        println!("Uploaded  {name} ({} bytes) {}", layer.size, layer.digest);
    }
    match (&resp.subject, verb) {
        (Some(subject), "Attached to") => {
            let subject_ref = resp
                .reference
                .split_once('@')
                .map(|(name, _)| format!("{name}@{}", subject.digest))
                .unwrap_or_else(|| subject.digest.clone());
            println!("{verb} {subject_ref}");
        }
        _ => println!("{verb} {}", resp.reference),
    }
    println!("ArtifactType: {}", manifest.artifact_type);
    println!("Digest: {}", manifest.digest);
    Ok(())
}

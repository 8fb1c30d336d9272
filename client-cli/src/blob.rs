//! `satchel blob upload` and `satchel blob download`: the daemon's content
//! store, resumable by ref. A download is written under a random temporary
//! name beside `-o` (created exclusively, never through a link) and renamed
//! over it once complete, so a link at `-o` is replaced, not written through.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use futures::StreamExt;
use satchel_client::pb;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::show::esc;
use crate::TargetFlags;

/// Blob commands.
#[derive(Subcommand, Debug)]
pub enum BlobCommand {
    /// Upload a file into the daemon's content store; rerun to resume.
    Upload(UploadArgs),
    /// Download a blob (or a range of it) from the content store, fetching
    /// it from --from first if the store lacks it.
    Download(DownloadArgs),
}

/// `satchel blob upload`.
#[derive(Args, Debug)]
pub struct UploadArgs {
    /// The file.
    file: PathBuf,
    /// The upload's ref; by default derived from the file's path, size and
    /// modification time, so a rerun resumes.
    #[arg(long = "ref")]
    reference: Option<String>,
    /// Send at most this many bytes per second.
    #[arg(long)]
    limit_rate: Option<u64>,
}

/// `satchel blob download`.
#[derive(Args, Debug)]
pub struct DownloadArgs {
    /// The blob's digest.
    digest: String,
    /// Where to write it.
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// The blob's size (needed with --from).
    #[arg(long, default_value_t = 0)]
    size: u64,
    /// A registry repository or layout to fetch the blob from.
    #[arg(long = "from")]
    from: Option<String>,
    /// The first byte to download.
    #[arg(long, default_value_t = 0)]
    offset: u64,
    /// How many bytes; 0 means to the end.
    #[arg(long, default_value_t = 0)]
    length: u64,
    #[command(flatten)]
    target: TargetFlags,
}

/// Runs a blob command.
pub async fn run(
    addr: &satchel_client::Daemon,
    command: BlobCommand,
    quiet: bool,
) -> anyhow::Result<()> {
    let mut progress = crate::progress::Progress::new(quiet);
    let result = match command {
        BlobCommand::Upload(args) => upload(addr, args, &mut progress).await,
        BlobCommand::Download(args) => download(addr, args, &mut progress).await,
    };
    progress.finish();
    result
}

async fn upload(
    addr: &satchel_client::Daemon,
    args: UploadArgs,
    progress: &mut crate::progress::Progress,
) -> anyhow::Result<()> {
    let path = std::path::absolute(&args.file)?;
    let meta = tokio::fs::metadata(&path)
        .await
        .with_context(|| format!("cannot read {}", path.display()))?;
    let reference = args.reference.clone().unwrap_or_else(|| {
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let key = format!("{}\n{}\n{mtime}", path.display(), meta.len());
        format!("file-{}", hex::encode(Sha256::digest(key.as_bytes())))
    });
    let size = meta.len();
    // Hash first: the daemon commits only if the bytes match.
    let (digest, _) = satchel_client::sha256_file(&path).await?;
    let mut file = tokio::fs::File::open(&path).await?;

    let mut client = addr.connect().await?;
    let status = client
        .upload_status(pb::UploadStatusRequest {
            r#ref: reference.clone(),
        })
        .await?
        .into_inner();
    let start = if status.exists { status.offset } else { 0 };
    if start > size {
        bail!(
            "the upload {reference} holds more bytes than {} has",
            path.display()
        );
    }
    if start > 0 {
        eprintln!("Resuming {} at byte {start}", esc(&reference));
    }
    file.seek(std::io::SeekFrom::Start(start)).await?;
    let rate = args.limit_rate;
    let reference_shown = reference.clone();
    let messages = async_stream::stream! {
        let mut offset = start;
        let begun = std::time::Instant::now();
        loop {
            let mut chunk = vec![0u8; satchel_proto::MAX_CHUNK];
            let n = match file.read(&mut chunk).await {
                Ok(n) => n,
                Err(e) => {
                    let what = format!("cannot read {}: {e}", path.display());
                    eprintln!("Error: {}", esc(&what));
                    return;
                }
            };
            chunk.truncate(n);
            let last = offset + n as u64 >= size;
            yield pb::UploadBlobRequest {
                r#ref: reference.clone(),
                offset,
                data: chunk.into(),
                commit: last,
                expected_digest: if last { digest.clone() } else { String::new() },
                expected_size: last.then_some(size),
            };
            offset += n as u64;
            if last {
                return;
            }
            if let Some(rate) = rate {
                let due = std::time::Duration::from_secs_f64((offset - start) as f64 / rate.max(1) as f64);
                if let Some(wait) = due.checked_sub(begun.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
        }
    };
    let mut acks = client.upload_blob(messages).await?.into_inner();
    let mut last = None;
    while let Some(ack) = acks.next().await {
        let ack = ack?;
        progress.update(&reference_shown, ack.offset, size);
        last = Some(ack);
    }
    match last {
        Some(resp) if resp.committed => {
            println!("Uploaded {} ({} bytes)", esc(&resp.digest), resp.offset);
            Ok(())
        }
        Some(resp) => bail!(
            "the upload stopped at byte {} without a commit",
            resp.offset
        ),
        None => bail!("the daemon acknowledged nothing"),
    }
}

async fn download(
    addr: &satchel_client::Daemon,
    args: DownloadArgs,
    progress: &mut crate::progress::Progress,
) -> anyhow::Result<()> {
    let source = args
        .from
        .as_deref()
        .map(|r| crate::target::parse(r, &args.target))
        .transpose()?;
    let mut client = addr.connect().await?;
    let mut stream = client
        .download_blob(pb::DownloadBlobRequest {
            digest: args.digest.clone(),
            size: args.size,
            source,
            offset: args.offset,
            length: args.length,
        })
        .await?
        .into_inner();
    let dir = args
        .output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
        .to_path_buf();
    let name = args
        .output
        .file_name()
        .context("the output needs a file name")?
        .to_string_lossy()
        .into_owned();
    let (placement, file) = tokio::task::spawn_blocking(move || {
        satchel_client::write::OutDir::open(&dir)?.create(&name)
    })
    .await??;
    let result: anyhow::Result<u64> = async {
        let mut out = tokio::fs::File::from_std(file);
        let mut hasher = Sha256::new();
        let mut written = 0u64;
        while let Some(msg) = stream.next().await {
            let msg = msg?;
            let data = msg.data;
            progress.update(&args.digest, msg.offset + data.len() as u64, args.size);
            hasher.update(&data);
            out.write_all(&data).await?;
            written += data.len() as u64;
        }
        out.sync_data().await?;
        let whole = args.offset == 0 && args.length == 0;
        if whole && args.digest.starts_with("sha256:") {
            let got = format!("sha256:{}", hex::encode(hasher.finalize()));
            if got != args.digest {
                bail!("the download has digest {got}, not {}", args.digest);
            }
        }
        Ok(written)
    }
    .await;
    match result {
        Ok(written) => {
            tokio::task::spawn_blocking(move || placement.commit()).await??;
            let to = args.output.display().to_string();
            println!(
                "Downloaded {} ({written} bytes) to {}",
                esc(&args.digest),
                esc(&to)
            );
            Ok(())
        }
        Err(e) => {
            tokio::task::spawn_blocking(move || placement.discard()).await?;
            Err(e)
        }
    }
}

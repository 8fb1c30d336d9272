//! `satchel blob upload` and `satchel blob download` (fetch, push and
//! delete are in `raw.rs`): flags to
//! [`satchel_client::blob::upload`] and [`satchel_client::blob::download`]
//! (the daemon's content store, resumable by ref), results to output.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use satchel_client::blob::{BlobEvent, UploadOptions};
use satchel_client::pb;

use crate::progress::Progress;
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
    /// Fetch a blob of a repository or layout: satchel blob fetch -o FILE REF@DIGEST
    Fetch(crate::raw::BlobFetchArgs),
    /// Push a file as a blob: satchel blob push REF[@DIGEST] FILE
    Push(crate::raw::BlobPushArgs),
    /// Delete a blob: satchel blob delete REF@DIGEST
    Delete(crate::raw::BlobDeleteArgs),
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
    let mut progress = Progress::new(quiet);
    let result = match command {
        BlobCommand::Upload(args) => upload(addr, args, &mut progress).await,
        BlobCommand::Download(args) => download(addr, args, &mut progress).await,
        BlobCommand::Fetch(args) => crate::raw::blob_fetch(addr, args).await,
        BlobCommand::Push(args) => crate::raw::blob_push(addr, args).await,
        BlobCommand::Delete(args) => crate::raw::blob_delete(addr, args).await,
    };
    progress.finish();
    result
}

async fn upload(
    addr: &satchel_client::Daemon,
    args: UploadArgs,
    progress: &mut Progress,
) -> anyhow::Result<()> {
    let mut client = addr.connect().await?;
    let options = UploadOptions {
        reference: args.reference,
        limit_rate: args.limit_rate,
    };
    let shown = args.file.display().to_string();
    let uploaded =
        satchel_client::blob::upload(&mut client, &args.file, options, |event| match event {
            BlobEvent::Resuming { reference, offset } => {
                eprintln!("Resuming {} at byte {offset}", esc(&reference))
            }
            BlobEvent::Progress { done, total } => progress.update(&shown, done, total),
        })
        .await?;
    println!(
        "Uploaded {} ({} bytes)",
        esc(&uploaded.digest),
        uploaded.size
    );
    Ok(())
}

async fn download(
    addr: &satchel_client::Daemon,
    args: DownloadArgs,
    progress: &mut Progress,
) -> anyhow::Result<()> {
    let source = args
        .from
        .as_deref()
        .map(|r| crate::target::parse(r, &args.target))
        .transpose()?;
    let mut client = addr.connect().await?;
    let request = pb::DownloadBlobRequest {
        digest: args.digest.clone(),
        size: args.size,
        source,
        offset: args.offset,
        length: args.length,
    };
    let written = satchel_client::blob::download(&mut client, request, &args.output, |event| {
        if let BlobEvent::Progress { done, total } = event {
            progress.update(&args.digest, done, total)
        }
    })
    .await?;
    let to = args.output.display().to_string();
    println!(
        "Downloaded {} ({written} bytes) to {}",
        esc(&args.digest),
        esc(&to)
    );
    Ok(())
}

//! `satchel`: an ORAS-shaped command line for satcheld.
//!
//! Every command is one RPC; this binary parses flags, reads or writes local
//! files, and formats output. It never talks to a registry itself.

mod discover;
mod pull;
mod push;
mod target;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// satchel: push, attach, discover, pull and resolve OCI artifacts through satcheld.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// The daemon address: unix:///path/to.sock or http://host:port.
    /// Defaults to $SATCHEL_ADDR, else the daemon's default socket.
    #[arg(long, global = true)]
    addr: Option<String>,

    #[command(subcommand)]
    command: Command,
}

/// Options that say where the reference points.
#[derive(Args, Debug, Clone)]
pub struct TargetFlags {
    /// Talk plain HTTP to the registry instead of HTTPS.
    #[arg(long)]
    pub plain_http: bool,
    /// The reference is an OCI image layout: DIR, DIR:TAG or DIR@DIGEST.
    #[arg(long)]
    pub oci_layout: bool,
    /// Force how referrers are found and recorded: v1.1-referrers-api or
    /// v1.1-referrers-tag (default: detect).
    #[arg(long, value_parser = ["v1.1-referrers-api", "v1.1-referrers-tag"])]
    pub distribution_spec: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Push files as an artifact: satchel push REF FILE[:MEDIATYPE]...
    Push(push::PushArgs),
    /// Attach files to a subject: satchel attach --artifact-type T REF FILE[:MEDIATYPE]...
    Attach(push::AttachArgs),
    /// List the referrers of a subject.
    Discover(discover::DiscoverArgs),
    /// Pull an artifact's files into a directory.
    Pull(pull::PullArgs),
    /// Print the digest a reference resolves to.
    Resolve(ResolveArgs),
    /// Manifest operations.
    #[command(subcommand)]
    Manifest(ManifestCommand),
}

#[derive(Subcommand, Debug)]
enum ManifestCommand {
    /// Delete a manifest; a referrer is also taken out of its subject's
    /// referrers index.
    Delete(DeleteArgs),
}

#[derive(Args, Debug)]
struct DeleteArgs {
    /// The manifest, by digest or tag.
    reference: String,
    #[command(flatten)]
    target: TargetFlags,
}

#[derive(Args, Debug)]
struct ResolveArgs {
    /// The reference to resolve.
    reference: String,
    #[command(flatten)]
    target: TargetFlags,
    /// Print the full reference with the digest.
    #[arg(short = 'l', long)]
    full_reference: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let addr = cli.addr.unwrap_or_else(satchel_client::default_addr);
    match cli.command {
        Command::Push(args) => push::push(&addr, args).await,
        Command::Attach(args) => push::attach(&addr, args).await,
        Command::Discover(args) => discover::discover(&addr, args).await,
        Command::Pull(args) => pull::pull(&addr, args).await,
        Command::Resolve(args) => {
            let target = target::parse(&args.reference, &args.target)?;
            let mut client = satchel_client::connect(&addr).await?;
            let resp = client
                .resolve(satchel_client::pb::ResolveRequest {
                    target: Some(target),
                })
                .await?
                .into_inner();
            if args.full_reference {
                println!("{}", resp.reference);
            } else {
                println!("{}", resp.descriptor.unwrap_or_default().digest);
            }
            Ok(())
        }
        Command::Manifest(ManifestCommand::Delete(args)) => {
            let target = target::parse(&args.reference, &args.target)?;
            let mut client = satchel_client::connect(&addr).await?;
            let resp = client
                .delete_manifest(satchel_client::pb::DeleteManifestRequest {
                    target: Some(target),
                })
                .await?
                .into_inner();
            for warning in &resp.warnings {
                eprintln!("Warning: {warning}");
            }
            println!("Deleted {}", resp.reference);
            Ok(())
        }
    }
}

/// Renders an error as one line: a gRPC status as its message and code,
/// anything else as its context chain.
fn one_line(err: &anyhow::Error) -> String {
    if let Some(status) = err.downcast_ref::<tonic::Status>() {
        let code = format!("{:?}", status.code());
        return format!("{} ({})", status.message().replace('\n', " "), snake(&code));
    }
    format!("{err:#}").replace('\n', " ")
}

fn snake(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

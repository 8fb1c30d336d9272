//! `satchel`: an ORAS-shaped command line for satcheld.
//!
//! Every command is one RPC; this binary parses flags, reads or writes local
//! files, and formats output. It never talks to a registry itself.

mod blob;
mod commands;
mod copy;
mod discover;
mod format;
mod manifests;
mod progress;
mod pull;
mod push;
mod raw;
mod show;
mod target;
mod verify;
mod watch;

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

/// satchel: push, attach, discover, pull and resolve OCI artifacts through satcheld.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// The daemon address: unix:///path/to.sock, http://host:port or
    /// https://host:port. Defaults to $SATCHEL_ADDR, else the daemon's
    /// default socket.
    #[arg(long, global = true)]
    addr: Option<String>,

    /// Show no progress.
    #[arg(short, long, global = true)]
    quiet: bool,

    /// A file holding the bearer token the daemon requires.
    #[arg(long, global = true, env = "SATCHEL_TOKEN_FILE")]
    token_file: Option<std::path::PathBuf>,

    /// Extra CA certificates (PEM) to trust for an https:// daemon.
    #[arg(long, global = true, env = "SATCHEL_TLS_CA")]
    tls_ca: Option<std::path::PathBuf>,

    /// Client certificate (PEM) for a daemon that requires mTLS.
    #[arg(long, global = true, requires = "tls_key", env = "SATCHEL_TLS_CERT")]
    tls_cert: Option<std::path::PathBuf>,

    /// Client key (PEM) for a daemon that requires mTLS.
    #[arg(long, global = true, requires = "tls_cert", env = "SATCHEL_TLS_KEY")]
    tls_key: Option<std::path::PathBuf>,

    /// Give up after this long (e.g. 30s, 5m, 500ms; a bare number is
    /// seconds): the daemon is told the deadline and stops too. Without it,
    /// satchel waits as long as the daemon works (the daemon itself gives up
    /// on a registry that makes no progress).
    #[arg(long, global = true, env = "SATCHEL_TIMEOUT", value_parser = parse_duration)]
    timeout: Option<std::time::Duration>,

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

/// `--platform`, on the commands that read a manifest the ORAS CLI lets
/// pick from an index.
#[derive(Args, Debug, Clone, Default)]
pub struct PlatformFlag {
    /// Pick the manifest of this platform when the reference names an
    /// index: os[/arch[/variant]][:os_version].
    #[arg(long)]
    pub platform: Option<String>,
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
    Resolve(commands::ResolveArgs),
    /// Check that an artifact is signed (cosign) by a trusted key:
    /// satchel verify --key cosign.pub REF
    Verify(verify::VerifyArgs),
    /// Manifest operations: fetch, fetch-config, push, delete.
    #[command(subcommand)]
    Manifest(commands::ManifestCommand),
    /// Repository operations: tags, ls.
    #[command(subcommand)]
    Repo(manifests::RepoCommand),
    /// Add tags to a manifest: satchel tag REF TAG...
    Tag(manifests::TagArgs),
    /// Copy an artifact, and with -r its referrers, between registries and
    /// OCI layouts: satchel cp SRC DST[:TAG[,TAG...]]
    #[command(alias = "copy")]
    Cp(copy::CopyArgs),
    /// Back up artifacts of a repository into an OCI layout (a directory or
    /// a .tar): satchel backup -o PATH REG/REPO[:TAG[,TAG...]]
    Backup(copy::BackupArgs),
    /// Restore artifacts from a backup: satchel restore --input PATH REG/REPO[:TAG...]
    Restore(copy::RestoreArgs),
    /// Log in to a registry: satcheld checks and stores the credentials.
    Login(commands::LoginArgs),
    /// Forget a registry's stored credentials.
    Logout(commands::LogoutArgs),
    /// List the registries satcheld has credentials for (never secrets).
    Credentials,
    /// Blobs: fetch, push and delete in a repository or layout; resumable
    /// upload and ranged download through the daemon's content store.
    #[command(subcommand)]
    Blob(blob::BlobCommand),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.timeout {
        Some(limit) => tokio::time::timeout(limit, run(cli))
            .await
            .unwrap_or_else(|_| {
                Err(satchel_client::Error::local(
                    tonic::Code::DeadlineExceeded,
                    format!("gave up after {limit:?} (--timeout)"),
                )
                .into())
            }),
        None => run(cli).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {}", show::esc(&one_line(&e)));
            ExitCode::FAILURE
        }
    }
}

/// The daemon the flags name, with the TLS material and token they point
/// at read in.
fn daemon(cli: &Cli) -> anyhow::Result<satchel_client::Daemon> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))
    };
    let token = match &cli.token_file {
        Some(p) => Some(
            String::from_utf8(read(p)?)
                .with_context(|| format!("{} is not text", p.display()))?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    let identity_pem = match (&cli.tls_cert, &cli.tls_key) {
        (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
        _ => None,
    };
    Ok(satchel_client::Daemon {
        // satchel_client reads "" as $SATCHEL_ADDR, else the default socket.
        addr: cli.addr.clone().unwrap_or_default(),
        options: satchel_client::ConnectOptions {
            tls_ca_pem: cli.tls_ca.as_deref().map(read).transpose()?,
            identity_pem,
            token,
            timeout: cli.timeout,
        },
    })
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let addr = &daemon(&cli)?;
    match cli.command {
        Command::Push(args) => push::push(addr, args, cli.quiet).await,
        Command::Attach(args) => push::attach(addr, args, cli.quiet).await,
        Command::Discover(args) => discover::discover(addr, args).await,
        Command::Pull(args) => pull::pull(addr, args, cli.quiet).await,
        Command::Blob(command) => blob::run(addr, command, cli.quiet).await,
        Command::Resolve(args) => commands::resolve(addr, args).await,
        Command::Verify(args) => verify::verify(addr, args).await,
        Command::Manifest(commands::ManifestCommand::Delete(args)) => {
            commands::delete_manifest(addr, args).await
        }
        Command::Manifest(commands::ManifestCommand::Fetch(args)) => {
            manifests::fetch(addr, args).await
        }
        Command::Manifest(commands::ManifestCommand::FetchConfig(args)) => {
            raw::fetch_config(addr, args).await
        }
        Command::Manifest(commands::ManifestCommand::Push(args)) => {
            raw::manifest_push(addr, args).await
        }
        Command::Repo(manifests::RepoCommand::Tags(args)) => manifests::tags(addr, args).await,
        Command::Repo(manifests::RepoCommand::Ls(args)) => {
            manifests::repositories(addr, args).await
        }
        Command::Tag(args) => manifests::tag(addr, args).await,
        Command::Cp(args) => copy::copy(addr, args, cli.quiet).await,
        Command::Backup(args) => copy::backup(addr, args, cli.quiet).await,
        Command::Restore(args) => copy::restore(addr, args, cli.quiet).await,
        Command::Login(args) => commands::login(addr, args).await,
        Command::Logout(args) => commands::logout(addr, args).await,
        Command::Credentials => commands::credentials(addr).await,
    }
}

/// Renders an error as one line: a gRPC status, or a client error with
/// the code it maps to, as its message and code; anything else as its
/// context chain.
fn one_line(err: &anyhow::Error) -> String {
    let (message, code) = if let Some(status) = err.downcast_ref::<tonic::Status>() {
        (
            status.message().to_string(),
            satchel_client::status_code(status),
        )
    } else if let Some(e) = err.downcast_ref::<satchel_client::Error>() {
        (e.to_string(), e.code())
    } else {
        return format!("{err:#}").replace('\n', " ");
    };
    let code = satchel_client::code_name(code);
    format!("{} ({code})", message.replace('\n', " "))
}

/// `30s`, `5m`, `500ms`, `1h` or a bare number of seconds.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 30s, 5m or 500ms"))?;
    let seconds = match unit {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {text:?}: use ms, s, m or h"
            ))
        }
    };
    if !(seconds.is_finite() && seconds > 0.0 && seconds < 1e9) {
        return Err(format!("{text:?} is not a positive duration"));
    }
    Ok(std::time::Duration::from_secs_f64(seconds))
}

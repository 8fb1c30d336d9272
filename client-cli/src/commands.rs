//! The one-call commands: `resolve`, `manifest delete`, `login`, `logout`
//! and `credentials`, each flags to one RPC and its answer to output.

use anyhow::Context as _;
use clap::{Args, Subcommand};
use satchel_client::pb;

use crate::show::esc;
use crate::{target, TargetFlags};

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// The registry, host[:port].
    registry: String,
    /// The user name; leave out to log in with an identity token.
    #[arg(short, long)]
    username: Option<String>,
    /// Read the password (or identity token) from standard input.
    #[arg(long, required = true)]
    password_stdin: bool,
    /// Check the credentials over plain HTTP.
    #[arg(long)]
    plain_http: bool,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// The registry, host[:port].
    registry: String,
}

#[derive(Subcommand, Debug)]
pub enum ManifestCommand {
    /// Delete a manifest; a referrer is also taken out of its subject's
    /// referrers index.
    Delete(DeleteArgs),
    /// Print a manifest (its exact bytes), or its descriptor.
    Fetch(crate::manifests::FetchArgs),
    /// Print an image manifest's config, or write it to a file.
    FetchConfig(crate::raw::FetchConfigArgs),
    /// Store a manifest given as a file: satchel manifest push REF[:TAGS] FILE|-
    Push(crate::raw::ManifestPushArgs),
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// The manifest, by digest or tag.
    reference: String,
    /// Delete without asking (satchel asks only on a terminal).
    #[arg(short, long)]
    force: bool,
    #[command(flatten)]
    target: TargetFlags,
}

#[derive(Args, Debug)]
pub struct ResolveArgs {
    /// The reference to resolve.
    reference: String,
    #[command(flatten)]
    target: TargetFlags,
    /// Print the full reference with the digest.
    #[arg(short = 'l', long)]
    full_reference: bool,
    #[command(flatten)]
    platform: crate::PlatformFlag,
}

/// Runs `satchel resolve`.
pub async fn resolve(addr: &satchel_client::Daemon, args: ResolveArgs) -> anyhow::Result<()> {
    let target = target::parse_for(&args.reference, &args.target, &args.platform)?;
    let mut client = addr.connect().await?;
    let resp = client
        .resolve(pb::ResolveRequest {
            target: Some(target),
        })
        .await?
        .into_inner();
    if args.full_reference {
        println!("{}", esc(&resp.reference));
    } else {
        println!("{}", esc(&resp.manifest.unwrap_or_default().digest));
    }
    Ok(())
}

/// Runs `satchel manifest delete`.
pub async fn delete_manifest(
    addr: &satchel_client::Daemon,
    args: DeleteArgs,
) -> anyhow::Result<()> {
    let question = format!(
        "Are you sure you want to delete the manifest {:?} and all tags associated with it?",
        args.reference
    );
    if !args.force && !crate::raw::confirmed(&question)? {
        println!("Operation cancelled.");
        return Ok(());
    }
    let target = target::parse(&args.reference, &args.target)?;
    let mut client = addr.connect().await?;
    let resp = client
        .delete_manifest(pb::DeleteManifestRequest {
            target: Some(target),
        })
        .await?
        .into_inner();
    for warning in &resp.warnings {
        eprintln!("Warning: {}", esc(warning));
    }
    println!("Deleted {}", esc(&resp.reference));
    Ok(())
}

/// Runs `satchel login`: the password comes from standard input.
pub async fn login(addr: &satchel_client::Daemon, args: LoginArgs) -> anyhow::Result<()> {
    let mut password = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut password)
        .context("cannot read the password from standard input")?;
    let password = password.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        anyhow::bail!("no password on standard input");
    }
    let mut client = addr.connect().await?;
    let resp = client
        .login(pb::LoginRequest {
            registry: args.registry,
            username: args.username.unwrap_or_default(),
            password,
            plain_http: args.plain_http,
        })
        .await?
        .into_inner();
    println!(
        "Login Succeeded ({} on {}, stored in {})",
        esc(&resp.username),
        esc(&resp.registry),
        esc(&resp.stored_in)
    );
    Ok(())
}

/// Runs `satchel logout`.
pub async fn logout(addr: &satchel_client::Daemon, args: LogoutArgs) -> anyhow::Result<()> {
    let mut client = addr.connect().await?;
    let resp = client
        .logout(pb::LogoutRequest {
            registry: args.registry.clone(),
        })
        .await?
        .into_inner();
    if resp.removed {
        println!("Removed login credentials for {}", esc(&args.registry));
    } else {
        println!("Not logged in to {}", esc(&args.registry));
    }
    Ok(())
}

/// Runs `satchel credentials`.
pub async fn credentials(addr: &satchel_client::Daemon) -> anyhow::Result<()> {
    let mut client = addr.connect().await?;
    let resp = client
        .list_credentials(pb::ListCredentialsRequest {})
        .await?
        .into_inner();
    println!("{:<32}  {:<24}  Stored in", "Registry", "Username");
    for c in resp.credentials {
        println!(
            "{:<32}  {:<24}  {}",
            esc(&c.registry),
            esc(&c.username),
            esc(&c.source)
        );
    }
    Ok(())
}

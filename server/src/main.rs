//! The `satcheld` binary: flags, logging, signals; everything else is in the
//! library.

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// satcheld: push, attach, discover and pull OCI artifacts over gRPC.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Where to listen: unix:///path/to.sock or HOST:PORT. Defaults to
    /// $XDG_RUNTIME_DIR/satchel/satcheld.sock.
    #[arg(long, env = "SATCHELD_LISTEN")]
    listen: Option<String>,

    /// Allow a plain TCP listener on a non-loopback address.
    #[arg(long)]
    insecure_listen: bool,

    /// Docker config.json with registry credentials. Defaults to
    /// $DOCKER_CONFIG/config.json, else ~/.docker/config.json.
    #[arg(long, env = "SATCHELD_DOCKER_CONFIG")]
    docker_config: Option<std::path::PathBuf>,

    /// A TOML configuration file (see satcheld::config).
    #[arg(long, env = "SATCHELD_CONFIG")]
    config: Option<std::path::PathBuf>,

    /// Log format.
    #[arg(long, value_parser = ["text", "json"], default_value = "text")]
    log_format: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = EnvFilter::try_from_env("SATCHELD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if args.log_format == "json" {
        logs.json().init();
    } else {
        logs.init();
    }

    let addr = args
        .listen
        .unwrap_or_else(|| format!("unix://{}", satchel_proto::default_socket_path().display()));
    let listener = satcheld::listener::bind(&addr, args.insecure_listen).await?;
    let mut config = match &args.config {
        Some(path) => satcheld::Config::load(path)?,
        None => satcheld::Config::default(),
    };
    config.docker_config = args
        .docker_config
        .or(config.docker_config)
        .or_else(satcheld::credentials::default_docker_config);
    satcheld::run(listener, config, shutdown_signal()).await
}

/// Resolves on the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}

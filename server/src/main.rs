//! The `satcheld` binary: flags, logging, signals; everything else is in the
//! library.

use anyhow::Context as _;
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

    /// Allow a TCP listener on a non-loopback address without TLS and caller
    /// authentication.
    #[arg(long)]
    insecure_listen: bool,

    /// Open the Unix socket to this group (mode 0660 instead of 0600).
    #[arg(long)]
    socket_group: Option<String>,

    /// TLS certificate chain (PEM) for a TCP listener.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,

    /// TLS private key (PEM) for a TCP listener.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,

    /// Require client certificates signed by this CA (PEM): mTLS.
    #[arg(long, requires = "tls_cert")]
    tls_client_ca: Option<std::path::PathBuf>,

    /// Require callers to send this file's content as a bearer token.
    #[arg(long, env = "SATCHELD_AUTH_TOKEN_FILE")]
    auth_token_file: Option<std::path::PathBuf>,

    /// Docker config.json with registry credentials. Defaults to
    /// $DOCKER_CONFIG/config.json, else ~/.docker/config.json.
    #[arg(long, env = "SATCHELD_DOCKER_CONFIG")]
    docker_config: Option<std::path::PathBuf>,

    /// A TOML configuration file (see satcheld::config).
    #[arg(long, env = "SATCHELD_CONFIG")]
    config: Option<std::path::PathBuf>,

    /// The content cache directory (default ~/.cache/satchel/content).
    #[arg(long, env = "SATCHELD_CACHE_DIR")]
    cache_dir: Option<std::path::PathBuf>,

    /// The content cache's size bound in bytes (default 10 GiB).
    #[arg(long)]
    cache_max_bytes: Option<u64>,

    /// How many blobs one pull moves at once (default 4).
    #[arg(long)]
    concurrency: Option<usize>,

    /// Where the daemon keeps what survives a restart: the journal of the
    /// referrers it wrote (default ~/.local/state/satchel).
    #[arg(long, env = "SATCHELD_STATE_DIR")]
    state_dir: Option<std::path::PathBuf>,

    /// Serve Prometheus metrics at http://ADDR/metrics (e.g.
    /// 127.0.0.1:9464); off by default. Plain HTTP: bind it where only the
    /// scraper reaches.
    #[arg(long, env = "SATCHELD_METRICS_LISTEN")]
    metrics_listen: Option<std::net::SocketAddr>,

    /// The trust policy: a TOML file naming the public keys that must have
    /// signed artifacts, per repository scope and artifact type. Read again
    /// whenever it or a key changes.
    #[arg(long, env = "SATCHELD_VERIFY_POLICY")]
    verify_policy: Option<std::path::PathBuf>,

    /// Serve grpc.health.v1 alone, in plain text, on ADDR (e.g.
    /// 0.0.0.0:8081): for probes that cannot do TLS or tokens, such as
    /// Kubernetes's grpc probes. Off by default.
    #[arg(long, env = "SATCHELD_HEALTH_LISTEN")]
    health_listen: Option<std::net::SocketAddr>,

    /// Run without the content cache.
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,

    /// Log format.
    #[arg(long, value_parser = ["text", "json"], default_value = "text")]
    log_format: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Handlers go in before the socket exists, so a SIGTERM sent as soon as
    // the daemon is reachable still shuts it down cleanly.
    let shutdown = shutdown_signal()?;
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
        .clone()
        .unwrap_or_else(|| format!("unix://{}", satchel_proto::default_socket_path().display()));
    let mut config = match &args.config {
        Some(path) => satcheld::Config::load(path)?,
        None => satcheld::Config::default(),
    };
    let read = |p: &std::path::Path| {
        std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))
    };
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        config.tls = Some(satcheld::config::ServerTls {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
            client_ca_pem: args.tls_client_ca.as_deref().map(read).transpose()?,
        });
    }
    if let Some(path) = &args.auth_token_file {
        let token = String::from_utf8(read(path)?)
            .with_context(|| format!("{} is not text", path.display()))?;
        let token = token.trim();
        anyhow::ensure!(!token.is_empty(), "{} is empty", path.display());
        config.auth_token = Some(satchel_oci::auth::Secret::new(token));
    }
    apply_local_flags(&args, &mut config);
    let guarded = config.tls.is_some()
        && (config.auth_token.is_some()
            || config
                .tls
                .as_ref()
                .is_some_and(|t| t.client_ca_pem.is_some()));
    let listener = satcheld::listener::bind(
        &addr,
        satcheld::listener::Options {
            allow_unguarded_tcp: guarded || args.insecure_listen,
            socket_group: args.socket_group.clone(),
        },
    )
    .await?;
    config.docker_config = args
        .docker_config
        .or(config.docker_config)
        .or_else(satcheld::credentials::default_docker_config);
    satcheld::run(listener, config, shutdown).await
}

/// The flags about the daemon's own files and listeners, over the config
/// file's settings: cache, state, concurrency, metrics and health.
fn apply_local_flags(args: &Args, config: &mut satcheld::Config) {
    if args.no_cache {
        config.cache = None;
    } else {
        let dir = args
            .cache_dir
            .clone()
            .or(config.cache.as_ref().map(|(d, _)| d.clone()))
            .or_else(satcheld::config::default_cache_dir);
        let max = args
            .cache_max_bytes
            .or(config.cache.as_ref().map(|(_, m)| *m))
            .unwrap_or(satcheld::config::DEFAULT_CACHE_BYTES);
        config.cache = dir.map(|d| (d, max));
    }
    if args.concurrency.is_some() {
        config.concurrency = args.concurrency;
    }
    config.metrics_listen = args.metrics_listen.or(config.metrics_listen);
    config.health_listen = args.health_listen.or(config.health_listen);
    if args.verify_policy.is_some() {
        config.verify_policy.clone_from(&args.verify_policy);
    }
    config.state_dir = args
        .state_dir
        .clone()
        .or(config.state_dir.take())
        .or_else(satcheld::config::default_state_dir);
}

/// Installs SIGTERM and SIGINT handlers; the future resolves on the first.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
    })
}

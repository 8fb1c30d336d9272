//! Binding the daemon's listener: a Unix socket (mode 0600, the default) or
//! a TCP address. Only a stale socket at the Unix path is ever removed.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use tokio::net::{TcpListener, UnixListener};

/// A bound listener, ready for [`crate::run`].
pub enum Listener {
    /// A Unix socket; the guard removes the socket file when dropped. Beside
    /// it, the files socket of the local handoff ([`crate::handoff`]),
    /// unless it could not be bound.
    Unix(UnixListener, SocketGuard, Option<FilesSocket>),
    /// A TCP socket.
    Tcp(TcpListener),
}

impl Listener {
    /// The address in the form `--listen` and `--addr` take.
    pub fn describe(&self) -> String {
        match self {
            Listener::Unix(_, guard, _) => format!("unix://{}", guard.0.display()),
            Listener::Tcp(l) => l
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| "tcp".into()),
        }
    }
}

/// The files socket: the gRPC socket's path with `.files` appended, with
/// the same mode and group.
pub struct FilesSocket(pub UnixListener, pub SocketGuard);

/// Where the files socket of the gRPC socket at `path` is.
pub fn files_socket_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".files");
    PathBuf::from(name)
}

/// Removes a Unix socket file when the listener goes away.
pub struct SocketGuard(PathBuf);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// How to bind.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Whether a TCP listener on a non-loopback address may be bound: only
    /// when TLS and caller authentication guard it, or the operator said
    /// `--insecure-listen`.
    pub allow_unguarded_tcp: bool,
    /// Open the Unix socket to this group (mode 0660).
    pub socket_group: Option<String>,
}

/// Binds `addr`: `unix:///path/to.sock` or `HOST:PORT` (`tcp://` optional).
pub async fn bind(addr: &str, options: Options) -> anyhow::Result<Listener> {
    if let Some(path) = addr.strip_prefix("unix://") {
        return bind_unix(Path::new(path), options.socket_group.as_deref());
    }
    let allow_insecure = options.allow_unguarded_tcp;
    let hostport = addr.strip_prefix("tcp://").unwrap_or(addr);
    let sock: SocketAddr = tokio::net::lookup_host(hostport)
        .await
        .with_context(|| format!("cannot resolve listen address {addr:?}"))?
        .next()
        .with_context(|| format!("listen address {addr:?} resolves to nothing"))?;
    if !sock.ip().is_loopback() && !allow_insecure {
        bail!(
            "refusing to listen on {sock} without TLS and caller authentication (--tls-cert/--tls-key with --auth-token-file or --tls-client-ca); use a loopback address, a Unix socket, or --insecure-listen"
        );
    }
    let l = TcpListener::bind(sock)
        .await
        .with_context(|| format!("cannot listen on {sock}"))?;
    Ok(Listener::Tcp(l))
}

fn bind_unix(path: &Path, group: Option<&str>) -> anyhow::Result<Listener> {
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    let (listener, guard) = bind_socket(path, group)?;
    let files_path = files_socket_path(path);
    let files = match bind_socket(&files_path, group) {
        Ok((l, g)) => Some(FilesSocket(l, g)),
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "no local file handoff");
            None
        }
    };
    Ok(Listener::Unix(listener, guard, files))
}

/// Binds one Unix socket at `path`, open to its owner, or with `group` to
/// that group too.
fn bind_socket(path: &Path, group: Option<&str>) -> anyhow::Result<(UnixListener, SocketGuard)> {
    remove_stale_socket(path)?;
    let listener =
        UnixListener::bind(path).with_context(|| format!("cannot listen on {}", path.display()))?;
    let guard = SocketGuard(path.to_path_buf());
    match group {
        None => std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict {}", path.display()))?,
        Some(group) => {
            let gid = group_id(group)?;
            std::os::unix::fs::chown(path, None, Some(gid))
                .with_context(|| format!("cannot give {} to group {group}", path.display()))?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
                .with_context(|| format!("cannot set the mode of {}", path.display()))?;
        }
    }
    Ok((listener, guard))
}

/// Removes a socket left over from a crash (one nobody accepts on). Anything
/// else at `path` stays: a live socket belongs to another daemon, and a
/// regular file, directory or link is not ours to delete.
fn remove_stale_socket(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", path.display())),
    };
    if !meta.file_type().is_socket() {
        bail!(
            "{} exists and is not a socket; refusing to replace it (remove it or choose another --listen path)",
            path.display()
        );
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => bail!(
            "another satcheld is already listening on {}",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => std::fs::remove_file(path)
            .with_context(|| format!("cannot remove stale socket {}", path.display())),
        Err(e) => Err(e).with_context(|| {
            format!(
                "cannot tell whether the socket {} is in use; leaving it",
                path.display()
            )
        }),
    }
}

/// Looks a group up in /etc/group by name (or takes a numeric id).
fn group_id(group: &str) -> anyhow::Result<u32> {
    if let Ok(gid) = group.parse() {
        return Ok(gid);
    }
    let groups = std::fs::read_to_string("/etc/group").context("cannot read /etc/group")?;
    groups
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            (fields.next() == Some(group))
                .then(|| fields.nth(1).and_then(|g| g.parse().ok()))
                .flatten()
        })
        .with_context(|| format!("no group named {group}"))
}

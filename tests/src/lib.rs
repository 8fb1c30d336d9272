//! The harness for Satchel's end-to-end tests: real `docker-registry`,
//! `satcheld` and `satchel` processes on real sockets.
//!
//! - [`Registry`] runs Debian's `docker-registry` (distribution 2.8) on an
//!   ephemeral loopback port with temporary storage.
//! - [`Daemon`] runs `satcheld` on a Unix socket in a temporary directory and
//!   prints its log if the test fails.
//! - [`satchel`] runs the CLI against a daemon.
//! - [`subject_layout`] writes a small, real OCI image into a layout, and
//!   [`skopeo_copy`] copies a layout into a registry with an independent client.
//!
//! The binaries come from the workspace's target directory: build them first
//! (`cargo build --workspace --bins`), as `scripts/test.sh` does.

pub mod auth;
pub mod faulty;
pub mod grpc;
pub mod hostile;
pub mod image;
pub mod leaks;
pub mod peers;
pub mod scrape;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use image::{skopeo_copy, subject_layout, SubjectImage};

/// A daemon config that uploads anything over 1 MiB in 4 MiB chunks.
pub const SMALL_CHUNKS: &str = "upload_monolithic_max = 1048576\nupload_chunk_size = 4194304\n";

/// The path of a workspace binary (`satcheld`, `satchel`).
pub fn bin(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("SATCHEL_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    // Test executables live in target/<profile>/deps; binaries one level up.
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` before the tests",
        path.display()
    );
    path
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("ephemeral port")
        .port()
}

/// Waits until `check` holds, for up to `limit`; panics with `what` after.
pub fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A minimal HTTP/1.1 GET on loopback: the status code and body.
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(buf.len());
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = buf.get(split + 4..).unwrap_or_default().to_vec();
    // The registry answers small bodies with Content-Length, not chunked.
    Ok((status, body))
}

/// Which real registry a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryKind {
    /// Debian's docker-registry, distribution 2.8: no referrers API.
    Distribution,
    /// ferro-oci-server from crates.io: has the referrers API.
    Ferro,
}

/// A running registry, killed on drop.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Which registry this is.
    pub kind: RegistryKind,
    _storage: tempfile::TempDir,
}

/// Finds a program on PATH or in cargo's bin directory.
fn program(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    on_path.unwrap_or_else(|| {
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
            .expect("CARGO_HOME or HOME");
        cargo_home.join("bin").join(name)
    })
}

/// Extra docker-registry settings for auth tests.
#[derive(Debug, Default, Clone)]
pub struct RegistrySetup {
    /// Require basic auth against this htpasswd file.
    pub htpasswd: Option<PathBuf>,
    /// Serve TLS with this certificate and key.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Require bearer tokens from this issuer: (realm, service, issuer,
    /// root certificate bundle).
    pub token: Option<(String, String, String, PathBuf)>,
}

impl RegistrySetup {
    /// The YAML to append to the base config.
    fn yaml(&self) -> String {
        let mut y = String::new();
        if let Some(path) = &self.htpasswd {
            y += &format!(
                "auth:\n  htpasswd:\n    realm: satchel-test\n    path: {}\n",
                path.display()
            );
        }
        if let Some((realm, service, issuer, bundle)) = &self.token {
            y += &format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    rootcertbundle: {}\n",
                bundle.display()
            );
        }
        y
    }
}

impl Registry {
    /// Starts docker-registry with the config in `tests/fixtures`.
    pub fn start() -> Registry {
        Self::start_kind(RegistryKind::Distribution)
    }

    /// Starts docker-registry with auth or TLS settings.
    pub fn start_with(setup: RegistrySetup) -> Registry {
        let storage = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/registry.yml");
        let mut config = std::fs::read_to_string(base).unwrap();
        config += &setup.yaml();
        let config_path = storage.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let mut cmd = Command::new("docker-registry");
        cmd.arg("serve")
            .arg(&config_path)
            .env("REGISTRY_HTTP_ADDR", &addr)
            .env(
                "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
                storage.path().join("data"),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((cert, key)) = &setup.tls {
            cmd.env("REGISTRY_HTTP_TLS_CERTIFICATE", cert)
                .env("REGISTRY_HTTP_TLS_KEY", key);
        }
        let child = cmd.spawn().expect("docker-registry must be installed");
        let registry = Registry {
            child,
            addr,
            kind: RegistryKind::Distribution,
            _storage: storage,
        };
        wait_for("docker-registry", Duration::from_secs(30), || {
            if setup.tls.is_some() {
                TcpStream::connect(&registry.addr).is_ok()
            } else {
                http_get(&registry.addr, "/v2/").is_ok_and(|(s, _)| s == 200 || s == 401)
            }
        });
        registry
    }

    /// Starts a registry of `kind` on an ephemeral loopback port with
    /// temporary storage.
    pub fn start_kind(kind: RegistryKind) -> Registry {
        let storage = tempfile::tempdir().expect("temp dir");
        let addr = format!("127.0.0.1:{}", free_port());
        let registry = Registry {
            child: spawn_registry(kind, &addr, storage.path()),
            addr,
            kind,
            _storage: storage,
        };
        registry.wait_until_up();
        registry
    }

    /// Kills the registry and starts it again on the same port and storage
    /// (a registry of [`Registry::start_kind`]); `down` runs in between.
    pub fn restart_with(&mut self, down: impl FnOnce()) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        down();
        self.child = spawn_registry(self.kind, &self.addr, self._storage.path());
        self.wait_until_up();
    }

    fn wait_until_up(&self) {
        wait_for("the registry", Duration::from_secs(30), || {
            http_get(&self.addr, "/v2/").is_ok_and(|(s, _)| s == 200)
        });
    }
}

/// Starts a registry of `kind` listening on `addr`, storing in `storage`.
fn spawn_registry(kind: RegistryKind, addr: &str, storage: &Path) -> Child {
    match kind {
        RegistryKind::Distribution => {
            let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/registry.yml");
            Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .env("REGISTRY_HTTP_ADDR", addr)
                .env("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", storage)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("docker-registry must be installed (apt-get install docker-registry)")
        }
        // ferro-oci-server has no flags; it is configured only through its
        // environment (never run it without: it would bind 0.0.0.0).
        RegistryKind::Ferro => Command::new(program("ferro-oci-server"))
            .env("FERRO_OCI_LISTEN", addr)
            .env("FERRO_OCI_STORAGE_DIR", storage)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ferro-oci-server must be installed (cargo install ferro-oci-server)"),
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `satcheld` on a private Unix socket, stopped on drop.
pub struct Daemon {
    child: Child,
    /// `unix:///.../satcheld.sock`.
    pub addr: String,
    log: PathBuf,
    dir: tempfile::TempDir,
    /// The flags and environment it was started with, for [`Self::restart`].
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Daemon {
    /// Starts satcheld with no registry credentials.
    pub fn start() -> Daemon {
        Self::start_with(&[])
    }

    /// Starts satcheld with `toml` as its `--config` file.
    pub fn start_with_config(toml: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("satcheld.toml");
        std::fs::write(&config, toml).expect("write the config");
        let config = config.display().to_string();
        Self::start_in(dir, &["--config", &config], &[])
    }

    /// Starts satcheld with extra flags.
    pub fn start_with(args: &[&str]) -> Daemon {
        Self::start_in(tempfile::tempdir().expect("temp dir"), args, &[])
    }

    /// Starts satcheld in `dir` (its scratch directory, which may already
    /// hold files its flags name) with extra flags and environment.
    pub fn start_in(dir: tempfile::TempDir, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let socket = dir.path().join("satcheld.sock");
        let log = dir.path().join("satcheld.log");
        let addr = format!("unix://{}", socket.display());
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let child = spawn_satcheld(dir.path(), &addr, &log, &args, &env);
        let daemon = Daemon {
            child,
            addr,
            log,
            dir,
            args,
            env,
        };
        daemon.wait_until_serving();
        daemon
    }

    /// Waits for the log line that says the daemon has finished starting:
    /// the socket is bound before the stores and spool are made, so a
    /// socket that accepts is not yet a daemon that is up.
    fn wait_until_serving(&self) {
        wait_for("satcheld to serve", Duration::from_secs(30), || {
            self.log().contains("satcheld serving")
        });
    }

    /// Kills the daemon outright (SIGKILL), as a crash would, and starts it
    /// again with the same flags, cache and state directory. The earlier
    /// log is kept as `satcheld.log.1`.
    pub fn restart_after_kill(&mut self) {
        self.kill();
        let _ = std::fs::rename(&self.log, self.log.with_extension("log.1"));
        self.child = spawn_satcheld(
            self.dir.path(),
            &self.addr,
            &self.log,
            &self.args,
            &self.env,
        );
        self.wait_until_serving();
    }

    /// A scratch directory that lives as long as the daemon.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs `satchel` against this daemon.
    pub fn satchel(&self, args: &[&str]) -> Output {
        satchel(&self.addr, args)
    }

    /// Pulls `reference` over plain HTTP into `out`; requires success.
    pub fn pull_plain(&self, reference: &str, out: &Path) -> String {
        self.ok(&[
            "pull",
            "--plain-http",
            reference,
            "-o",
            out.to_str().expect("a UTF-8 path"),
        ])
    }

    /// Pushes `content` as a file `name` in the scratch directory to
    /// `reference` over plain HTTP; requires success and returns the
    /// manifest's digest.
    pub fn push_plain(&self, reference: &str, name: &str, content: &str) -> String {
        let file = self.scratch().join(name);
        std::fs::write(&file, content).expect("write the file to push");
        let file = file.to_str().expect("a UTF-8 path");
        digest_of(&self.ok(&["push", "--plain-http", reference, file]))
    }

    /// Attaches `content`, as a file `name` in the scratch directory, to
    /// `subject` as an artifact of `artifact_type` over plain HTTP;
    /// requires success and returns the attachment's digest.
    pub fn attach_plain(
        &self,
        subject: &str,
        artifact_type: &str,
        name: &str,
        content: &str,
    ) -> String {
        let file = self.scratch().join(name);
        std::fs::write(&file, content).expect("write the file to attach");
        let file = file.to_str().expect("a UTF-8 path");
        let args = [
            "attach",
            "--plain-http",
            "--artifact-type",
            artifact_type,
            subject,
            file,
        ];
        digest_of(&self.ok(&args))
    }

    /// Starts `satchel` against this daemon in the background, its output
    /// discarded, for tests that act while it runs.
    pub fn spawn_satchel(&self, args: &[&str]) -> std::process::Child {
        satchel_command(&self.addr, args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run satchel")
    }

    /// Runs `satchel` with `input` on its standard input.
    pub fn satchel_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = satchel_command(&self.addr, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run satchel");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().expect("satchel output")
    }

    /// The docker `config.json` this daemon reads (it may not exist yet).
    pub fn docker_config(&self) -> PathBuf {
        self.dir.path().join("docker").join("config.json")
    }

    /// Runs `satchel` in the directory `cwd`.
    pub fn run_in(&self, cwd: &Path, args: &[&str]) -> Output {
        satchel_command(&self.addr, args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .output()
            .expect("run satchel")
    }

    /// Runs `satchel` in the directory `cwd` and requires success; returns
    /// stdout.
    pub fn ok_in(&self, cwd: &Path, args: &[&str]) -> String {
        let out = self.run_in(cwd, args);
        assert!(
            out.status.success(),
            "satchel {args:?} in {} failed: {}",
            cwd.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Runs `satchel` and requires success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.satchel(args);
        assert!(
            out.status.success(),
            "satchel {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Runs `satchel`, requires failure, and returns stderr, which must be
    /// one line.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.satchel(args);
        assert!(!out.status.success(), "satchel {args:?} should have failed");
        let err = String::from_utf8(out.stderr).expect("utf-8 stderr");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "one-line error expected: {err}"
        );
        err
    }

    /// Kills the daemon outright (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the daemon to exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().expect("wait for satcheld")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- satcheld log ----\n{}", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts satcheld listening on `addr` with `args` and `env`, its log in
/// `log`. Every daemon gets a private cache and
/// state directory in `dir` unless its flags say otherwise.
fn spawn_satcheld(
    dir: &Path,
    addr: &str,
    log: &Path,
    args: &[String],
    env: &[(String, String)],
) -> Child {
    let has = |prefix: &str| args.iter().any(|a| a.starts_with(prefix));
    let mut cmd = Command::new(bin("satcheld"));
    if !has("--cache") && !has("--no-cache") {
        cmd.arg("--cache-dir").arg(dir.join("cache"));
    }
    if !has("--state-dir") {
        cmd.arg("--state-dir").arg(dir.join("state"));
    }
    cmd.arg("--listen")
        .arg(addr)
        .args(args)
        .env("DOCKER_CONFIG", dir.join("docker"))
        .env(
            "SATCHELD_LOG",
            "debug,h2=info,hyper=info,hyper_util=info,tower=info,rustls=info",
        )
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("start satcheld")
}

/// Runs `satchel` with `--addr addr`.
pub fn satchel(addr: &str, args: &[&str]) -> Output {
    satchel_command(addr, args)
        .stdin(Stdio::null())
        .output()
        .expect("run satchel")
}

/// `satchel --addr addr args...`, not yet started.
fn satchel_command(addr: &str, args: &[&str]) -> Command {
    let mut command = Command::new(bin("satchel"));
    command.arg("--addr").arg(addr).args(args);
    command
}

/// The digest a `satchel push` or `attach` printed (its `Digest: ` line).
pub fn digest_of(output: &str) -> String {
    output
        .lines()
        .find_map(|l| l.strip_prefix("Digest: "))
        .unwrap_or_else(|| panic!("no digest in {output:?}"))
        .trim()
        .to_string()
}

/// The sha256 digest of `data`, as `sha256:<hex>`.
pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// The sha256 digest of a file, streamed.
pub fn sha256_file(path: &Path) -> String {
    use sha2::Digest;
    let mut f = std::fs::File::open(path).expect("open");
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// Writes `size` bytes of deterministic pseudo-random data to `path`,
/// without holding them in memory.
pub fn write_random_file(path: &Path, size: u64, seed: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    // Odd and distinct for every seed (xorshift must not start at 0).
    let mut x = seed.wrapping_mul(2).wrapping_add(1);
    let mut left = size;
    let mut block = vec![0u8; 1 << 16];
    while left > 0 {
        for word in block.chunks_mut(8) {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes()[..word.len()]);
        }
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n]).expect("write");
        left -= n as u64;
    }
    f.flush().expect("flush");
}

/// Every file under `dir`, relative, sorted.
pub fn list_files(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A discover tree without its `[annotations]` nodes and what they hold:
/// the tree as it looks for manifests that have no annotations.
pub fn without_annotations(tree: &str) -> String {
    let mut out = String::new();
    let mut inside: Option<usize> = None;
    for line in tree.lines() {
        let chars: Vec<char> = line.chars().collect();
        if let Some(col) = inside {
            let under = chars.get(col).is_some_and(|c| *c == ' ' || *c == '│')
                && chars.get(col + 4).is_some_and(|c| *c == '├' || *c == '└');
            if under {
                continue;
            }
            inside = None;
        }
        if let Some(at) = line.find("[annotations]") {
            inside = Some(line[..at].chars().count() - 4);
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Tests `fn scenario(kind: RegistryKind)` on each real registry:
/// `distribution::scenario` and `ferro::scenario`.
#[macro_export]
macro_rules! on_both_registries {
    ($($scenario:ident),* $(,)?) => {
        mod distribution {
            $( #[test] fn $scenario() { super::$scenario(satchel_tests::RegistryKind::Distribution) } )*
        }
        mod ferro {
            $( #[test] fn $scenario() { super::$scenario(satchel_tests::RegistryKind::Ferro) } )*
        }
    };
}

//! Bad input, group "access control": the daemon's own files and its
//! callers. The Unix socket path is never taken from a file that is not a
//! stale socket; the content store is the daemon's alone (0700/0600);
//! callers other than the daemon's own user name only layouts under
//! `layout_roots`, and no layout access follows a link; abandoned uploads
//! expire and count against the cache bound; spools go with their daemons.
//!
//! Real satcheld and satchel processes (and docker-registry for the modes
//! case). The second user is uid 65534 (`nobody`) with a group of its own
//! (gid 4242, the daemon's `--socket-group`), run with `setpriv`; these
//! cases need root and fail loudly without it. Every case that reaches the
//! API asserts the exact gRPC code (the CLI's error line ends with it) and
//! that nothing is left behind.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use satchel_tests::{bin, free_port, sha256, wait_for, write_random_file, Daemon, Registry};

/// The second user: `nobody`, with the socket's group.
const MEMBER_UID: u32 = 65534;
const MEMBER_GID: u32 = 4242;
const SECRET: &str = "root-only-canary-5e1f0c2a9b7d";

/// Panics unless the tests run as root: a second user cannot be made
/// otherwise, and a case that skips would pass without proving anything.
fn need_root() {
    let uid = std::fs::metadata("/proc/self").unwrap().uid();
    assert_eq!(
        uid, 0,
        "the access-control cases run a second Unix user and need root (CI runs as root)"
    );
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Asserts satchel failed with `code` on one error line naming it last.
fn assert_code(out: &Output, code: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should have failed: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one error line: {err}");
    assert!(
        err.trim_end().ends_with(&format!("({code})")),
        "expected {code}: {err}"
    );
}

fn assert_no_secret(out: &Output) {
    for stream in [&out.stdout, &out.stderr] {
        assert!(
            !String::from_utf8_lossy(stream).contains(SECRET),
            "the secret reached the caller"
        );
    }
}

/// Every file under `dir`, recursively (links included, not followed).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        out.push(path.clone());
        if entry.file_type().unwrap().is_dir() {
            out.extend(walk(&path));
        }
    }
    out
}

fn assert_empty(dir: &Path) {
    assert_eq!(
        walk(dir),
        Vec::<PathBuf>::new(),
        "{} is not empty",
        dir.display()
    );
}

/// A daemon open to the member's group, with a layout root, its socket in
/// a directory the member can reach.
struct Access {
    daemon: Daemon,
    /// The layout root (`<base>/roots`).
    roots: PathBuf,
    /// A directory outside the roots, world-readable.
    base: PathBuf,
}

impl Access {
    fn start() -> Access {
        Self::start_with("")
    }

    fn start_with(extra_toml: &str) -> Access {
        need_root();
        let dir = tempfile::tempdir().unwrap();
        chmod(dir.path(), 0o755);
        let base = dir.path().canonicalize().unwrap();
        let roots = base.join("roots");
        std::fs::create_dir(&roots).unwrap();
        let config = base.join("satcheld.toml");
        std::fs::write(
            &config,
            format!("layout_roots = [{:?}]\n{extra_toml}", roots),
        )
        .unwrap();
        let config = config.to_str().unwrap().to_string();
        let gid = MEMBER_GID.to_string();
        let daemon = Daemon::start_in(dir, &["--config", &config, "--socket-group", &gid], &[]);
        std::fs::write(base.join("secret"), SECRET).unwrap();
        chmod(&base.join("secret"), 0o600);
        Access {
            daemon,
            roots,
            base,
        }
    }

    /// Runs satchel as the second user.
    fn member(&self, args: &[&str]) -> Output {
        Command::new("setpriv")
            .arg(format!("--reuid={MEMBER_UID}"))
            .arg(format!("--regid={MEMBER_GID}"))
            .arg("--clear-groups")
            .arg(bin("satchel"))
            .args(["--addr", &self.daemon.addr])
            .args(args)
            .current_dir("/")
            .stdin(Stdio::null())
            .output()
            .expect("setpriv must be installed (util-linux)")
    }

    /// A layout at `dir` holding `files` (name, content), pushed by the
    /// daemon's own user as tag v1.
    fn layout(&self, dir: &Path, files: &[(&str, &str)]) -> String {
        let src = self.base.join(format!(
            "src-{}",
            dir.file_name().unwrap().to_string_lossy()
        ));
        std::fs::create_dir_all(&src).unwrap();
        let mut args = vec![
            "push".to_string(),
            "--oci-layout".into(),
            format!("{}:v1", dir.display()),
        ];
        for (name, content) in files {
            std::fs::write(src.join(name), content).unwrap();
            args.push(src.join(name).display().to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.daemon.ok(&args);
        format!("{}:v1", dir.display())
    }

    /// An empty output directory the member may write in.
    fn out(&self, name: &str) -> PathBuf {
        let out = self.base.join(name);
        std::fs::create_dir(&out).unwrap();
        std::os::unix::fs::chown(&out, Some(MEMBER_UID), Some(MEMBER_GID)).unwrap();
        out
    }

    fn pull_as_member(&self, reference: &str, out: &Path) -> Output {
        self.member(&[
            "pull",
            "--oci-layout",
            reference,
            "-o",
            out.to_str().unwrap(),
        ])
    }
}

// ---- the Unix socket path -------------------------------------------------

/// Starts satcheld on `socket`, which must fail: returns its stderr. A
/// daemon that starts instead is killed and the case fails (not hangs).
fn start_failure(dir: &Path, socket: &Path) -> String {
    let log = dir.join("failed-start.log");
    let mut child = Command::new(bin("satcheld"))
        .arg("--listen")
        .arg(format!("unix://{}", socket.display()))
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .env("DOCKER_CONFIG", dir.join("docker"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut status = None;
    let exited = (0..1500).any(|_| {
        status = child.try_wait().unwrap();
        status.is_some() || {
            std::thread::sleep(Duration::from_millis(20));
            false
        }
    });
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
        panic!("satcheld started on {}", socket.display());
    }
    assert!(
        !status.unwrap().success(),
        "satcheld should not have started"
    );
    std::fs::read_to_string(&log).unwrap()
}

#[test]
fn a_regular_file_at_the_socket_path_survives_and_startup_fails() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("satcheld.sock");
    std::fs::write(&socket, "precious").unwrap();
    let err = start_failure(dir.path(), &socket);
    assert!(err.contains("is not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&socket).unwrap(), "precious");
}

#[test]
fn a_symlink_at_the_socket_path_is_neither_removed_nor_followed() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    std::fs::write(&target, "kept").unwrap();
    let socket = dir.path().join("satcheld.sock");
    std::os::unix::fs::symlink(&target, &socket).unwrap();
    let err = start_failure(dir.path(), &socket);
    assert!(err.contains("is not a socket"), "{err}");
    assert!(std::fs::symlink_metadata(&socket)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "kept");
}

#[test]
fn a_stale_socket_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("satcheld.sock");
    // A socket file nobody accepts on: its listener is gone.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(std::os::unix::net::UnixStream::connect(&socket).is_err());
    let daemon = Daemon::start_in(dir, &[], &[]);
    let layout = daemon.scratch().join("layout");
    satchel_tests::subject_layout(&layout, "v1");
    daemon.ok(&[
        "resolve",
        "--oci-layout",
        &format!("{}:v1", layout.display()),
    ]);
}

#[test]
fn a_live_socket_is_left_to_its_daemon() {
    let first = Daemon::start();
    let socket = first.scratch().join("satcheld.sock");
    let err = start_failure(first.scratch(), &socket);
    assert!(err.contains("already listening"), "{err}");
    let layout = first.scratch().join("layout");
    satchel_tests::subject_layout(&layout, "v1");
    first.ok(&[
        "resolve",
        "--oci-layout",
        &format!("{}:v1", layout.display()),
    ]);
}

// ---- the content store's modes --------------------------------------------

#[test]
fn every_file_in_a_preexisting_0755_cache_is_private_after_push_pull_and_upload() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    chmod(&cache, 0o755);
    let cache_arg = cache.to_str().unwrap().to_string();
    let daemon = Daemon::start_in(dir, &["--cache-dir", &cache_arg], &[]);
    let file = daemon.scratch().join("sbom.json");
    std::fs::write(&file, "{\"sbom\":1}").unwrap();
    let reference = format!("{}/demo/modes:v1", registry.addr);
    daemon.ok(&["push", "--plain-http", &reference, file.to_str().unwrap()]);
    daemon.pull_plain(&reference, &daemon.scratch().join("out"));
    let other = daemon.scratch().join("provenance.json");
    std::fs::write(&other, "{\"provenance\":1}").unwrap();
    daemon.ok(&["blob", "upload", other.to_str().unwrap()]);
    // An upload left half done, too.
    let big = daemon.scratch().join("big.bin");
    write_random_file(&big, 8 << 20, 7);
    let mut upload = daemon.spawn_satchel(&[
        "blob",
        "upload",
        big.to_str().unwrap(),
        "--limit-rate",
        "1048576",
    ]);
    let ingest = cache.join("ingest");
    wait_for("an upload in the store", Duration::from_secs(30), || {
        walk(&ingest)
            .iter()
            .any(|p| p.metadata().unwrap().len() > 0)
    });
    let _ = upload.kill();
    let _ = upload.wait();
    let mut files = 0;
    for path in std::iter::once(cache.clone()).chain(walk(&cache)) {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            assert_eq!(mode(&path), 0o700, "{}", path.display());
        } else {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
            files += 1;
        }
    }
    // The pulled blob, the uploaded one, its pin, the half upload, the spool lock.
    assert!(files >= 5, "{:?}", walk(&cache));
}

// ---- callers: the daemon's own user, group members, TCP -------------------

#[test]
fn a_group_member_is_denied_a_layout_outside_layout_roots() {
    let access = Access::start();
    let reference = access.layout(&access.base.join("outside"), &[("a.txt", "a")]);
    let out = access.out("out-outside");
    let result = access.pull_as_member(&reference, &out);
    assert_code(&result, "PERMISSION_DENIED");
    assert_empty(&out);
    let result = access.member(&["resolve", "--oci-layout", &reference]);
    assert_code(&result, "PERMISSION_DENIED");
}

#[test]
fn a_group_member_may_use_a_layout_under_a_root() {
    let access = Access::start();
    let reference = access.layout(&access.roots.join("shared"), &[("a.txt", "shared bytes")]);
    let out = access.out("out-shared");
    let result = access.pull_as_member(&reference, &out);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(out.join("a.txt")).unwrap(),
        "shared bytes"
    );
}

#[test]
fn the_daemons_own_user_may_name_a_layout_outside_the_roots() {
    let access = Access::start();
    let reference = access.layout(&access.base.join("mine"), &[("a.txt", "mine")]);
    let out = access.base.join("out-mine");
    access.daemon.ok(&[
        "pull",
        "--oci-layout",
        &reference,
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_to_string(out.join("a.txt")).unwrap(), "mine");
}

#[test]
fn a_group_member_gets_no_byte_of_a_blob_linked_to_a_root_only_file() {
    let access = Access::start();
    // The layout names the secret's true digest, so a link followed would
    // pass every digest check.
    let dir = access.roots.join("linked");
    let reference = access.layout(&dir, &[("loot.txt", SECRET)]);
    let blob = dir
        .join("blobs/sha256")
        .join(&sha256(SECRET.as_bytes())[7..]);
    std::fs::remove_file(&blob).unwrap();
    std::os::unix::fs::symlink(access.base.join("secret"), &blob).unwrap();
    let out = access.out("out-linked");
    let result = access.pull_as_member(&reference, &out);
    assert_code(&result, "PERMISSION_DENIED");
    assert_no_secret(&result);
    assert_empty(&out);
}

#[test]
fn a_group_member_gets_no_byte_of_a_blob_whose_file_holds_other_bytes() {
    let access = Access::start();
    let dir = access.roots.join("swapped");
    let big = access.base.join("big.bin");
    write_random_file(&big, 8 << 20, 21);
    let reference = format!("{}:v1", dir.display());
    access
        .daemon
        .ok(&["push", "--oci-layout", &reference, big.to_str().unwrap()]);
    // The blob's file now holds other bytes of the same size.
    let blob = dir
        .join("blobs/sha256")
        .join(&satchel_tests::sha256_file(&big)[7..]);
    write_random_file(&blob, 8 << 20, 22);
    let out = access.out("out-swapped");
    let result = access.pull_as_member(&reference, &out);
    // One error line and no progress line before it: not a byte arrived.
    assert_code(&result, "DATA_LOSS");
    assert_empty(&out);
}

#[test]
fn a_group_member_cannot_copy_a_linked_blob_into_the_content_store() {
    let access = Access::start();
    let dir = access.roots.join("linked-store");
    access.layout(&dir, &[("loot.txt", SECRET)]);
    let digest = sha256(SECRET.as_bytes());
    let blob = dir.join("blobs/sha256").join(&digest[7..]);
    std::fs::remove_file(&blob).unwrap();
    std::os::unix::fs::symlink(access.base.join("secret"), &blob).unwrap();
    let out = access.out("out-store");
    let size = SECRET.len().to_string();
    let result = access.member(&[
        "blob",
        "download",
        &digest,
        "--size",
        &size,
        "--from",
        dir.to_str().unwrap(),
        "--oci-layout",
        "-o",
        out.join("loot").to_str().unwrap(),
    ]);
    assert_code(&result, "PERMISSION_DENIED");
    assert_no_secret(&result);
    assert_empty(&out);
    let cache = access.daemon.scratch().join("cache");
    assert!(!cache.join("blobs/sha256").join(&digest[7..]).exists());
}

#[test]
fn a_group_member_is_denied_a_layout_whose_index_json_is_a_link() {
    let access = Access::start();
    let private = access.base.join("private");
    access.layout(&private, &[("loot.txt", SECRET)]);
    chmod(&private, 0o700);
    let dir = access.roots.join("index-link");
    let reference = access.layout(&dir, &[("a.txt", "a")]);
    std::fs::remove_file(dir.join("index.json")).unwrap();
    std::os::unix::fs::symlink(private.join("index.json"), dir.join("index.json")).unwrap();
    let result = access.member(&["resolve", "--oci-layout", &reference]);
    assert_code(&result, "PERMISSION_DENIED");
}

#[test]
fn a_group_member_cannot_read_through_a_symlinked_blobs_dir() {
    let access = Access::start();
    let private = access.base.join("private");
    access.layout(&private, &[("loot.txt", SECRET)]);
    chmod(&private, 0o700);
    // A layout under the root whose index is the private one's and whose
    // blobs directory is a link to the private blobs.
    let dir = access.roots.join("blobs-link");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(private.join("index.json"), dir.join("index.json")).unwrap();
    std::fs::copy(private.join("oci-layout"), dir.join("oci-layout")).unwrap();
    std::os::unix::fs::symlink(private.join("blobs"), dir.join("blobs")).unwrap();
    let out = access.out("out-blobs-link");
    let result = access.pull_as_member(&format!("{}:v1", dir.display()), &out);
    assert_code(&result, "PERMISSION_DENIED");
    assert_no_secret(&result);
    assert_empty(&out);
}

#[test]
fn a_group_member_cannot_leave_a_root_through_a_symlinked_layout_dir() {
    let access = Access::start();
    let private = access.base.join("private");
    access.layout(&private, &[("loot.txt", SECRET)]);
    std::os::unix::fs::symlink(&private, access.roots.join("escape")).unwrap();
    let out = access.out("out-escape");
    let reference = format!("{}:v1", access.roots.join("escape").display());
    let result = access.pull_as_member(&reference, &out);
    assert_code(&result, "PERMISSION_DENIED");
    assert_no_secret(&result);
    assert_empty(&out);
}

#[test]
fn a_group_member_cannot_leave_a_root_with_dotdot() {
    let access = Access::start();
    let private = access.base.join("private");
    access.layout(&private, &[("loot.txt", SECRET)]);
    let reference = format!("{}/../private:v1", access.roots.display());
    let result = access.member(&["resolve", "--oci-layout", &reference]);
    assert_code(&result, "PERMISSION_DENIED");
}

#[test]
fn a_group_member_cannot_push_into_a_layout_outside_the_roots() {
    let access = Access::start();
    let target = access.base.join("planted");
    let file = access.base.join("payload.txt");
    std::fs::write(&file, "payload").unwrap();
    chmod(&file, 0o644);
    let result = access.member(&[
        "push",
        "--oci-layout",
        &format!("{}:v1", target.display()),
        file.to_str().unwrap(),
    ]);
    assert_code(&result, "PERMISSION_DENIED");
    assert!(
        !target.exists(),
        "the daemon created a layout for the member"
    );
}

#[test]
fn a_tcp_caller_is_held_to_the_layout_roots() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    satchel_tests::subject_layout(&layout, "v1");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(bin("satcheld"))
        .args(["--listen", &listen, "--no-cache"])
        .env("DOCKER_CONFIG", dir.path().join("docker"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("satcheld on TCP", Duration::from_secs(30), || {
        std::net::TcpStream::connect(&listen).is_ok()
    });
    let out = satchel_tests::satchel(
        &format!("http://{listen}"),
        &[
            "resolve",
            "--oci-layout",
            &format!("{}:v1", layout.display()),
        ],
    );
    let _ = child.kill();
    let _ = child.wait();
    assert_code(&out, "PERMISSION_DENIED");
}

// ---- abandoned uploads ----------------------------------------------------

/// Starts an upload of 8 MiB at 1 MiB/s and kills it once the store holds
/// at least `bytes` of it: an upload nobody will commit.
fn abandon_upload(daemon: &Daemon, bytes: u64) -> PathBuf {
    let big = daemon.scratch().join("abandoned.bin");
    write_random_file(&big, 8 << 20, 11);
    let mut upload = daemon.spawn_satchel(&[
        "blob",
        "upload",
        big.to_str().unwrap(),
        "--limit-rate",
        "1048576",
    ]);
    let ingest = daemon.scratch().join("cache/ingest");
    let mut found = None;
    wait_for("a large enough upload", Duration::from_secs(60), || {
        found = walk(&ingest)
            .into_iter()
            .find(|p| p.metadata().map(|m| m.len() >= bytes).unwrap_or(false));
        found.is_some()
    });
    let _ = upload.kill();
    let _ = upload.wait();
    found.unwrap()
}

#[test]
fn abandoned_uploads_count_against_cache_max_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache").to_str().unwrap().to_string();
    let args = ["--cache-dir", &cache, "--cache-max-bytes", "1048576"];
    let daemon = Daemon::start_in(dir, &args, &[]);
    abandon_upload(&daemon, 3 << 20);
    let layout = daemon.scratch().join("layout");
    let reference = format!("{}:v1", layout.display());
    let (a, b) = ("first blob", "second blob");
    for (name, content) in [("a.txt", a), ("b.txt", b)] {
        let f = daemon.scratch().join(name);
        std::fs::write(&f, content).unwrap();
        daemon.ok(&["push", "--oci-layout", &reference, f.to_str().unwrap()]);
    }
    // Fetch both blobs into the store through the layout, one after the other.
    for content in [a, b] {
        let out = daemon.scratch().join("got");
        daemon.ok(&[
            "blob",
            "download",
            &sha256(content.as_bytes()),
            "--size",
            &content.len().to_string(),
            "--from",
            layout.to_str().unwrap(),
            "--oci-layout",
            "-o",
            out.to_str().unwrap(),
        ]);
    }
    // Both would fit in 1 MiB alone; beside 3 MiB of upload, the first went.
    let out = daemon.scratch().join("again");
    let result = daemon.satchel(&[
        "blob",
        "download",
        &sha256(a.as_bytes()),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_code(&result, "NOT_FOUND");
    assert!(!out.exists());
}

#[test]
fn abandoned_uploads_expire_after_upload_expiry_secs() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("satcheld.toml");
    std::fs::write(&config, "upload_expiry_secs = 2\n").unwrap();
    let config = config.to_str().unwrap().to_string();
    let daemon = Daemon::start_in(dir, &["--config", &config], &[]);
    let upload = abandon_upload(&daemon, 1 << 20);
    wait_for(
        "the sweep to expire the upload",
        Duration::from_secs(60),
        || !upload.exists(),
    );
    assert_empty(&daemon.scratch().join("cache/ingest"));
    // The line is written just after the file goes.
    wait_for(
        "the sweep to log the expiry",
        Duration::from_secs(10),
        || daemon.log().contains("expired an abandoned ingest file"),
    );
}

// ---- spools ---------------------------------------------------------------

fn spools(cache: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(cache.join("spool"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect()
}

#[test]
fn a_killed_daemons_spool_is_removed_by_the_next_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("shared-cache");
    let cache_arg = cache.to_str().unwrap().to_string();
    let mut first = Daemon::start_with(&["--cache-dir", &cache_arg]);
    let dead = spools(&cache);
    assert_eq!(dead.len(), 1, "{dead:?}");
    first.kill();
    assert!(dead[0].exists(), "SIGKILL leaves the spool behind");
    let mut second = Daemon::start_with(&["--cache-dir", &cache_arg]);
    assert!(!dead[0].exists(), "the dead daemon's spool stayed");
    let live = spools(&cache);
    assert_eq!(live.len(), 1, "{live:?}");
    // A third daemon leaves the live one's spool alone.
    let third = Daemon::start_with(&["--cache-dir", &cache_arg]);
    assert!(live[0].exists(), "a live daemon's spool was removed");
    drop(third);
    second.stop();
}

#[test]
fn a_daemons_own_spool_is_gone_after_sigterm() {
    let mut daemon = Daemon::start();
    let cache = daemon.scratch().join("cache");
    let own = spools(&cache);
    assert_eq!(own.len(), 1, "{own:?}");
    assert_eq!(mode(&own[0]), 0o700);
    assert!(daemon.stop().success());
    assert_eq!(spools(&cache), Vec::<PathBuf>::new());
    assert!(!daemon.scratch().join("satcheld.sock").exists());
}

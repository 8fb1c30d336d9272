//! The real peer CLIs the parity tests run beside satchel: the ORAS CLI and
//! crane, built from their Go modules by `bench/peers.sh` (which
//! `scripts/test.sh` runs first). `SATCHEL_ORAS` and `SATCHEL_CRANE` name
//! the binaries; without them, each is looked for in the Go bin directory
//! and on PATH.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Where the ORAS CLI is; panics with how to get it when it is missing.
pub fn oras_bin() -> PathBuf {
    peer_bin("oras", "SATCHEL_ORAS")
}

/// Where crane is, as [`oras_bin`] finds the ORAS CLI (`SATCHEL_CRANE`).
pub fn crane_bin() -> PathBuf {
    peer_bin("crane", "SATCHEL_CRANE")
}

/// Where helm is, as [`oras_bin`] finds the ORAS CLI (`SATCHEL_HELM`).
pub fn helm_bin() -> PathBuf {
    peer_bin("helm", "SATCHEL_HELM")
}

/// Runs `crane args...` and requires success; returns stdout.
pub fn crane_ok(args: &[&str]) -> String {
    let out = Command::new(crane_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run crane");
    assert!(
        out.status.success(),
        "crane {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn peer_bin(name: &str, var: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let gopath = std::env::var_os("GOPATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join("go"));
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    std::iter::once(gopath.join("bin"))
        .chain(candidates)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} is missing: run `eval \"$(bench/peers.sh)\"` or set {var}")
        })
}

/// Runs `oras args...` in `cwd`.
pub fn oras(cwd: &Path, args: &[&str]) -> Output {
    Command::new(oras_bin())
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("run oras")
}

/// Runs `oras args...` in `cwd` and requires success; returns stdout.
pub fn oras_ok(cwd: &Path, args: &[&str]) -> String {
    let out = oras(cwd, args);
    assert!(
        out.status.success(),
        "oras {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Pushes, with the ORAS CLI, an index of two images (linux/amd64 and
/// linux/arm64/v8) tagged `idx`; returns the images' digests.
pub fn multi_arch_index(work: &Path, repo: &str) -> (String, String) {
    let mut images = Vec::new();
    for (arch, variant) in [("amd64", ""), ("arm64", "v8")] {
        let config = serde_json::json!({
            "architecture": arch, "os": "linux", "variant": variant,
            "rootfs": {"type": "layers", "diff_ids": []}, "config": {},
        })
        .to_string();
        let config_path = work.join(format!("config-{arch}.json"));
        std::fs::write(&config_path, &config).unwrap();
        let config_digest = crate::sha256(config.as_bytes());
        oras_ok(
            work,
            &[
                "blob",
                "push",
                "--plain-http",
                &format!("{repo}@{config_digest}"),
                config_path.to_str().unwrap(),
            ],
        );
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": [],
        })
        .to_string();
        let manifest_path = work.join(format!("manifest-{arch}.json"));
        std::fs::write(&manifest_path, &manifest).unwrap();
        let digest = crate::sha256(manifest.as_bytes());
        oras_ok(
            work,
            &[
                "manifest",
                "push",
                "--plain-http",
                &format!("{repo}@{digest}"),
                manifest_path.to_str().unwrap(),
            ],
        );
        let mut platform = serde_json::json!({"architecture": arch, "os": "linux"});
        if !variant.is_empty() {
            platform["variant"] = variant.into();
        }
        images.push((digest, manifest.len(), platform));
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": images.iter().map(|(d, size, p)| serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": d, "size": size, "platform": p,
        })).collect::<Vec<_>>(),
    })
    .to_string();
    std::fs::write(work.join("index.json"), &index).unwrap();
    oras_ok(
        work,
        &[
            "manifest",
            "push",
            "--plain-http",
            &format!("{repo}:idx"),
            "index.json",
        ],
    );
    (images[0].0.clone(), images[1].0.clone())
}

/// Where cosign 3 is, as [`oras_bin`] finds the ORAS CLI (`SATCHEL_COSIGN`).
pub fn cosign_bin() -> PathBuf {
    peer_bin("cosign", "SATCHEL_COSIGN")
}

/// Where cosign 2 is (`SATCHEL_COSIGN2`; bench/peers.sh puts it in the Go
/// bin directory's `cosign2/`).
pub fn cosign2_bin() -> PathBuf {
    match std::env::var_os("SATCHEL_COSIGN2") {
        Some(p) => PathBuf::from(p),
        None => {
            let v3 = cosign_bin();
            v3.parent().unwrap_or(Path::new(".")).join("cosign2/cosign")
        }
    }
}

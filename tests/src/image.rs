//! Real OCI images written by hand into an OCI layout, independent of
//! Satchel's own code, and copied into registries with skopeo.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::sha256;

/// What [`subject_layout`] wrote.
pub struct SubjectImage {
    /// The manifest digest, `sha256:<hex>`.
    pub digest: String,
    /// The manifest size.
    pub size: usize,
}

/// A one-file ustar archive.
fn tar_one(name: &str, content: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    header[..name.len()].copy_from_slice(name.as_bytes());
    let octal = |field: &mut [u8], value: u64| {
        let s = format!("{:0width$o}\0", value, width = field.len() - 1);
        field.copy_from_slice(s.as_bytes());
    };
    octal(&mut header[100..108], 0o644);
    octal(&mut header[108..116], 0);
    octal(&mut header[116..124], 0);
    octal(&mut header[124..136], content.len() as u64);
    octal(&mut header[136..148], 1_600_000_000);
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|&b| b as u32).sum();
    let s = format!("{sum:06o}\0 ");
    header[148..156].copy_from_slice(s.as_bytes());
    let mut out = header.to_vec();
    out.extend_from_slice(content);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn put_blob(dir: &Path, data: &[u8]) -> String {
    let digest = sha256(data);
    let hex = digest.trim_start_matches("sha256:");
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("blobs dir");
    std::fs::write(blobs.join(hex), data).expect("write blob");
    digest
}

/// Writes an OCI layout at `dir` holding one small linux/amd64 image
/// tagged `tag`, whose single layer carries `layer_annotations`.
pub fn image_layout(
    dir: &Path,
    tag: &str,
    file: &str,
    layer_annotations: BTreeMap<String, String>,
) -> SubjectImage {
    let layer = tar_one(file, b"#!/bin/sh\necho hugo builder\n");
    let layer_digest = put_blob(dir, &layer);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/build.sh"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }))
    .unwrap();
    let config_digest = put_blob(dir, &config);
    let mut layer_desc = json!({
        "mediaType": "application/vnd.oci.image.layer.v1.tar",
        "digest": layer_digest,
        "size": layer.len(),
    });
    if !layer_annotations.is_empty() {
        layer_desc["annotations"] = json!(layer_annotations);
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": [layer_desc],
    }))
    .unwrap();
    let digest = put_blob(dir, &manifest);
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    SubjectImage {
        digest,
        size: manifest.len(),
    }
}

/// Writes the story's subject: a plain image tagged `tag`.
pub fn subject_layout(dir: &Path, tag: &str) -> SubjectImage {
    image_layout(dir, tag, "build.sh", BTreeMap::new())
}

/// Copies `layout:tag` to `docker://dest` over plain HTTP, keeping digests.
pub fn skopeo_copy(layout: &Path, tag: &str, dest: &str) {
    let out = Command::new("skopeo")
        .args([
            "copy",
            "--insecure-policy",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("docker://{dest}"))
        .output()
        .expect("skopeo must be installed (apt-get install skopeo)");
    assert!(
        out.status.success(),
        "skopeo copy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

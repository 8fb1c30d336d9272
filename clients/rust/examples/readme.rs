//! The example of clients/rust/README.md, word for word between the
//! markers (`tests/readme.rs` checks that), so it cannot drift: `cargo test`
//! compiles it, and `tests/tests/client_conformance.rs` runs
//! `sbom_round_trip` against a real registry and satcheld.
//!
//! `cargo run -p satchel-client --example readme -- ADDR IMAGE SBOM OUT`

// README BEGIN
use std::path::Path;

use satchel_client::{pb, Code, LocalFile};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Attaches the SBOM at `sbom` to `image` (say `localhost:5000/app:v1`, a
/// plain-HTTP registry), lists the image's referrers, and pulls the SBOM
/// back into `out` twice: by the reference the attach returned, and in one
/// step as the image's newest attachment of its type.
pub async fn sbom_round_trip(addr: &str, image: &str, sbom: &Path, out: &Path) -> Result<()> {
    const SBOM: &str = "application/vnd.cyclonedx+json";
    let target = |reference: &str| pb::Target {
        reference: reference.into(),
        plain_http: true,
        ..Default::default()
    };

    // "" means $SATCHEL_ADDR, else the daemon's default socket.
    let mut client = satchel_client::connect(addr).await?;
    let info = client.server_info().await?;
    println!(
        "satcheld {}: files under {} bytes are hashed first",
        info.version, info.hash_first_below
    );

    let sbom = LocalFile::new(sbom, SBOM, false).await?;
    let spec = pb::ArtifactSpec {
        artifact_type: SBOM.into(),
        ..Default::default()
    };
    let attached =
        satchel_client::attach(&mut client, target(image), spec, vec![sbom], |_| {}).await?;

    let found = client
        .discover(pb::DiscoverRequest {
            subject: Some(target(image)),
            ..Default::default()
        })
        .await?;
    println!("{} referrers", found.into_inner().referrers.len());

    let request = pb::PullRequest {
        target: Some(target(&attached.reference)),
        ..Default::default()
    };
    let pulled = satchel_client::pull(&mut client, request, &out.join("by-digest"), |_| {}).await?;
    println!("pulled {} files", pulled.files.len());

    // One step: the daemon finds the newest attachment of this type.
    let newest = out.join("newest");
    match satchel_client::pull_attachment(&mut client, target(image), SBOM, &newest, |_| {}).await {
        Err(e) if e.code() == Code::NotFound => eprintln!("no SBOM attached: {e}"),
        other => println!("pulled the newest SBOM: {}", other?.reference),
    }
    Ok(())
}
// README END

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, image, sbom, out] = args.as_slice() else {
        return Err("usage: readme ADDR IMAGE SBOM OUT".into());
    };
    sbom_round_trip(addr, image, Path::new(sbom), Path::new(out)).await
}

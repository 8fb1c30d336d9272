//! `satchel verify`: is an artifact signed by a trusted key? One Verify
//! call; the keys are read here and sent as PEM, so the daemon needs no
//! access to the caller's files. Also the key flags pull and discover
//! share.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use satchel_client::pb;
use serde_json::json;

use crate::format::Format;
use crate::show::esc;
use crate::{target, TargetFlags};

/// `satchel verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The signed artifact or image, by tag or digest.
    reference: String,
    /// A PEM public key (cosign.pub) the signature must verify under;
    /// repeat for several (any one will do). Without it, the daemon's
    /// policy names the keys.
    #[arg(long = "key", value_name = "PUB")]
    keys: Vec<PathBuf>,
    /// Output format: text, or json (the verified manifest and signature).
    #[arg(long, default_value = "text")]
    format: String,
    #[command(flatten)]
    target: TargetFlags,
    #[command(flatten)]
    platform: crate::PlatformFlag,
}

/// The PEM bytes of `paths`, for a request.
pub fn read_keys(paths: &[PathBuf]) -> anyhow::Result<Vec<bytes::Bytes>> {
    paths
        .iter()
        .map(|p| {
            std::fs::read(p)
                .map(bytes::Bytes::from)
                .with_context(|| format!("cannot read the key {}", p.display()))
        })
        .collect()
}

/// A signature as JSON.
pub fn signature_json(s: &pb::Signature) -> serde_json::Value {
    json!({
        "digest": s.digest,
        "form": s.form,
        "keyFingerprint": s.key_fingerprint,
        "predicateType": s.predicate_type,
    })
}

/// Runs `satchel verify`.
pub async fn verify(addr: &satchel_client::Daemon, args: VerifyArgs) -> anyhow::Result<()> {
    let format = Format::parse(&args.format, None, &["text", "json"])?;
    let target = target::parse_for(&args.reference, &args.target, &args.platform)?;
    let keys = read_keys(&args.keys)?;
    let mut client = addr.connect().await?;
    let resp = client
        .verify(pb::VerifyRequest {
            target: Some(target),
            keys,
        })
        .await?
        .into_inner();
    let signature = resp.signature.unwrap_or_default();
    if format.is_document() {
        let doc = json!({
            "reference": resp.reference,
            "digest": resp.manifest.unwrap_or_default().digest,
            "signature": signature_json(&signature),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!("Verified {}", esc(&resp.reference));
    println!(
        "Signature: {} ({})",
        esc(&signature.digest),
        esc(&signature.form)
    );
    println!("Key: {}", esc(&signature.key_fingerprint));
    println!("Predicate type: {}", esc(&signature.predicate_type));
    Ok(())
}

//! Proto messages into the service core's types and back. Decoding refuses
//! what the proto allows but the API does not (an unknown enum value, a
//! missing target) with INVALID_ARGUMENT; everything else is checked by
//! the service.

use satchel_oci::manifest::Descriptor;
use satchel_oci::registry::ReferrersMode;
use satchel_proto::v1 as pb;
use tonic::Status;

use super::status::invalid;
use crate::service::blobs::DownloadSpec;
use crate::service::manifests::{Named, Node};
use crate::service::pull::PullSpec;
use crate::service::push::{ArtifactSpec, ConfigSpec, FileSpec, Pushed};
use crate::service::target::TargetSpec;
use crate::service::verify::{Signature, Verdict};
use crate::service::watch::WatchEvent;

/// A target, which the request must carry.
pub fn target(t: Option<pb::Target>) -> Result<TargetSpec, Status> {
    let t = t.ok_or_else(|| invalid("a target is required"))?;
    let referrers_mode = match pb::ReferrersMode::try_from(t.referrers_mode) {
        Ok(pb::ReferrersMode::Unspecified) => ReferrersMode::Auto,
        Ok(pb::ReferrersMode::Api) => ReferrersMode::Api,
        Ok(pb::ReferrersMode::Tag) => ReferrersMode::TagSchema,
        Err(_) => {
            return Err(invalid(format!(
                "unknown referrers mode {}",
                t.referrers_mode
            )))
        }
    };
    Ok(TargetSpec {
        reference: t.reference,
        oci_layout: t.oci_layout,
        plain_http: t.plain_http,
        referrers_mode,
        platform: t.platform,
    })
}

/// What a Pull names: a target, or a subject and an artifact type.
pub fn pull(req: pb::PullRequest) -> Result<PullSpec, Status> {
    match (req.target, req.subject) {
        (Some(_), Some(_)) => Err(invalid("give a target or a subject to pull, not both")),
        (None, Some(subject)) => Ok(PullSpec::Newest {
            subject: target(Some(subject))?,
            artifact_type: req.artifact_type,
        }),
        (t, None) => Ok(PullSpec::Target(target(t)?)),
    }
}

/// The artifact of a Push or Attach header.
pub fn artifact(a: Option<pb::ArtifactSpec>) -> ArtifactSpec {
    let a = a.unwrap_or_default();
    ArtifactSpec {
        artifact_type: a.artifact_type,
        files: a
            .files
            .into_iter()
            .map(|f| FileSpec {
                name: f.name,
                media_type: f.media_type,
                digest: f.digest,
                size: f.size,
                annotations: f.annotations.into_iter().collect(),
                from_content_store: f.from_content_store,
            })
            .collect(),
        config: a.config.map(|c| ConfigSpec {
            media_type: c.media_type,
            data: c.data,
        }),
        annotations: a.annotations.into_iter().collect(),
        tags: a.tags,
    }
}

/// A DownloadBlob request.
pub fn download(req: pb::DownloadBlobRequest) -> Result<DownloadSpec, Status> {
    Ok(DownloadSpec {
        digest: req.digest,
        size: req.size,
        offset: req.offset,
        length: req.length,
        source: req.source.map(|s| target(Some(s))).transpose()?,
    })
}

/// A descriptor in proto form.
pub fn descriptor(d: &Descriptor) -> pb::Descriptor {
    pb::Descriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.to_string(),
        size: d.size,
        artifact_type: d.artifact_type.clone().unwrap_or_default(),
        annotations: d
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// A referrer tree in proto form.
pub fn referrers(nodes: Vec<Node>) -> Vec<pb::Referrer> {
    nodes
        .into_iter()
        .map(|n| pb::Referrer {
            manifest: Some(descriptor(&n.manifest)),
            referrers: referrers(n.referrers),
            verification: n.verification.map(verification),
        })
        .collect()
}

/// A signature that verified, in proto form.
pub fn signature(s: Signature) -> pb::Signature {
    pb::Signature {
        digest: s.digest,
        form: s.form.to_string(),
        key_fingerprint: s.key_fingerprint,
        predicate_type: s.predicate_type,
    }
}

/// A verdict as Discover reports it.
fn verification(v: Verdict) -> pb::Verification {
    match v.into_result() {
        Ok(s) => pb::Verification {
            verified: true,
            signature: Some(signature(s)),
            ..Default::default()
        },
        Err(e) => pb::Verification {
            verified: false,
            signature: None,
            code: match e.kind() {
                satchel_oci::ErrorKind::PermissionDenied => "PERMISSION_DENIED",
                _ => "FAILED_PRECONDITION",
            }
            .to_string(),
            reason: e.to_string(),
        },
    }
}

/// A push's result in proto form.
pub fn pushed(p: Pushed) -> pb::PushResult {
    pb::PushResult {
        reference: p.reference,
        manifest: Some(descriptor(&p.manifest)),
        layers: p.layers.iter().map(descriptor).collect(),
        tags: p.tags,
        blobs_skipped: p.blobs_skipped,
        subject: p.subject.as_ref().map(descriptor),
        warnings: p.warnings,
    }
}

/// A copy's event.
pub fn copy_event(e: satchel_oci::copy::Event) -> pb::CopyEvent {
    use pb::copy_event::Kind;
    use satchel_oci::copy::EventKind;
    let kind = match e.kind {
        EventKind::Copying => Kind::Copying,
        EventKind::Copied => Kind::Copied,
        EventKind::Exists => Kind::Exists,
        EventKind::Mounted => Kind::Mounted,
    };
    pb::CopyEvent {
        kind: kind.into(),
        content: Some(descriptor(&e.descriptor)),
    }
}

/// A watch's event; the current set names the watch's `subject`.
pub fn watch_event(event: WatchEvent, subject: &Named) -> pb::watch_referrers_response::Event {
    use pb::watch_referrers_response::Event;
    match event {
        WatchEvent::Current { referrers, resync } => Event::Current(pb::CurrentReferrers {
            subject: Some(descriptor(&subject.descriptor)),
            reference: subject.reference.clone(),
            referrers: referrers.iter().map(descriptor).collect(),
            resync,
        }),
        WatchEvent::Appeared(d) => Event::Appeared(descriptor(&d)),
        WatchEvent::Disappeared(d) => Event::Disappeared(descriptor(&d)),
    }
}

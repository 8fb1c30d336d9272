//! Calling satcheld's API directly, for tests that send what the CLI
//! would never send.

use satchel_proto::v1 as pb;

/// A target naming `reference` on a plain-HTTP registry.
pub fn plain_target(reference: &str) -> Option<pb::Target> {
    Some(pb::Target {
        reference: reference.to_string(),
        plain_http: true,
        ..Default::default()
    })
}

/// The status a pull fails with: at once, or as the first error of its
/// stream. Panics, naming `what`, when the pull succeeds.
pub async fn pull_error(
    client: &mut satchel_client::Client,
    request: pb::PullRequest,
    what: &str,
) -> tonic::Status {
    let mut stream = match client.pull(request).await {
        Err(status) => return status,
        Ok(stream) => stream.into_inner(),
    };
    loop {
        match stream.message().await {
            Err(status) => return status,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("{what} succeeded"),
        }
    }
}

//! Helpers for tests that speak gRPC to the daemon directly.

use satchel_client::pb;

/// A registry target over plain HTTP.
pub fn plain_target(reference: &str) -> Option<pb::Target> {
    Some(pb::Target {
        reference: reference.to_string(),
        plain_http: true,
        ..Default::default()
    })
}

/// The status a pull that must fail ends with, whether the call is refused
/// at once or its stream fails later; panics with `what` if it succeeds.
pub async fn pull_error(
    client: &mut satchel_client::Client,
    request: pb::PullRequest,
    what: &str,
) -> tonic::Status {
    match client.pull(request).await {
        Err(status) => status,
        Ok(stream) => {
            let mut stream = stream.into_inner();
            loop {
                match stream.message().await {
                    Err(status) => break status,
                    Ok(Some(_)) => continue,
                    Ok(None) => panic!("{what} succeeded"),
                }
            }
        }
    }
}

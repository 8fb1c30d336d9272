//! The metrics endpoint (`--metrics-listen`): Prometheus's text exposition
//! format, written by the `prometheus` crate, over plain HTTP/1.1 on its
//! own listener, `GET /metrics` only. It holds counts and no secret: RPCs
//! by method and code with their latency (counted in `grpc/answers.rs`),
//! what `satchel_oci::metrics` counts (registry requests, retries, tokens,
//! bytes, the content store, reconciler repairs), and gauges read at each
//! scrape (the content store's size, the journal backlog, watchers and
//! pollers).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use prometheus::{
    register_histogram_vec, register_int_counter_vec, register_int_gauge, Encoder, HistogramVec,
    IntCounterVec, IntGauge, TextEncoder,
};
use satchel_oci::metric;
use satchel_oci::metrics::LATENCY_BUCKETS;

use satchel_oci::registry::RegistryClient;

use crate::service::Service;

metric!(RPC_REQUESTS: IntCounterVec = register_int_counter_vec!(
    "satchel_rpc_requests_total",
    "gRPC calls answered, by method and status code.",
    &["method", "code"]
));
metric!(RPC_LATENCY: HistogramVec = register_histogram_vec!(
    "satchel_rpc_duration_seconds",
    "Seconds from a call's arrival to its last message (streams included).",
    &["method"],
    LATENCY_BUCKETS.to_vec()
));
metric!(STORE_BYTES: IntGauge = register_int_gauge!(
    "satchel_content_store_bytes",
    "Bytes of blobs the content store holds."
));
metric!(JOURNAL_BACKLOG: IntGauge = register_int_gauge!(
    "satchel_journal_backlog",
    "Referrers written to tag-schema indexes and still watched by the reconciler."
));
metric!(WATCHERS: IntGauge = register_int_gauge!(
    "satchel_watchers",
    "WatchReferrers calls open."
));
metric!(POLLERS: IntGauge = register_int_gauge!(
    "satchel_pollers",
    "Pollers of watched subjects (one per subject)."
));

/// The gRPC paths the daemon serves: those of its own services (read from
/// the API's descriptor set), health and reflection. Calls to any other
/// path are counted as "unknown", so callers cannot mint label values.
static KNOWN_PATHS: std::sync::LazyLock<std::collections::HashSet<String>> =
    std::sync::LazyLock::new(|| {
        let mut known: std::collections::HashSet<String> = [
            "/grpc.health.v1.Health/Check",
            "/grpc.health.v1.Health/Watch",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        known.extend(satchel_proto::method_paths());
        known
    });

/// Counts a finished call of `method` (its last path segment) that ended
/// with `code` after `took`.
pub fn record_rpc(path: &str, code: &str, took: Duration) {
    let method = if KNOWN_PATHS.contains(path) {
        path.rsplit('/').next().unwrap_or(path)
    } else {
        "unknown"
    };
    RPC_REQUESTS.with_label_values(&[method, code]).inc();
    RPC_LATENCY
        .with_label_values(&[method])
        .observe(took.as_secs_f64());
}

/// What the gauges are read from at each scrape.
#[derive(Clone)]
pub struct Sources {
    /// The service core: the content store, the watches.
    pub service: Service,
    /// The registry client: the journal.
    pub registry: Arc<RegistryClient>,
}

/// The text of every metric, the gauges read from `sources` first.
pub fn render(sources: &Sources) -> Vec<u8> {
    let store = sources.service.store_bytes();
    STORE_BYTES.set(i64::try_from(store).unwrap_or(i64::MAX));
    JOURNAL_BACKLOG.set(sources.registry.journal_backlog() as i64);
    let (pollers, watchers) = sources.service.pollers();
    POLLERS.set(pollers as i64);
    WATCHERS.set(watchers as i64);
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&prometheus::gather(), &mut out)
        .expect("the text encoder writes to memory");
    out
}

/// Binds `addr` and serves the metrics endpoint there in a task (bound at
/// start-up, so a bad address fails the daemon at once).
pub fn start(addr: SocketAddr, sources: Sources) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let bound = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .with_context(|| format!("cannot listen for metrics on {addr}"))?;
    let listener = tokio::net::TcpListener::from_std(bound)?;
    tracing::info!(address = %addr, "serving metrics at /metrics");
    Ok(tokio::spawn(serve(listener, sources)))
}

/// Serves the metrics endpoint on `listener`.
async fn serve(listener: tokio::net::TcpListener, sources: Sources) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, most likely: wait instead of spinning.
                tracing::warn!(error = %e, "the metrics listener cannot accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let sources = sources.clone();
        tokio::spawn(async move {
            let answer = hyper::service::service_fn(move |req| {
                let sources = sources.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&req, &sources)) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            // A scraper that sends nothing, or stays, is let go.
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(io, answer);
            let _ = tokio::time::timeout(Duration::from_secs(60), connection).await;
        });
    }
}

fn answer<B>(req: &http::Request<B>, sources: &Sources) -> http::Response<Full<Bytes>> {
    let response = http::Response::builder();
    let found = req.method() == http::Method::GET && req.uri().path() == "/metrics";
    let built = match found {
        true => response
            .header(http::header::CONTENT_TYPE, TextEncoder::new().format_type())
            .body(Full::new(Bytes::from(render(sources)))),
        false => response
            .status(http::StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::from_static(b"only GET /metrics\n"))),
    };
    built.expect("a valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_daemons_own_methods_become_labels() {
        record_rpc("/satchel.v1.SatchelService/Pull", "OK", Duration::ZERO);
        record_rpc("/attacker.Chosen/Label123", "OK", Duration::ZERO);
        let mut text = Vec::new();
        TextEncoder::new()
            .encode(&prometheus::gather(), &mut text)
            .unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("method=\"Pull\""), "{text}");
        assert!(text.contains("method=\"unknown\""), "{text}");
        assert!(!text.contains("Label123"), "{text}");
    }
}

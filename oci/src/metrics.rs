//! What the registry client, the content store and the reconciler count,
//! kept in the `prometheus` crate's default registry; the daemon serves
//! that registry, with its own counters, on `--metrics-listen`.

use prometheus::{
    register_histogram_vec, register_int_counter, register_int_counter_vec, HistogramVec,
    IntCounter, IntCounterVec,
};

/// Latency buckets, in seconds, from a loopback answer to a slow upload.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// `static NAME: TYPE`, registered in the default registry on first use.
#[macro_export]
#[doc(hidden)]
macro_rules! metric {
    ($name:ident: $ty:ty = $make:expr) => {
        pub(crate) static $name: std::sync::LazyLock<$ty> =
            std::sync::LazyLock::new(|| $make.expect("metric names are unique and valid"));
    };
}

metric!(REGISTRY_REQUESTS: IntCounterVec = register_int_counter_vec!(
    "satchel_registry_requests_total",
    "Requests sent to registries, by registry host, method and HTTP status (\"error\": no answer).",
    &["host", "method", "status"]
));
metric!(REGISTRY_LATENCY: HistogramVec = register_histogram_vec!(
    "satchel_registry_request_duration_seconds",
    "Seconds from sending a registry request to its answer's headers.",
    &["host", "method"],
    LATENCY_BUCKETS.to_vec()
));
metric!(REGISTRY_RETRIES: IntCounterVec = register_int_counter_vec!(
    "satchel_registry_retries_total",
    "Registry requests sent again after a dropped connection or a transient status.",
    &["host"]
));
metric!(TOKEN_FETCHES: IntCounterVec = register_int_counter_vec!(
    "satchel_token_fetches_total",
    "Bearer tokens fetched from token services, by the registry they are for.",
    &["host"]
));
metric!(BYTES: IntCounterVec = register_int_counter_vec!(
    "satchel_registry_bytes_total",
    "Blob bytes moved to (\"up\") and from (\"down\") registries.",
    &["direction"]
));
metric!(STORE_HITS: IntCounter = register_int_counter!(
    "satchel_content_store_hits_total",
    "Blobs read from the content store instead of a registry."
));
metric!(STORE_MISSES: IntCounter = register_int_counter!(
    "satchel_content_store_misses_total",
    "Blobs asked of the content store that it did not have."
));
metric!(STORE_EVICTIONS: IntCounter = register_int_counter!(
    "satchel_content_store_evictions_total",
    "Blobs removed from the content store to keep it within its bound."
));
metric!(REPAIRS: IntCounter = register_int_counter!(
    "satchel_reconciler_repairs_total",
    "Referrers merged back into a tag-schema index after another writer dropped them."
));

/// Counts `n` blob bytes moved `direction` ("up" or "down").
pub(crate) fn moved(direction: &str, n: usize) {
    BYTES.with_label_values(&[direction]).inc_by(n as u64);
}

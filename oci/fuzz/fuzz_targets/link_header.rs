//! `Link` headers of referrers pagination (`satchel_oci::registry::next_link`,
//! run on every page of a referrers listing). The input is one header value
//! per line. Invariants: parsing never panics; and the first line `T`, sent
//! as the RFC 8288 link `<T>; rel="next"` (alone, or after a `prev` link),
//! resolves to exactly `T` joined to the request URL.
#![no_main]

use http::header::LINK;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use satchel_oci::registry::next_link;
use url::Url;

const BASE: &str = "https://registry.example:5000/v2/app/referrers/sha256:\
    2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae?artifactType=x";

fn one(value: &str) -> Option<HeaderMap> {
    let mut headers = HeaderMap::new();
    headers.insert(LINK, HeaderValue::from_str(value).ok()?);
    Some(headers)
}

fuzz_target!(|data: &[u8]| {
    let base = Url::parse(BASE).expect("the base URL parses");
    let mut headers = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(LINK, value);
        }
    }
    let _ = next_link(&headers, &base);

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let target = text.lines().next().unwrap_or("").trim();
    if target.contains(['<', '>']) {
        return;
    }
    let want = base.join(target).ok();
    for value in [
        format!("<{target}>; rel=\"next\""),
        format!("</v2/app/referrers/x?prev=1>; rel=\"prev\", <{target}>; rel=\"next\""),
    ] {
        let Some(headers) = one(&value) else { continue };
        assert_eq!(next_link(&headers, &base), want, "Link: {value}");
    }
});

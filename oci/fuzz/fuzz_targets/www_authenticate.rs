//! `WWW-Authenticate` challenges (`satchel_oci::auth::parse_challenges`, run
//! on every 401 a registry sends). Invariants: parsing never panics; schemes
//! and parameter names are non-empty lowercase tokens; and the challenges,
//! written back out with every value quoted, parse to themselves.
#![no_main]

use libfuzzer_sys::fuzz_target;
use satchel_oci::auth::{parse_challenges, Challenge};

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&c))
}

fn write(challenges: &[Challenge]) -> String {
    let mut out = Vec::new();
    for c in challenges {
        let params: Vec<String> = c
            .params
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect();
        out.push(format!("{} {}", c.scheme, params.join(", ")));
    }
    out.join(", ")
}

fuzz_target!(|data: &[u8]| {
    let header = String::from_utf8_lossy(data);
    let challenges = parse_challenges(&header);
    for c in &challenges {
        assert!(is_token(&c.scheme), "scheme {:?}", c.scheme);
        assert_eq!(c.scheme, c.scheme.to_ascii_lowercase());
        for key in c.params.keys() {
            assert!(is_token(key), "parameter {key:?}");
            assert_eq!(key, &key.to_ascii_lowercase());
        }
    }
    let written = write(&challenges);
    assert_eq!(
        parse_challenges(&written),
        challenges,
        "{header:?} written back as {written:?}"
    );
});

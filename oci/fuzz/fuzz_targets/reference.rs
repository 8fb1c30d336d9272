//! Image references (`satchel_oci::Reference::parse`, the parser every RPC
//! that names a repository goes through). Invariants: parsing never panics;
//! a parsed reference prints to a string that parses back to the same value;
//! its name, digest-pinned and re-tagged forms do too; and the registry
//! client can build a URL from it (host, repository and manifest reference
//! land in the URL unchanged).
#![no_main]

use libfuzzer_sys::fuzz_target;
use satchel_oci::Reference;
use url::Url;

fn reparse(r: &Reference, what: &str) {
    let shown = r.to_string();
    let again = Reference::parse(&shown)
        .unwrap_or_else(|e| panic!("{what} {shown:?} does not parse back: {e}"));
    assert_eq!(&again, r, "{what} {shown:?} parses to another value");
    assert_eq!(again.to_string(), shown);
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(r) = Reference::parse(input) else {
        return;
    };
    reparse(&r, "the reference");

    let name = Reference::parse(&r.name()).expect("the name parses");
    assert_eq!(name.registry(), r.registry());
    assert_eq!(name.repository(), r.repository());
    assert_eq!((name.tag(), name.digest()), (None, None));

    let pinned = r.with_digest(&satchel_oci::digest::sha256(data));
    reparse(&pinned, "the pinned reference");
    if let Some(tag) = r.tag() {
        let tagged = pinned.with_tag(tag).expect("a parsed tag is valid");
        reparse(&tagged, "the re-tagged reference");
    }

    // As the registry client builds its URLs (Repository::url).
    let path = format!(
        "/v2/{}/manifests/{}",
        r.repository(),
        r.manifest_reference()
    );
    for scheme in ["https", "http"] {
        let s = format!("{scheme}://{}{path}", r.api_host());
        let url = Url::parse(&s)
            .unwrap_or_else(|e| panic!("{input:?} parsed, but its URL {s:?} does not: {e}"));
        assert_eq!(
            url.path(),
            path,
            "{input:?}: the URL {s:?} changes the path"
        );
        assert!(url.username().is_empty() && url.password().is_none());
        assert!(url.query().is_none() && url.fragment().is_none());
    }
});

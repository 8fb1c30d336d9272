//! The referrers tag schema's index merge
//! (`satchel_oci::registry::merge_referrers`, what Push and Delete do to the
//! `sha256-<hex>` index on registries without the referrers API). Input:
//! byte 0 picks what to add, byte 1 what to remove, the rest is the index
//! JSON as read from the registry. A pick of 0 is none, 1..=N names the
//! listed entry of that number, anything else a digest not listed.
//! Invariants: no panic; the result lists each digest once, lists the added
//! digest, does not list the removed one (unless it is also the one added),
//! holds only entries it was given, in their order; merging again changes
//! nothing; and the index written from it parses back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use satchel_oci::digest::{sha256, Digest};
use satchel_oci::manifest::{Descriptor, ImageIndex, MEDIA_TYPE_MANIFEST};
use satchel_oci::registry::merge_referrers;

fn pick(listed: &[Descriptor], byte: u8) -> Option<Descriptor> {
    match byte as usize {
        0 => None,
        n if n <= listed.len() => Some(listed[n - 1].clone()),
        _ => {
            let mut d = Descriptor::for_bytes(MEDIA_TYPE_MANIFEST, &[byte]);
            d.artifact_type = Some("application/vnd.example.sbom".into());
            Some(d)
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [a, r, json @ ..] = data else { return };
    let Ok(index) = serde_json::from_slice::<ImageIndex>(json) else {
        return;
    };
    let input = index.manifests;
    let add = pick(&input, *a);
    let remove: Option<Digest> = pick(&input, *r).map(|d| d.digest);
    let out = merge_referrers(input.clone(), add.as_ref(), remove.as_ref());

    let mut seen = std::collections::HashSet::new();
    assert!(
        out.iter().all(|d| seen.insert(d.digest.clone())),
        "a digest listed twice"
    );
    if let Some(add) = &add {
        assert!(
            out.iter().any(|d| d.digest == add.digest),
            "the added digest is missing"
        );
    }
    if let Some(gone) = &remove {
        let re_added = add.as_ref().is_some_and(|a| &a.digest == gone);
        assert!(
            re_added || out.iter().all(|d| &d.digest != gone),
            "the removed digest is listed"
        );
    }
    // Only given entries, in the order given.
    let mut rest = input.iter().chain(add.iter());
    for entry in &out {
        assert!(rest.any(|d| d == entry), "{entry:?} is new or out of order");
    }
    assert_eq!(
        merge_referrers(out.clone(), add.as_ref(), remove.as_ref()),
        out
    );

    let written = ImageIndex::new(out).to_bytes();
    let back: ImageIndex = serde_json::from_slice(&written).expect("our index parses back");
    assert_eq!(back.to_bytes(), written);
    let _ = sha256(&written);
});

//! Manifest and index JSON (`satchel_oci::manifest`: `sniff_media_type`,
//! `Manifest::parse`, the title checks and `referrer_descriptor`), as pull,
//! discover and the layout store read documents from registries and disks,
//! and `title::validate_titles` over each manifest's layer titles.
//! Invariants: nothing panics; a parsed document serialises to bytes that
//! parse back to the same value and serialise to the same bytes; the sniffed
//! type of those bytes is the document's own; and a title the checks accept
//! is a relative path of plain components.
#![no_main]

use std::collections::HashSet;
use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use satchel_oci::digest;
use satchel_oci::manifest::{
    referrer_descriptor, sniff_media_type, validate_title, Descriptor, ImageIndex, ImageManifest,
    Manifest, MANIFEST_MEDIA_TYPES, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST,
};
use satchel_oci::title::{validate_titles, COMPONENT_MAX_BYTES, TOTAL_MAX_BYTES};

fn check_title(title: &str) {
    if validate_title(title).is_err() {
        return;
    }
    assert!(
        Path::new(title)
            .components()
            .all(|c| matches!(c, Component::Normal(_))),
        "accepted title {title:?} is not relative and plain"
    );
    assert!(
        title
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".."),
        "accepted title {title:?} has an empty, . or .. component"
    );
    assert!(!title.contains(['\0', '\\']), "accepted title {title:?}");
    assert!(!title.chars().any(|c| c.is_ascii_control()), "{title:?}");
    assert!(title.len() <= TOTAL_MAX_BYTES);
    assert!(title.split('/').all(|c| c.len() <= COMPONENT_MAX_BYTES));
}

/// A set the checks accept names no file twice and no file as a directory.
fn check_titles(titles: &[&str]) {
    if validate_titles(titles.iter().copied()).is_err() {
        return;
    }
    let set: HashSet<&str> = titles.iter().copied().collect();
    assert_eq!(set.len(), titles.len(), "accepted duplicates in {titles:?}");
    for title in titles {
        for (i, _) in title.match_indices('/') {
            assert!(!set.contains(&title[..i]), "accepted {titles:?}");
        }
    }
}

fn check_image(m: &ImageManifest) {
    let bytes = m.to_bytes();
    let back: ImageManifest = serde_json::from_slice(&bytes).expect("our bytes parse back");
    assert_eq!(&back, m);
    assert_eq!(back.to_bytes(), bytes);
    let own = m.media_type.as_deref().unwrap_or(MEDIA_TYPE_MANIFEST);
    assert_eq!(sniff_media_type(&bytes).expect("our bytes sniff"), own);
    let titles: Vec<&str> = m.layers.iter().filter_map(Descriptor::title).collect();
    titles.iter().for_each(|t| check_title(t));
    check_titles(&titles);
}

fn check_index(i: &ImageIndex) {
    let bytes = i.to_bytes();
    let back: ImageIndex = serde_json::from_slice(&bytes).expect("our bytes parse back");
    assert_eq!(&back, i);
    assert_eq!(back.to_bytes(), bytes);
    let own = i.media_type.as_deref().unwrap_or(MEDIA_TYPE_INDEX);
    assert_eq!(sniff_media_type(&bytes).expect("our bytes sniff"), own);
}

fuzz_target!(|data: &[u8]| {
    let desc = Descriptor::for_bytes(MEDIA_TYPE_MANIFEST, data);
    assert_eq!(desc.digest, digest::sha256(data));
    // As the layout store does: sniff, then parse as what was sniffed.
    if let Ok(media_type) = sniff_media_type(data) {
        if let Ok(m) = Manifest::parse(&media_type, data) {
            let _ = referrer_descriptor(desc, &m);
        }
    }
    for media_type in MANIFEST_MEDIA_TYPES {
        match Manifest::parse(media_type, data) {
            Ok(Manifest::Image(m)) => check_image(&m),
            Ok(Manifest::Index(i)) => check_index(&i),
            Err(_) => {}
        }
    }
    if let Ok(title) = std::str::from_utf8(data) {
        check_title(title);
    }
});

//! Layer titles (`org.opencontainers.image.title`) as file names: which a
//! pull may write, checked alone ([`validate_title`]) and as the whole set
//! of one artifact ([`validate_titles`]) before the first byte is written.
//!
//! This is the one copy of the rules in Rust: the daemon (through
//! `satchel_oci::title`) and the Rust client (`satchel_client::title`) both
//! call it and map [`Refused`] to their own error, INVALID_ARGUMENT. The
//! rules are the shared vectors of `clients/conformance/titles.json`, which
//! the other clients' tests read too.
//!
//! Architecture invariant: this crate has no dependencies, so a client can
//! check titles without the OCI crate and the OCI crate without gRPC.

use std::collections::HashSet;

/// The longest path component a title may have, in bytes of UTF-8 (the
/// `NAME_MAX` of common Linux file systems).
pub const COMPONENT_MAX_BYTES: usize = 255;

/// The longest title, in bytes of UTF-8 (Linux's `PATH_MAX`).
pub const TOTAL_MAX_BYTES: usize = 4096;

/// How much of a title an error message quotes: titles can be 4 KiB long
/// and messages must stay short.
const SHOWN_CHARS: usize = 64;

/// A refused title or set of titles; the message quotes the titles short
/// and escaped, so it is safe to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

impl Refused {
    /// The message, to carry into the caller's own error.
    pub fn into_message(self) -> String {
        self.0
    }
}

/// A title as error messages quote it: escaped by `Debug`, cut short.
pub fn shown(title: &str) -> String {
    if title.chars().count() <= SHOWN_CHARS {
        return format!("{title:?}");
    }
    let head: String = title.chars().take(SHOWN_CHARS).collect();
    format!("{head:?}… ({} bytes)", title.len())
}

fn refused(title: &str, why: &str) -> Refused {
    Refused(format!("refusing file name {}: {why}", shown(title)))
}

/// Checks that a layer title is safe to use as a relative output path: not
/// empty, not absolute, no empty, `.` or `..` components, no backslash, no
/// control character (C0 or DEL), at most [`COMPONENT_MAX_BYTES`] per
/// component and [`TOTAL_MAX_BYTES`] in all.
pub fn validate_title(title: &str) -> Result<(), Refused> {
    if title.is_empty() {
        return Err(refused(title, "empty"));
    }
    if title.len() > TOTAL_MAX_BYTES {
        return Err(refused(
            title,
            &format!("longer than {TOTAL_MAX_BYTES} bytes"),
        ));
    }
    if title.starts_with('/') {
        return Err(refused(title, "absolute"));
    }
    if title.contains('\\') {
        return Err(refused(title, "contains a backslash"));
    }
    if title.chars().any(|c| c.is_ascii_control()) {
        return Err(refused(title, "contains a control character"));
    }
    for component in title.split('/') {
        if component.is_empty() || component == "." || component == ".." {
            return Err(refused(title, "path traversal or empty component"));
        }
        if component.len() > COMPONENT_MAX_BYTES {
            return Err(refused(
                title,
                &format!("a path component is longer than {COMPONENT_MAX_BYTES} bytes"),
            ));
        }
    }
    Ok(())
}

/// Checks every title of one artifact, alone and against each other: no two
/// layers may write one file, and no title may be a directory of another
/// (`x` and `x/y`).
pub fn validate_titles<'a>(titles: impl IntoIterator<Item = &'a str>) -> Result<(), Refused> {
    let titles: Vec<&str> = titles.into_iter().collect();
    let mut seen = HashSet::with_capacity(titles.len());
    for title in &titles {
        validate_title(title)?;
        if !seen.insert(*title) {
            return Err(refused(title, "two layers are both named so"));
        }
    }
    for title in &titles {
        for (i, _) in title.match_indices('/') {
            let dir = &title[..i];
            if seen.contains(dir) {
                return Err(Refused(format!(
                    "refusing file names {} and {}: the first would be a file and a directory",
                    shown(dir),
                    shown(title)
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn vectors() -> Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../clients/conformance/titles.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).expect("titles.json"))
            .expect("titles.json is JSON")
    }

    /// `prefix` + `title` × `repeat` + `suffix`, as the README defines.
    fn title_of(v: &Value) -> String {
        let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
        let repeat = v["repeat"].as_u64().unwrap_or(1) as usize;
        s("prefix") + &s("title").repeat(repeat) + &s("suffix")
    }

    fn list<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
        v[key].as_array().unwrap_or_else(|| panic!("{key} list"))
    }

    fn titles_of(case: &Value) -> Vec<String> {
        case["titles"]
            .as_array()
            .expect("titles")
            .iter()
            .map(|t| t.as_str().expect("a title").to_string())
            .collect()
    }

    #[test]
    fn limits_match_the_shared_vectors() {
        let v = vectors();
        assert_eq!(
            v["limits"]["component_max_bytes"],
            COMPONENT_MAX_BYTES as u64
        );
        assert_eq!(v["limits"]["total_max_bytes"], TOTAL_MAX_BYTES as u64);
    }

    #[test]
    fn accepts_every_accept_vector() {
        let v = vectors();
        for case in list(&v, "accept") {
            let title = title_of(case);
            assert!(validate_title(&title).is_ok(), "{}", shown(&title));
        }
    }

    #[test]
    fn refuses_every_refuse_vector_with_a_short_message() {
        let v = vectors();
        for case in list(&v, "refuse") {
            let title = title_of(case);
            let err = validate_title(&title).unwrap_err();
            assert!(err.to_string().len() < 300, "{err}");
        }
    }

    #[test]
    fn refuses_every_conflict_vector() {
        let v = vectors();
        for case in list(&v, "conflicts") {
            let titles = titles_of(case);
            validate_titles(titles.iter().map(String::as_str))
                .expect_err(case["why"].as_str().unwrap_or("a conflict"));
        }
    }

    #[test]
    fn accepts_every_compatible_vector() {
        let v = vectors();
        for case in list(&v, "compatible") {
            let titles = titles_of(case);
            validate_titles(titles.iter().map(String::as_str))
                .unwrap_or_else(|e| panic!("{}: {e}", case["why"]));
        }
    }

    #[test]
    fn names_beyond_the_vectors() {
        for ok in ["a..b", "x.", "é"] {
            assert!(validate_title(ok).is_ok(), "{ok}");
        }
        for bad in ["./x", "a\\..\\x", "x/.", "a/b/", "\u{7f}"] {
            assert!(validate_title(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_refused_title_fails_the_whole_set() {
        validate_titles(["ok.txt", "../x"]).unwrap_err();
    }

    #[test]
    fn long_titles_are_quoted_short() {
        let long = "a".repeat(5000);
        let message = validate_title(&long).unwrap_err().to_string();
        assert!(message.len() < 200, "{message}");
        assert!(message.contains("5000 bytes"), "{message}");
    }
}

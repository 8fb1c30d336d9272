//! Which layer titles a pull may write: this client's own copy of the rules
//! the daemon applies (`clients/conformance/titles.json` holds the vectors
//! both must pass), checked again here before anything is written.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use tonic::Code;

use crate::Error;

/// The longest path component of a title, in bytes.
pub const COMPONENT_MAX_BYTES: usize = 255;

/// The longest title, in bytes.
pub const TOTAL_MAX_BYTES: usize = 4096;

/// A title as a message quotes it: escaped, at most 64 characters.
pub(crate) fn shown(title: &str) -> String {
    const MAX: usize = 64;
    if title.chars().count() <= MAX {
        return format!("{title:?}");
    }
    let head: String = title.chars().take(MAX).collect();
    format!("{head:?}… ({} bytes)", title.len())
}

fn refused(title: &str, why: &str) -> Error {
    Error::local(
        Code::InvalidArgument,
        format!("refusing to write {}: {why}", shown(title)),
    )
}

/// Refuses, with INVALID_ARGUMENT, a title that is not a plain relative
/// path: empty, absolute, with an empty, `.` or `..` part, a backslash, a
/// control character (C0 or DEL), a part over [`COMPONENT_MAX_BYTES`] or
/// more than [`TOTAL_MAX_BYTES`] in all.
pub fn check_title(title: &str) -> Result<(), Error> {
    if title.len() > TOTAL_MAX_BYTES {
        return Err(refused(title, "the name is too long"));
    }
    if title.contains('\\') || title.chars().any(|c| c.is_ascii_control()) {
        return Err(refused(
            title,
            "it holds a backslash or a control character",
        ));
    }
    for part in title.split('/') {
        if matches!(part, "" | "." | "..") {
            return Err(refused(title, "it is not a plain relative path"));
        }
        if part.len() > COMPONENT_MAX_BYTES {
            return Err(refused(title, "a part of the name is too long"));
        }
    }
    Ok(())
}

/// Maps a title to a path inside `out` after [`check_title`]. The path is
/// for showing and for callers that trust `out`; [`crate::pull`] itself
/// writes through directory handles, never through this path.
pub fn safe_path(out: &Path, title: &str) -> Result<PathBuf, Error> {
    check_title(title)?;
    Ok(title
        .split('/')
        .fold(out.to_path_buf(), |p, part| p.join(part)))
}

/// Checks the titles of one artifact alone and against each other: no two
/// may name one file, and none may be a directory of another.
pub fn check_titles<'a>(titles: impl IntoIterator<Item = &'a str>) -> Result<(), Error> {
    let titles: Vec<&str> = titles.into_iter().collect();
    let mut all = HashSet::new();
    for title in &titles {
        check_title(title)?;
        if !all.insert(*title) {
            return Err(refused(title, "two layers are both named so"));
        }
    }
    for title in &titles {
        if let Some(dir) = title
            .match_indices('/')
            .map(|(i, _)| &title[..i])
            .find(|dir| all.contains(dir))
        {
            return Err(refused(
                title,
                &format!("{} is a file of the same artifact", shown(dir)),
            ));
        }
    }
    Ok(())
}

/// The titles of the layers of a manifest (JSON), in order; layers without
/// a title are not files.
pub(crate) fn manifest_titles(content: &[u8]) -> Result<Vec<String>, Error> {
    let manifest: serde_json::Value = serde_json::from_slice(content).map_err(|e| {
        Error::local(
            Code::Internal,
            format!("the daemon sent a manifest that is not JSON: {e}"),
        )
    })?;
    let layers = match &manifest["layers"] {
        serde_json::Value::Array(layers) => layers.as_slice(),
        _ => &[],
    };
    Ok(layers
        .iter()
        .filter_map(|l| l["annotations"]["org.opencontainers.image.title"].as_str())
        .map(str::to_string)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn vectors() -> Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../conformance/titles.json");
        serde_json::from_str(&std::fs::read_to_string(path).expect("titles.json"))
            .expect("titles.json is JSON")
    }

    /// `prefix` + `title` × `repeat` + `suffix`, as the README defines.
    fn title_of(v: &Value) -> String {
        let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
        let repeat = v["repeat"].as_u64().unwrap_or(1) as usize;
        s("prefix") + &s("title").repeat(repeat) + &s("suffix")
    }

    fn cases<'a>(v: &'a Value, key: &str) -> &'a [Value] {
        v[key].as_array().expect("a list of vectors")
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
        for case in cases(&vectors(), "accept") {
            let title = title_of(case);
            check_title(&title).unwrap_or_else(|e| panic!("{}: {e}", shown(&title)));
        }
    }

    #[test]
    fn refuses_every_refuse_vector_as_invalid_argument() {
        for case in cases(&vectors(), "refuse") {
            let title = title_of(case);
            let err = check_title(&title).unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "{}", shown(&title));
        }
    }

    #[test]
    fn refuses_every_conflict_vector() {
        for case in cases(&vectors(), "conflicts") {
            let titles = titles_of(case);
            let err = check_titles(titles.iter().map(String::as_str))
                .expect_err(case["why"].as_str().unwrap_or("a conflict"));
            assert_eq!(err.code(), Code::InvalidArgument);
        }
    }

    #[test]
    fn accepts_every_compatible_vector() {
        for case in cases(&vectors(), "compatible") {
            let titles = titles_of(case);
            check_titles(titles.iter().map(String::as_str))
                .unwrap_or_else(|e| panic!("{}: {e}", case["why"]));
        }
    }

    #[test]
    fn safe_paths_stay_inside_the_output_directory() {
        let out = Path::new("/out");
        assert_eq!(
            safe_path(out, "dir/file.txt").unwrap(),
            Path::new("/out/dir/file.txt")
        );
        assert_eq!(
            safe_path(out, "..a/b..").unwrap(),
            Path::new("/out/..a/b..")
        );
        assert_eq!(
            safe_path(out, "a/../../x").unwrap_err().code(),
            Code::InvalidArgument
        );
    }

    #[test]
    fn manifest_titles_skip_untitled_layers() {
        let content = br#"{"layers":[{"annotations":{"org.opencontainers.image.title":"a"}},{"digest":"x"},{"annotations":{"org.opencontainers.image.title":"b/c"}}]}"#;
        assert_eq!(manifest_titles(content).unwrap(), ["a", "b/c"]);
        assert!(manifest_titles(b"{}").unwrap().is_empty());
        assert_eq!(manifest_titles(b"nope").unwrap_err().code(), Code::Internal);
    }
}

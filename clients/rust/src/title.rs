//! Which layer titles a pull may write: the rules of the `satchel-title`
//! crate (the same code the daemon runs; `clients/conformance/titles.json`
//! holds their vectors), checked again here before anything is written,
//! with this client's error (INVALID_ARGUMENT).

use std::path::{Path, PathBuf};

use tonic::Code;

use crate::Error;

pub use satchel_title::{COMPONENT_MAX_BYTES, TOTAL_MAX_BYTES};

pub(crate) use satchel_title::shown;

fn invalid(refused: satchel_title::Refused) -> Error {
    Error::local(Code::InvalidArgument, refused.into_message())
}

/// Refuses, with INVALID_ARGUMENT, a title that is not a plain relative
/// path: empty, absolute, with an empty, `.` or `..` part, a backslash, a
/// control character (C0 or DEL), a part over [`COMPONENT_MAX_BYTES`] or
/// more than [`TOTAL_MAX_BYTES`] in all.
pub fn check_title(title: &str) -> Result<(), Error> {
    satchel_title::validate_title(title).map_err(invalid)
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
    satchel_title::validate_titles(titles).map_err(invalid)
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

    #[test]
    fn refusals_are_invalid_argument() {
        assert_eq!(
            check_title("../x").unwrap_err().code(),
            Code::InvalidArgument
        );
        let err = check_titles(["x", "x/y"]).unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(check_titles(["a", "b/c"]).is_ok());
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

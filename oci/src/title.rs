//! Layer titles (`org.opencontainers.image.title`) as file names: which a
//! pull may write, checked alone ([`validate_title`]) and as the whole set
//! of one artifact ([`validate_titles`]) before the first byte is written.
//!
//! The rules live in the `satchel-title` crate, which the Rust client uses
//! too; this module gives them this crate's error (INVALID_ARGUMENT). Their
//! vectors are `clients/conformance/titles.json`, which every client's
//! tests read.

use crate::error::{Error, ErrorKind, Result};

pub use satchel_title::{COMPONENT_MAX_BYTES, TOTAL_MAX_BYTES};

fn invalid(refused: satchel_title::Refused) -> Error {
    Error::new(ErrorKind::InvalidArgument, refused.into_message())
}

/// Checks that a layer title is safe to use as a relative output path (see
/// [`satchel_title::validate_title`]).
pub fn validate_title(title: &str) -> Result<()> {
    satchel_title::validate_title(title).map_err(invalid)
}

/// Checks every title of one artifact, alone and against each other (see
/// [`satchel_title::validate_titles`]).
pub fn validate_titles<'a>(titles: impl IntoIterator<Item = &'a str>) -> Result<()> {
    satchel_title::validate_titles(titles).map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_invalid_argument_with_the_rules_message() {
        let err = validate_title("../x").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.to_string().starts_with("refusing file name"), "{err}");
        let err = validate_titles(["x", "x/y"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(validate_titles(["a", "b/c"]).is_ok());
    }
}

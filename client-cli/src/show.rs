//! Text from elsewhere (titles, annotations, references, the daemon's
//! errors, which can quote a registry) made safe for a terminal.
//!
//! [`esc`] turns every character a terminal would act on into a visible
//! escape: C0 controls and DEL (`\n`, `\t`, `\r`, else `\x1b` style), C1
//! controls U+0080–U+009F, and the bidirectional overrides and isolates
//! U+202A–U+202E and U+2066–U+2069 (`\u{202e}` style). Every text, tree and
//! table line goes through it; JSON output is escaped by serde_json.

use std::borrow::Cow;
use std::fmt::Write as _;

use satchel_client::pb;
use serde_json::{json, Value};

/// Whether a terminal could act on `c` rather than show it.
fn is_unsafe(c: char) -> bool {
    matches!(c, '\0'..='\x1f' | '\x7f' | '\u{80}'..='\u{9f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every character a terminal would act on written as a visible
/// escape; borrowed when there is none.
pub fn esc(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c <= '\x7f' && is_unsafe(c) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A referrer's fields in the JSON documents, but its own `referrers`.
pub fn referrer_fields(repo: &str, d: &pb::Descriptor) -> Value {
    json!({
        "reference": format!("{repo}@{}", d.digest),
        "mediaType": d.media_type,
        "digest": d.digest,
        "size": d.size,
        "artifactType": d.artifact_type,
        "annotations": d.annotations.iter().collect::<std::collections::BTreeMap<_, _>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for s in ["", "sbom.json", "ünïcødé/名前.json", "a\\b \"q\" ~"] {
            assert!(matches!(esc(s), Cow::Borrowed(b) if b == s), "{s}");
        }
    }

    #[test]
    fn c0_controls_and_del_become_visible() {
        assert_eq!(esc("\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m");
        assert_eq!(esc("a\nb\rc\td"), "a\\nb\\rc\\td");
        assert_eq!(esc("\0\x07\x7f"), "\\x00\\x07\\x7f");
    }

    #[test]
    fn c1_controls_become_visible() {
        // U+009B is CSI, which some terminals obey like ESC [.
        assert_eq!(esc("\u{9b}31m\u{80}\u{9f}"), "\\u{9b}31m\\u{80}\\u{9f}");
        assert_eq!(esc("\u{a0}"), "\u{a0}");
    }

    #[test]
    fn bidi_overrides_and_isolates_become_visible() {
        assert_eq!(esc("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        for c in [
            '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{2066}', '\u{2067}', '\u{2068}',
            '\u{2069}',
        ] {
            let shown = esc(&c.to_string()).into_owned();
            assert_eq!(shown, format!("\\u{{{:x}}}", c as u32));
        }
        assert_eq!(esc("\u{2029}\u{206a}"), "\u{2029}\u{206a}");
    }

    #[test]
    fn nothing_escaped_leaves_a_raw_control_byte() {
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        let shown = esc(&all);
        assert!(!shown.chars().any(is_unsafe));
        assert!(!shown.bytes().any(|b| b == 0x1b));
    }
}

//! Text that ends up in errors and logs: echoed input is cut short, so no
//! answer grows with what a caller or a registry sent.

/// How much of an echoed input an error quotes.
pub const ECHO_MAX: usize = 200;

/// `s` if it is at most `max` bytes; otherwise its first `max` bytes (cut
/// at a character boundary) and a note of how long it was.
pub fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &s[..end], s.len())
}

/// Where and how a JSON document failed to parse, without serde's own
/// message, which quotes the document's values (a hostile registry's text).
pub fn json_failure(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Data => "not of the expected shape",
        serde_json::error::Category::Eof => "cut short",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

/// `s` quoted as Rust's `{:?}` does, cut to [`ECHO_MAX`] bytes first.
pub fn quoted(s: &str) -> String {
    format!("{:?}", cut(s, ECHO_MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_at_a_character_boundary() {
        assert_eq!(cut("short", 10), "short");
        let long = "é".repeat(300);
        let out = cut(&long, 201);
        assert!(out.starts_with(&"é".repeat(100)));
        assert!(out.ends_with("… (600 bytes in all)"), "{out}");
        assert!(quoted(&"x".repeat(10_000)).len() < ECHO_MAX + 40);
    }
}

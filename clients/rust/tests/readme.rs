//! The README's Rust example is `examples/readme.rs` word for word (the
//! part between its markers), so what `cargo test` compiles and the tests
//! run is what the README shows.

#[test]
fn the_readme_example_is_examples_readme_rs() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{dir}/README.md")).unwrap();
    let example = std::fs::read_to_string(format!("{dir}/examples/readme.rs")).unwrap();
    let shown = readme
        .split_once("```rust\n")
        .and_then(|(_, rest)| rest.split_once("```\n"))
        .map(|(block, _)| block)
        .expect("a ```rust block in README.md");
    let kept = example
        .split_once("// README BEGIN\n")
        .and_then(|(_, rest)| rest.split_once("// README END\n"))
        .map(|(block, _)| block)
        .expect("README BEGIN/END markers in examples/readme.rs");
    assert_eq!(shown, kept, "README.md and examples/readme.rs differ");
    assert_eq!(
        readme.matches("```rust").count(),
        1,
        "one Rust block to check"
    );
}

//! The blob on disk is layout version 1, byte for byte: each configuration
//! in tests/v1/ compiles to the blob committed beside it, which the
//! version 1 writer produced before the layout got its one definition
//! (issue 13). A change here is a change of format, which needs a new
//! version number (docs/blob-format.md).
//!
//! default.toml is data/binfmt-dispatcher.toml as it was then, every-key.toml
//! uses every key, many.toml has colliding overrides, interpreters with
//! fallbacks, and 120 rules over 13 machines with path and interp globs.

use binfmt_dispatcher_config::{compile, Config};

fn check(name: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/v1");
    let toml = std::fs::read_to_string(dir.join(format!("{name}.toml"))).unwrap();
    let expected = std::fs::read(dir.join(format!("{name}.blob"))).unwrap();
    let got = compile(&Config::parse(name, &toml).unwrap()).unwrap();
    let first_difference = got.iter().zip(&expected).position(|(a, b)| a != b);
    assert!(
        got == expected,
        "{name}: {} bytes, expected {}; first difference at {first_difference:?}",
        got.len(),
        expected.len()
    );
}

#[test]
fn the_default_configuration_compiles_to_the_version_1_bytes() {
    check("default");
}

#[test]
fn every_key_compiles_to_the_version_1_bytes() {
    check("every-key");
}

#[test]
fn many_overrides_and_rules_compile_to_the_version_1_bytes() {
    check("many");
}

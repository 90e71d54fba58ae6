//! Bakes binfmtctl's copy of the built-in configuration (`locations::BAKED`),
//! the one the trampoline carries.

fn main() {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it");
    let root = std::path::Path::new(&manifest).join("../..");
    binfmt_dispatcher_config::bake_for_build_script(&root);
}

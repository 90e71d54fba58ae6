//! Bakes the default configuration into the trampoline and gives the
//! trampoline its link flags.
//!
//! The config compiler's sources are compiled into this script as they are
//! into the library, so the baked blob is exactly what `binfmtctl compile`
//! would write.

use std::path::PathBuf;

#[path = "src/blob.rs"]
#[allow(dead_code)]
mod blob;
#[path = "src/config/mod.rs"]
#[allow(dead_code, unused_imports)]
mod config;
#[path = "src/decide.rs"]
#[allow(dead_code)]
mod decide;
#[path = "src/launch.rs"]
#[allow(dead_code)]
mod launch;
#[path = "src/probe.rs"]
#[allow(dead_code)]
mod probe;

/// The variable naming another TOML file to bake (embedded images).
const BAKE_VAR: &str = "BINFMT_DISPATCHER_BAKE";

fn main() {
    println!("cargo:rerun-if-env-changed={BAKE_VAR}");
    println!("cargo:rerun-if-changed=src");
    let source = match std::env::var_os(BAKE_VAR) {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from("data/binfmt-dispatcher.toml"),
    };
    println!("cargo:rerun-if-changed={}", source.display());
    let text = std::fs::read_to_string(&source)
        .unwrap_or_else(|e| fail(&format!("{}: {e}", source.display())));
    let name = source.display().to_string();
    let blob = config::Config::parse(&name, &text)
        .and_then(|c| config::compile(&c))
        .unwrap_or_else(|e| fail(&e.to_string()));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("baked.blob"), blob).unwrap_or_else(|e| fail(&e.to_string()));

    // The trampoline: static, no libc, no start files, no PIE, no build id,
    // and the memory image of src/rt/link.ld.
    let script = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"))
        .join("src/rt/link.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    let script = format!("-Wl,-T,{}", script.display());
    for arg in [
        "-nostdlib",
        "-static",
        "-Wl,--no-pie",
        "-Wl,--build-id=none",
        "-Wl,-z,norelro",
        &script,
    ] {
        println!("cargo:rustc-link-arg-bin=binfmt-dispatcher={arg}");
    }
}

fn fail(message: &str) -> ! {
    eprintln!("error: cannot bake the default configuration: {message}");
    std::process::exit(1);
}

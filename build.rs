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
    let script = script.display().to_string();
    let target = std::env::var("TARGET").unwrap_or_default();
    println!(
        "cargo:rerun-if-env-changed=CARGO_TARGET_{}_LINKER",
        target.to_uppercase().replace(['-', '.'], "_")
    );
    let args: Vec<String> = if linker_is_a_c_driver() {
        // cc, gcc, clang: the driver adds start files and libc unless told
        // not to, and passes `-Wl,` arguments on to the linker.
        [
            "-nostdlib",
            "-static",
            "-Wl,--no-pie",
            "-Wl,--build-id=none",
            "-Wl,-z,norelro",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([format!("-Wl,-T,{script}")])
        .collect()
    } else {
        // ld.lld (rust-lld), ld: rustc adds no start files or libc for a
        // no_std binary with no native libraries; `--no-pie` overrides the
        // `-pie` rustc passes for the PIE-by-default targets.
        [
            "-static",
            "--no-pie",
            "--build-id=none",
            "-z",
            "norelro",
            "-T",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([script])
        .collect()
    };
    for arg in args {
        println!("cargo:rustc-link-arg-bin=binfmt-dispatcher={arg}");
    }
}

/// Whether rustc links through a C compiler driver (the default, `cc`) rather
/// than a bare linker (`rust-lld`, `ld.lld`, `ld`). Cargo hands the build
/// script the linker it resolved for the target (`target.<triple>.linker`,
/// `CARGO_TARGET_<TRIPLE>_LINKER`) as `RUSTC_LINKER`; `-C linker=` and
/// `-C linker-flavor=` in RUSTFLAGS are honoured too, the flavor winning.
fn linker_is_a_c_driver() -> bool {
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let flags: Vec<&str> = flags.split('\x1f').collect();
    let codegen = |name: &str| {
        let mut found = None;
        for (i, flag) in flags.iter().enumerate() {
            let value = match flag.strip_prefix("-C") {
                Some("") => flags.get(i + 1).copied(),
                Some(rest) => Some(rest),
                None => None,
            };
            if let Some(v) = value.and_then(|v| v.strip_prefix(name)) {
                if let Some(v) = v.strip_prefix('=') {
                    found = Some(v.to_string());
                }
            }
        }
        found
    };
    if let Some(flavor) = codegen("linker-flavor") {
        // gcc, gnu-cc, gnu-lld-cc: a driver; ld, ld.lld, gnu, gnu-lld: not.
        return flavor == "gcc" || flavor.ends_with("-cc");
    }
    let linker = codegen("linker").or_else(|| std::env::var("RUSTC_LINKER").ok());
    let Some(linker) = linker else {
        return true; // rustc's default for Linux targets: cc
    };
    let name = std::path::Path::new(&linker)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    !(name.contains("lld") || name == "ld" || name.ends_with("-ld") || name.starts_with("ld."))
}

fn fail(message: &str) -> ! {
    eprintln!("error: cannot bake the default configuration: {message}");
    std::process::exit(1);
}

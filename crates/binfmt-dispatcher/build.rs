//! Bakes the default configuration into the trampoline and gives the
//! trampoline its link flags.
//!
//! The configuration compiler is binfmtctl's (a build-dependency), so the
//! baked blob is exactly what `binfmtctl compile` would write.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    binfmt_dispatcher_config::bake_for_build_script(&manifest.join("../.."));

    // The trampoline: static, no libc, no start files, no PIE, no build id,
    // and the memory image of src/rt/link.ld.
    let script = manifest.join("src/rt/link.ld");
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

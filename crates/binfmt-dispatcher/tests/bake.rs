//! The trampoline as a file: static, libc-free, and carrying the config that
//! `BINFMT_DISPATCHER_BAKE` names.

use std::path::{Path, PathBuf};
use std::process::Command;

use binfmt_dispatcher_core::probe;

const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;

/// The `p_type` of every program header of a 64-bit little-endian ELF.
fn program_header_types(elf: &[u8]) -> Vec<u32> {
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[32..40].try_into().unwrap()) as usize;
    let (size, count) = (u16_at(54), u16_at(56));
    (0..count)
        .map(|i| {
            let at = phoff + i * size;
            u32::from_le_bytes(elf[at..at + 4].try_into().unwrap())
        })
        .collect()
}

#[test]
fn trampoline_is_static_without_libc() {
    let path = env!("CARGO_BIN_EXE_binfmt-dispatcher");
    let elf = std::fs::read(path).unwrap();
    let facts = probe::probe(&elf);
    assert_eq!(facts.format, probe::Format::Elf);
    assert_eq!(facts.kind, 2, "ET_EXEC: linked without PIE");
    let types = program_header_types(&elf);
    assert!(!types.contains(&PT_INTERP), "no dynamic loader");
    assert!(!types.contains(&PT_DYNAMIC), "no dynamic section");
    let text = String::from_utf8_lossy(&elf);
    assert!(!text.contains("__libc_start_main"), "no libc start-up");
}

/// A minimal aarch64 ELF header, enough for the dispatcher to decide.
fn aarch64_header(dir: &Path) -> PathBuf {
    let mut bytes =
        b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00".to_vec();
    bytes.resize(64, 0);
    let path = dir.join("foreign");
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn bake_variable_replaces_the_built_in_config() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bake");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("embedded.toml");
    std::fs::write(
        &config,
        "[interpreters.echo]\npath = \"/bin/echo\"\nargv = \"plain\"\n\n[[rules]]\narch = \"aarch64\"\ninterpreter = \"echo\"\n",
    )
    .unwrap();
    // A target directory of its own: the outer cargo holds the usual one.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bake-target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--bin", "binfmt-dispatcher"])
        .arg("--manifest-path")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .env("BINFMT_DISPATCHER_BAKE", &config)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "cargo build with BINFMT_DISPATCHER_BAKE failed"
    );
    let foreign = aarch64_header(&dir);
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    // Run by hand, with no cache anywhere: only the baked config can send
    // aarch64 binaries to /bin/echo.
    let out = Command::new(target.join("debug/binfmt-dispatcher"))
        .arg(&foreign)
        .args(["a", "b c"])
        .env_clear()
        .env("HOME", &home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{} a b c\n", foreign.display())
    );
}

//! The trampoline cross-built for aarch64 (and riscv64) with rust-lld, as the
//! README says, then run by hand under qemu-user: `qemu-aarch64-static
//! binfmt-dispatcher FILE ARGS...`. The emulated trampoline reads its own
//! auxv (qemu builds it, AT_PAGESZ included), decides, and its `execve` of
//! the interpreter goes to the host kernel, which runs the host's
//! qemu-aarch64-static or test interpreter natively.
//!
//! These tests need the rustup targets and qemu-user-static (scripts/test
//! installs both); without them they fail, they are never skipped.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use support::*;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const EM_AARCH64: u16 = 183;
const EM_RISCV: u16 = 243;

const QEMU_RISCV64: &str = "/usr/bin/qemu-riscv64-static";

/// Builds the trampoline for `triple` exactly as the README says (the
/// repository's .cargo/config.toml: rust-lld), once.
fn cross_trampoline(triple: &str) -> PathBuf {
    cross_build(triple, "binfmt-dispatcher", CrossLinker::Configured)
}

fn aarch64_trampoline() -> &'static Path {
    static T: OnceLock<PathBuf> = OnceLock::new();
    T.get_or_init(|| cross_trampoline("aarch64-unknown-linux-gnu"))
}

fn riscv64_trampoline() -> &'static Path {
    static T: OnceLock<PathBuf> = OnceLock::new();
    T.get_or_init(|| cross_trampoline("riscv64gc-unknown-linux-gnu"))
}

/// `(p_type, p_align)` of every program header of a 64-bit little-endian ELF.
fn program_headers(elf: &[u8]) -> Vec<(u32, u64)> {
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap());
    let phoff = u64_at(32) as usize;
    let (size, count) = (u16_at(54), u16_at(56));
    (0..count)
        .map(|i| {
            let at = phoff + i * size;
            let kind = u32::from_le_bytes(elf[at..at + 4].try_into().unwrap());
            (kind, u64_at(at + 48))
        })
        .collect()
}

/// Asserts `path` is a static, libc-free, non-PIE 64-bit LE ELF for `machine`
/// whose segments are aligned for pages up to 64 KiB.
fn assert_static_elf(path: &Path, machine: u16) {
    let elf = std::fs::read(path).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF", "{} is not ELF", path.display());
    assert_eq!((elf[4], elf[5]), (2, 1), "ELF64, little-endian");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]);
    assert_eq!(u16_at(16), 2, "ET_EXEC: linked without PIE");
    assert_eq!(u16_at(18), machine, "e_machine");
    let headers = program_headers(&elf);
    let types: Vec<u32> = headers.iter().map(|h| h.0).collect();
    assert!(!types.contains(&PT_INTERP), "no dynamic loader: {types:?}");
    assert!(
        !types.contains(&PT_DYNAMIC),
        "no dynamic section: {types:?}"
    );
    assert!(types.contains(&PT_LOAD), "{types:?}");
    if machine == EM_AARCH64 {
        // 16 KiB (Apple silicon) and 64 KiB kernels map it too.
        for &(kind, align) in &headers {
            assert!(
                kind != PT_LOAD || align >= 0x10000,
                "PT_LOAD aligned to {align:#x}, not 64 KiB"
            );
        }
    }
    let text = String::from_utf8_lossy(&elf);
    assert!(!text.contains("__libc_start_main"), "no libc start-up");
    assert!(!text.contains("GLIBC_"), "no glibc symbol versions");
}

/// Runs `qemu [qemu_args] trampoline args...` in a new user and mount
/// namespace in which the machine's cache directory is hidden, with only
/// PATH, `HOME` (maybe empty) and `env` in the environment: no
/// BINFMT_DISPATCHER_CACHE unless `env` sets it.
fn run_by_hand(
    qemu: &str,
    qemu_args: &[&str],
    trampoline: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Output {
    assert!(
        Path::new(qemu).is_file(),
        "{qemu} is missing: install qemu-user-static (these tests need it and are never skipped)"
    );
    let script = "if [ -d /var/cache/binfmt-dispatcher ]; then \
                  mount -t tmpfs none /var/cache/binfmt-dispatcher || exit 99; fi\n\
                  exec \"$@\"";
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--user",
        "--map-root-user",
        "--mount",
        "sh",
        "-c",
        script,
        "sh",
    ])
    .arg(qemu)
    .args(qemu_args)
    .arg(trampoline)
    .args(args)
    .env_clear()
    .env("PATH", "/usr/local/bin:/usr/bin:/bin")
    .env("HOME", "")
    .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("cannot run unshare")
}

fn busybox() -> String {
    busybox_arm64().to_str().unwrap().to_string()
}

#[test]
fn aarch64_trampoline_is_a_static_libc_free_aarch64_elf() {
    assert_static_elf(aarch64_trampoline(), EM_AARCH64);
}

#[test]
fn aarch64_trampoline_runs_busybox_with_zero_config() {
    let bb = busybox();
    let out = run_by_hand(
        QEMU_AARCH64,
        &[],
        aarch64_trampoline(),
        &[&bb, "echo", "a", "b"],
        &[],
    );
    assert!(out.status.success(), "{:?}\n{}", out.status, stderr(&out));
    assert_eq!(stdout(&out), "a b\n", "stderr:\n{}", stderr(&out));
    assert_eq!(stderr(&out), "");

    // The guest's arguments and exit status come through intact.
    let out = run_by_hand(
        QEMU_AARCH64,
        &[],
        aarch64_trampoline(),
        &[
            &bb,
            "sh",
            "-c",
            "echo \"$0\" \"$#\" \"$@\"; exit 3",
            "zero",
            "one",
            "two three",
        ],
        &[],
    );
    assert_eq!(stdout(&out), "zero 2 one two three\n", "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(3));
}

/// A cache sending aarch64 to the reporter with the plain convention, and
/// wrapping it in a muvm (another copy of the reporter) off 4 KiB pages.
fn plain_cache(tag: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = temp_dir(tag);
    let muvm = dir.join("muvm");
    std::fs::copy(reporter(), &muvm).unwrap();
    let toml = format!(
        "[muvm]\npath = \"{}\"\n\n\
         [interpreters.plain]\npath = \"{}\"\nargv = \"plain\"\nuse_muvm = true\n\n\
         [[rules]]\narch = \"aarch64\"\ninterpreter = \"plain\"\n",
        muvm.display(),
        reporter().display()
    );
    let cache = compile_cache(&dir, "plain", &toml);
    (dir, cache, muvm)
}

#[test]
fn aarch64_trampoline_follows_a_compiled_cache() {
    let (_dir, cache, _) = plain_cache("aarch64-plain");
    let bb = busybox();
    let out = run_by_hand(
        QEMU_AARCH64,
        &[],
        aarch64_trampoline(),
        &[&bb, "echo", "a b", ""],
        &[
            ("BINFMT_DISPATCHER_CACHE", cache.to_str().unwrap()),
            ("FOO", "bar"),
        ],
    );
    let report = report_of(&out);
    let reporter = reporter().to_str().unwrap();
    assert_eq!(report.argv, [reporter, &bb, "echo", "a b", ""]);
    assert!(
        report.env.iter().any(|e| e == "FOO=bar"),
        "{:?}",
        report.env
    );
}

#[test]
fn cross_trampolines_follow_an_embedded_configuration() {
    // `compile --embed` on the aarch64 and riscv64 trampolines: the
    // emulated trampoline finds the grown segment through its AT_PHDR.
    let (dir, _, _) = plain_cache("cross-embedded");
    // Longer than the built-in configuration, and than the symbols and
    // section headers compile --embed drops: only the grown segment holds it.
    let toml = dir.join("plain.toml");
    let mut text = std::fs::read_to_string(&toml).unwrap();
    for i in 0..2000 {
        text += &format!("[binaries.b{i}]\npath = \"/opt/b{i}\"\ninterpreter = \"plain\"\n");
    }
    std::fs::write(&toml, text).unwrap();
    let bb = busybox();
    let reporter = reporter().to_str().unwrap();
    for (qemu, trampoline) in [
        (QEMU_AARCH64, aarch64_trampoline()),
        (QEMU_RISCV64, riscv64_trampoline()),
    ] {
        let embedded = dir.join(format!(
            "embedded-{}",
            Path::new(qemu).file_name().unwrap().to_str().unwrap()
        ));
        let out = Command::new(BINFMTCTL)
            .arg("compile")
            .arg("--embed")
            .arg(trampoline)
            .arg("--output")
            .arg(&embedded)
            .arg(&toml)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let grown = std::fs::metadata(&embedded).unwrap().len();
        assert!(
            grown > std::fs::metadata(trampoline).unwrap().len(),
            "{grown}"
        );
        let out = run_by_hand(qemu, &[], &embedded, &[&bb, "echo", "x"], &[]);
        assert_eq!(report_of(&out).argv, [reporter, &bb, "echo", "x"], "{qemu}");
    }
}

#[test]
fn aarch64_trampoline_wraps_in_muvm_off_4k_pages() {
    // qemu-user's -p sets the page size the guest is told in AT_PAGESZ: the
    // trampoline sees 16 KiB or 64 KiB pages as on Apple silicon or a 64K
    // kernel, and wraps the interpreter marked use_muvm in muvm.
    let (_dir, cache, muvm) = plain_cache("aarch64-muvm");
    let bb = busybox();
    let reporter = reporter().to_str().unwrap();
    let muvm = muvm.to_str().unwrap();
    let env = [("BINFMT_DISPATCHER_CACHE", cache.to_str().unwrap())];
    for (qemu_args, want) in [
        (&[][..], vec![reporter, &bb, "echo", "x"]),
        (&["-p", "4096"][..], vec![reporter, &bb, "echo", "x"]),
        (
            &["-p", "16384"][..],
            vec![muvm, "--", reporter, &bb, "echo", "x"],
        ),
        (
            &["-p", "65536"][..],
            vec![muvm, "--", reporter, &bb, "echo", "x"],
        ),
    ] {
        let out = run_by_hand(
            QEMU_AARCH64,
            qemu_args,
            aarch64_trampoline(),
            &[&bb, "echo", "x"],
            &env,
        );
        assert_eq!(report_of(&out).argv, want, "qemu {qemu_args:?}");
    }
}

#[test]
fn riscv64_trampoline_is_static_and_runs_busybox() {
    let trampoline = riscv64_trampoline();
    assert_static_elf(trampoline, EM_RISCV);
    let bb = busybox();
    let out = run_by_hand(QEMU_RISCV64, &[], trampoline, &[&bb, "echo", "a", "b"], &[]);
    assert!(out.status.success(), "{:?}\n{}", out.status, stderr(&out));
    assert_eq!(stdout(&out), "a b\n", "stderr:\n{}", stderr(&out));
}

/// Runs the aarch64 trampoline by hand under `qemu-aarch64-static
/// qemu_args`, with the built-in configuration, in a mount namespace whose
/// /usr/bin holds only qemu and the reporter as each of `stand_ins`, and
/// whose /usr/share holds FEX's RootFS when `rootfs`: an arm64 machine
/// with FEX, box64 or muvm installed, as the original's users have it.
fn run_installed(qemu_args: &[&str], stand_ins: &[&str], rootfs: bool, args: &[&str]) -> Output {
    run_installed_with(qemu_args, stand_ins, rootfs, args, &[])
}

/// `run_installed` with `env` added; with any, the helper
/// (/usr/libexec/binfmt-dispatcher/missing-interpreter) is the reporter.
fn run_installed_with(
    qemu_args: &[&str],
    stand_ins: &[&str],
    rootfs: bool,
    args: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let stage = temp_dir("installed");
    let bin = stage.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(QEMU_AARCH64, bin.join("qemu-aarch64-static")).unwrap();
    for name in stand_ins {
        std::fs::copy(reporter(), bin.join(name)).unwrap();
    }
    let share = stage.join("share");
    std::fs::create_dir_all(share.join("fex-emu/RootFS")).unwrap();
    if rootfs {
        std::fs::write(share.join("fex-emu/RootFS/default.erofs"), b"").unwrap();
    }
    std::fs::copy(aarch64_trampoline(), stage.join("dispatcher")).unwrap();
    let libexec = stage.join("libexec");
    std::fs::create_dir_all(libexec.join("binfmt-dispatcher")).unwrap();
    let helper = if env.is_empty() {
        String::new()
    } else {
        let to = libexec.join("binfmt-dispatcher/missing-interpreter");
        std::fs::copy(reporter(), to).unwrap();
        format!(
            "mount --bind {} /usr/libexec\n",
            sh_quote(libexec.to_str().unwrap())
        )
    };
    // /usr/bin replaced last: after it, only what the stage put there runs.
    let script = format!(
        "set -e\n\
         if [ -d /var/cache/binfmt-dispatcher ]; then mount -t tmpfs none /var/cache/binfmt-dispatcher; fi\n\
         mount --bind {share} /usr/share\n\
         {helper}\
         mount --bind {bin} /usr/bin\n\
         exec /usr/bin/qemu-aarch64-static \"$@\"",
        share = sh_quote(share.to_str().unwrap()),
        bin = sh_quote(bin.to_str().unwrap()),
    );
    Command::new("unshare")
        .args([
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            &script,
            "sh",
        ])
        .args(qemu_args)
        .arg(stage.join("dispatcher"))
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin")
        .env("HOME", "")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("cannot run unshare")
}

/// An x86-64 ELF header: foreign to the emulated arm64 host.
fn x86_64_binary() -> PathBuf {
    let dir = temp_dir("x86_64-binary");
    let mut header =
        b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00".to_vec();
    header.resize(64, 0);
    let path = dir.join("game.x86_64");
    std::fs::write(&path, header).unwrap();
    path
}

#[test]
fn x86_programs_go_to_fex_in_muvm_off_4k_pages_with_no_configuration() {
    let game = x86_64_binary();
    let game = game.to_str().unwrap();
    let everything = ["FEX", "FEXInterpreter", "box64", "muvm"];
    for (pages, want) in [
        ("4096", vec!["/usr/bin/FEX"]),
        ("16384", vec!["/usr/bin/muvm", "--", "/usr/bin/FEX"]),
        ("65536", vec!["/usr/bin/muvm", "--", "/usr/bin/FEX"]),
    ] {
        let out = run_installed(&["-p", pages], &everything, true, &[game, "--fullscreen"]);
        let argv = report_of(&out).argv;
        assert_eq!(argv[..want.len()], want, "pages {pages}: {argv:?}");
        assert_eq!(argv.last().map(String::as_str), Some("--fullscreen"));
    }
    // The older name, when only it is installed.
    let out = run_installed(&["-p", "16384"], &["FEXInterpreter", "muvm"], true, &[game]);
    let argv = report_of(&out).argv;
    assert_eq!(
        argv[..3],
        ["/usr/bin/muvm", "--", "/usr/bin/FEXInterpreter"]
    );
    // No RootFS: FEX cannot run anything, box64 does (in muvm).
    let out = run_installed(&["-p", "16384"], &everything, false, &[game]);
    let argv = report_of(&out).argv;
    assert_eq!(argv[..3], ["/usr/bin/muvm", "--", "/usr/bin/box64"]);
    // muvm needed but missing: said, and exit 127.
    let out = run_installed(&["-p", "16384"], &["FEX"], true, &[game]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(127), "{err}");
    assert!(err.contains("fex (/usr/bin/FEX): muvm not found"), "{err}");
    // Off a terminal at a display, the helper shows that line; it is told
    // of nothing to install (FEX is installed, its hint does not bring
    // muvm), and without a display it is not run at all.
    let display = [("DISPLAY", ":0")];
    let out = run_installed_with(&["-p", "16384"], &["FEX"], true, &[game], &display);
    let helper = report_of(&out);
    let line = err.trim_end().strip_prefix("binfmt-dispatcher: ").unwrap();
    let var = |key: &str| {
        helper
            .env
            .iter()
            .find_map(|e| e.strip_prefix(key))
            .map(str::to_owned)
    };
    assert_eq!(
        helper.argv[0],
        "/usr/libexec/binfmt-dispatcher/missing-interpreter"
    );
    assert_eq!(var("BINFMT_DISPATCHER_FAILURE=").as_deref(), Some(line));
    assert_eq!(var("BINFMT_DISPATCHER_STATUS=").as_deref(), Some("127"));
    assert_eq!(var("BINFMT_DISPATCHER_MISSING=").as_deref(), Some(""));
    let no_display = [("LANG", "C")];
    let out = run_installed_with(&["-p", "16384"], &["FEX"], true, &[game], &no_display);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
}

#[test]
fn trampolines_run_a_bundled_static_pie_the_root_lacks() {
    // The loader of bundled interpreters (issue 15) on x86_64 natively,
    // aarch64 with 4, 16 and 64 KiB pages, and riscv64: a reporter built by
    // each gcc as a static PIE is bundled by its path and that path is
    // then hidden (a tmpfs over its directory), as a foreign container's
    // root lacks the host's qemu. It must get the argv and environment the
    // interpreter's file would, and no descriptor of the trampoline's.
    let bb = busybox();
    let cases = [
        (None, "4096", Path::new(dispatcher()), "gcc"),
        (
            Some(QEMU_AARCH64),
            "4096",
            aarch64_trampoline(),
            "aarch64-linux-gnu-gcc",
        ),
        (
            Some(QEMU_AARCH64),
            "16384",
            aarch64_trampoline(),
            "aarch64-linux-gnu-gcc",
        ),
        (
            Some(QEMU_AARCH64),
            "65536",
            aarch64_trampoline(),
            "aarch64-linux-gnu-gcc",
        ),
        (
            Some(QEMU_RISCV64),
            "4096",
            riscv64_trampoline(),
            "riscv64-linux-gnu-gcc",
        ),
    ];
    for (qemu, page, trampoline, cc) in cases {
        let dir = temp_dir("bundled-pie");
        let gone = dir.join("gone");
        std::fs::create_dir(&gone).unwrap();
        let interp = gone.join("interp");
        std::fs::copy(reporter_static_pie(cc), &interp).unwrap();
        let bundled = dir.join("bundled");
        let made = Command::new(BINFMTCTL)
            .arg("bundle")
            .arg(trampoline)
            .arg("--output")
            .arg(&bundled)
            .args(["--binfmt-misc", "/nonexistent"])
            .arg(&interp)
            .output()
            .unwrap();
        assert!(made.status.success(), "{cc}: {}", stderr(&made));
        let toml = format!(
            "[interpreters.r]\npath = \"{}\"\nargv = \"plain\"\n\n\
             [[rules]]\narch = \"aarch64\"\ninterpreter = \"r\"\n",
            interp.display()
        );
        let cache = compile_cache(&dir, "bundle", &toml);
        let run = |hidden: Option<&Path>, program: &Path| {
            let hide = hidden.map_or(String::new(), |d| {
                format!("mount -t tmpfs none {} || exit 99\n", d.display())
            });
            let mut cmd = Command::new("unshare");
            cmd.args(["--user", "--map-root-user", "--mount", "sh", "-c"]);
            cmd.arg(format!("{hide}exec \"$@\"")).arg("sh");
            if let Some(qemu) = qemu {
                cmd.args([qemu, "-p", page]);
            }
            cmd.arg(program)
                .args([&bb, "echo", "a b", ""])
                .env_clear()
                .env("BINFMT_DISPATCHER_CACHE", &cache)
                .env("FOO", "bar")
                .output()
                .unwrap()
        };
        let out = run(Some(&gone), &bundled);
        // The control: the reporter run as it is, for the descriptors it
        // inherits (the test's own) and qemu's.
        let control = report_of(&run(None, &interp));
        let report = report_of(&out);
        let interp = interp.to_str().unwrap();
        assert_eq!(report.argv, [interp, &bb, "echo", "a b", ""], "{cc} {page}");
        let cache = format!("BINFMT_DISPATCHER_CACHE={}", cache.display());
        // sh, which hides the interpreter's directory, adds PWD; qemu-user
        // passes the environment in an order of its own.
        let mut env: Vec<&str> = report
            .env
            .iter()
            .map(String::as_str)
            .filter(|e| !e.starts_with("PWD="))
            .collect();
        env.sort();
        assert_eq!(env, [cache.as_str(), "FOO=bar"], "{cc} {page}");
        assert_eq!(report.fds, control.fds, "{cc} {page}: descriptors");
    }
}

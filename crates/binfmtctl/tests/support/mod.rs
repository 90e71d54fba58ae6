//! Shared helpers of the integration tests: a fake interpreter that reports
//! what it received, an exact-argv launcher, a tiny aarch64 binary, cache
//! compilation, and a private binfmt_misc instance per test (binfmt_misc is
//! per user namespace since Linux 6.7: nothing touches the machine's).

#![allow(dead_code)]

#[allow(unused_imports)]
pub use binfmtctl::strace;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The companion tool.
pub const BINFMTCTL: &str = env!("CARGO_BIN_EXE_binfmtctl");
/// The workspace: data/, docs/, scripts/.
pub const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// The trampoline under test: built beside binfmtctl by `cargo test` at the
/// workspace root (the trampoline's crate has a test of its own, so cargo
/// builds its binary too).
pub fn dispatcher() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = Path::new(BINFMTCTL).with_file_name("binfmt-dispatcher");
        assert!(
            path.exists(),
            "{} is not built: run `cargo test` at the workspace root",
            path.display()
        );
        path.display().to_string()
    })
}

/// qemu's binfmt_misc magic for aarch64 ELF executables, as written to
/// `register` (binfmt_misc decodes the `\x` escapes itself).
pub const AARCH64_MAGIC: &str =
    r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00";
/// qemu's binfmt_misc mask for aarch64.
pub const AARCH64_MASK: &str =
    r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff";

/// Where qemu-user-static's aarch64 emulator is.
pub const QEMU_AARCH64: &str = "/usr/bin/qemu-aarch64-static";

/// A fresh empty directory below `CARGO_TARGET_TMPDIR`.
pub fn temp_dir(tag: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{tag}-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Compiles one C helper from tests/support into `CARGO_TARGET_TMPDIR`.
fn compile_c(name: &str) -> PathBuf {
    compile_c_with("cc", name, &[], name)
}

/// Compiles tests/support/`source`.c with `cc -static` and `flags` into
/// `CARGO_TARGET_TMPDIR`/support-bin/`out`-PID.
fn compile_c_with(cc: &str, source: &str, flags: &[&str], out: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/support/{source}.c"));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("support-bin");
    fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("{out}-{}", std::process::id()));
    // A static PIE when asked for (-static-pie), else a static executable.
    let link = if flags.contains(&"-static-pie") {
        "-O2"
    } else {
        "-static"
    };
    let status = Command::new(cc)
        .args([link, "-O2"])
        .args(flags)
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cc} to build {}: {e}", src.display()));
    assert!(status.success(), "{cc} -static failed on {}", src.display());
    out
}

/// tests/support/whoami.c built for aarch64 (with the cross gcc scripts/test
/// installs), saying `tag` first: a real foreign program that reports its
/// credentials, `/proc/self/exe` and argv.
pub fn whoami_aarch64(tag: &str) -> PathBuf {
    let define = format!("-DTAG=\"{tag}\"");
    compile_c_with(
        "aarch64-linux-gnu-gcc",
        "whoami",
        &[&define],
        &format!("whoami-{tag}"),
    )
}

/// A reporter built by `cc` (the host's or a cross gcc) as a static PIE,
/// the kind of program `binfmtctl bundle` carries (qemu-user-static's
/// emulators are static PIEs): tests/support/reporter.c with glibc, or for
/// riscv64, whose glibc 2.36 cannot link static PIEs, tests/support/tiny_pie.c.
pub fn reporter_static_pie(cc: &str) -> PathBuf {
    require_tool(
        &format!("/usr/bin/{cc}"),
        "the cross gcc scripts/test installs",
    );
    let out = format!("reporter-pie-{cc}");
    if cc.starts_with("riscv64") {
        let flags = ["-static-pie", "-nostdlib", "-ffreestanding", "-fPIE"];
        let link = ["-Wl,--no-relax", "-Wl,--no-dynamic-linker"];
        return compile_c_with(cc, "tiny_pie", &[&flags[..], &link[..]].concat(), &out);
    }
    compile_c_with(cc, "reporter", &["-static-pie"], &out)
}

/// Panics with a clear message unless `path` is installed (the tests that
/// need it are never skipped: scripts/test installs `package`).
pub fn require_tool(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: install {package} (scripts/test does; these tests are never skipped)"
    );
}

/// tests/support/client.c built for aarch64 Linux with the cross gcc: a
/// real foreign program that prints its argv, its own path and stdin and
/// exits with `CLIENT_EXIT`.
pub fn client_aarch64() -> PathBuf {
    require_tool("/usr/bin/aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu");
    compile_c_with("aarch64-linux-gnu-gcc", "client", &[], "client-aarch64")
}

/// tests/support/client.c built for 64-bit Windows with mingw-w64 (a
/// PE32+ console program for Wine), with `wmain` for UTF-16 arguments.
pub fn client_windows() -> PathBuf {
    const MINGW: &str = "/usr/bin/x86_64-w64-mingw32-gcc";
    require_tool(MINGW, "gcc-mingw-w64-x86-64-win32");
    // mingw's gcc adds .exe to the output's name.
    let out = compile_c_with(MINGW, "client", &["-municode"], "client-windows");
    out.with_extension("exe")
}

/// tests/support/Client.cs compiled by Mono's mcs into `out`: a .NET
/// assembly (PE32 with a CLR header) with client.c's output.
pub fn client_dotnet(out: &Path) {
    require_tool("/usr/bin/mcs", "mono-mcs");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/Client.cs");
    let status = Command::new("mcs")
        .arg(format!("-out:{}", out.display()))
        .arg(&src)
        .stdout(Stdio::null())
        .status()
        .expect("cannot run mcs");
    assert!(status.success(), "mcs failed on {}", src.display());
}

/// The symlink swapper (tests/support/flip.c), compiled once.
pub fn flipper() -> &'static Path {
    static F: OnceLock<PathBuf> = OnceLock::new();
    F.get_or_init(|| compile_c("flip"))
}

/// The fake interpreter (tests/support/reporter.c), compiled once.
pub fn reporter() -> &'static Path {
    static R: OnceLock<PathBuf> = OnceLock::new();
    R.get_or_init(|| compile_c("reporter"))
}

/// The FEX stand-in (tests/support/fex.c): FEX's binfmt_misc decisions,
/// taken from what FEX reads; compiled once.
pub fn fex_stand_in() -> &'static Path {
    static F: OnceLock<PathBuf> = OnceLock::new();
    F.get_or_init(|| compile_c("fex"))
}

/// The exact-argv launcher (tests/support/launch.c), compiled once.
pub fn launcher() -> &'static Path {
    static L: OnceLock<PathBuf> = OnceLock::new();
    L.get_or_init(|| compile_c("launch"))
}

/// What the reporter received.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub fds: Vec<u32>,
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'n' => {
                    out.push(b'\n');
                    i += 2;
                }
                b'\\' => {
                    out.push(b'\\');
                    i += 2;
                }
                b'x' if i + 3 < b.len() => {
                    out.push(u8::from_str_radix(&s[i + 2..i + 4], 16).unwrap());
                    i += 4;
                }
                _ => panic!("bad escape in report line {s:?}"),
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses the reporter's stdout. Panics on a line it does not recognise.
pub fn parse_report(stdout: &[u8]) -> Report {
    let text = String::from_utf8_lossy(stdout);
    let mut r = Report::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("argv[") {
            let (index, value) = rest.split_once("]=").expect("argv line");
            assert_eq!(
                index.parse::<usize>().unwrap(),
                r.argv.len(),
                "argv out of order"
            );
            r.argv.push(unescape(value));
        } else if let Some(e) = line.strip_prefix("env:") {
            r.env.push(unescape(e));
        } else if let Some(fd) = line.strip_prefix("fd:") {
            r.fds.push(fd.parse().unwrap());
        } else {
            panic!("not a reporter line: {line:?} in {text}");
        }
    }
    r
}

/// Parses a run's stdout as a report, first checking it succeeded.
pub fn report_of(out: &Output) -> Report {
    assert!(
        out.status.success(),
        "run failed: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let r = parse_report(&out.stdout);
    assert!(
        !r.argv.is_empty(),
        "the reporter did not run; stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    r
}

/// Compiles `toml` with `binfmtctl compile` into `dir/NAME.cache`.
pub fn compile_cache(dir: &Path, name: &str, toml: &str) -> PathBuf {
    let src = dir.join(format!("{name}.toml"));
    let cache = dir.join(format!("{name}.cache"));
    fs::write(&src, toml).unwrap();
    let out = Command::new(BINFMTCTL)
        .arg("compile")
        .arg("--output")
        .arg(&cache)
        .arg(&src)
        .env_remove("BINFMT_DISPATCHER_CACHE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "binfmtctl compile failed:\n{}\n{toml}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        cache.is_file(),
        "binfmtctl compile wrote no {}",
        cache.display()
    );
    cache
}

/// How [`cross_build`] links.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum CrossLinker {
    /// The repository's .cargo/config.toml (rust-lld: the trampoline).
    Configured,
    /// `TRIPLE-gcc` with Debian's cross triple (binfmtctl: std and libc).
    Gcc(&'static str),
}

/// Builds `bin` for `triple` in a target directory of its own, since the
/// outer cargo holds the usual one; once per binary. The trampoline is
/// built as it ships (release), binfmtctl as the tests build it (debug,
/// which compiles faster).
pub fn cross_build(triple: &str, bin: &str, linker: CrossLinker) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let profile = match linker {
        CrossLinker::Configured => "release",
        CrossLinker::Gcc(_) => "debug",
    };
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cross-target");
    let binary = target.join(triple).join(profile).join(bin);
    let key = format!("{triple}/{profile}/{bin}");
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if built.contains(&key) {
        return binary;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let linker_var = format!(
        "CARGO_TARGET_{}_LINKER",
        triple.to_uppercase().replace('-', "_")
    );
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--target", triple, "--bin", bin])
        .arg("--manifest-path")
        .arg(Path::new(ROOT).join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("BINFMT_DISPATCHER_BAKE")
        .stdin(Stdio::null());
    match linker {
        CrossLinker::Configured => cmd.arg("--release").env_remove(&linker_var),
        CrossLinker::Gcc(gnu) => cmd.env(&linker_var, format!("{gnu}-gcc")),
    };
    let out = cmd.output().expect("cannot run cargo");
    assert!(
        out.status.success(),
        "cargo build --target {triple} --bin {bin} ({profile}) failed \\
         (is the target installed? rustup target add {triple}):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(binary.is_file(), "no {}", binary.display());
    built.push(key);
    binary
}

/// The bytes of a minimal static aarch64 ELF64 executable: one PT_LOAD of
/// the whole file at 0x400000 whose code is `exit(42)`. Not runnable
/// natively on x86_64, so the kernel consults binfmt_misc; qemu runs it.
pub fn aarch64_elf() -> Vec<u8> {
    const BASE: u64 = 0x40_0000;
    const SIZE: usize = 4096;
    let code_off = 64 + 56;
    let mut f = vec![0u8; SIZE];
    f[..16].copy_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    f[16..18].copy_from_slice(&2u16.to_le_bytes()); // e_type: ET_EXEC
    f[18..20].copy_from_slice(&183u16.to_le_bytes()); // e_machine: EM_AARCH64
    f[20..24].copy_from_slice(&1u32.to_le_bytes()); // e_version
    f[24..32].copy_from_slice(&(BASE + code_off as u64).to_le_bytes()); // e_entry
    f[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    f[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    f[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    f[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
    f[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
    let ph = &mut f[64..120];
    ph[0..4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    ph[4..8].copy_from_slice(&5u32.to_le_bytes()); // R+X
    ph[16..24].copy_from_slice(&BASE.to_le_bytes()); // p_vaddr
    ph[24..32].copy_from_slice(&BASE.to_le_bytes()); // p_paddr
    ph[32..40].copy_from_slice(&(SIZE as u64).to_le_bytes()); // p_filesz
    ph[40..48].copy_from_slice(&(SIZE as u64).to_le_bytes()); // p_memsz
    ph[48..56].copy_from_slice(&0x1000u64.to_le_bytes()); // p_align
    let code: [u32; 3] = [
        0xd280_0540, // movz x0, #42
        0xd280_0ba8, // movz x8, #93 (exit)
        0xd400_0001, // svc #0
    ];
    for (i, insn) in code.iter().enumerate() {
        f[code_off + 4 * i..code_off + 4 * i + 4].copy_from_slice(&insn.to_le_bytes());
    }
    f
}

/// Writes `bytes` at `path`, mode 0755.
pub fn write_exec(path: &Path, bytes: &[u8]) {
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Writes the aarch64 binary at `path`, mode 0755.
pub fn write_foreign(path: &Path) {
    write_exec(path, &aarch64_elf());
}

/// `s` quoted for sh.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// One binfmt_misc registration: name, magic, mask, interpreter, flags.
pub type Entry<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str);

/// The dispatcher registered for aarch64 ELF with `flags`.
pub fn dispatcher_entry(flags: &str) -> Entry<'_> {
    (
        "dispatch-aarch64",
        AARCH64_MAGIC,
        AARCH64_MASK,
        dispatcher(),
        flags,
    )
}

/// Panics with a clear message unless qemu-aarch64-static is installed.
pub fn require_qemu() {
    assert!(
        Path::new(QEMU_AARCH64).is_file(),
        "{QEMU_AARCH64} is missing: install qemu-user-static (these tests need it and are never skipped)"
    );
}

/// Runs `script` with sh in a new user and mount namespace with its own
/// binfmt_misc holding `entries`, in `cwd`, with only PATH, HOME=`cwd` and
/// `env` in the environment. A system cache under /var/cache is hidden.
pub fn run_in_private_binfmt_in(
    cwd: &Path,
    entries: &[Entry<'_>],
    script: &str,
    env: &[(&str, &str)],
) -> Output {
    let setup = private_binfmt_script(entries, script);
    let mut cmd = Command::new("unshare");
    cmd.args(["--user", "--map-root-user", "--mount", "sh", "-c"])
        .arg(&setup)
        .current_dir(cwd)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("HOME", cwd)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("cannot run unshare");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("/proc/sys/fs/binfmt_misc"),
        "setting up the private binfmt_misc failed:\n{stderr}"
    );
    out
}

/// `script` after the shell lines that mount a binfmt_misc (at
/// /proc/sys/fs/binfmt_misc, in a new user namespace: a private one),
/// register `entries` in it and hide a system cache under /var/cache.
pub fn private_binfmt_script(entries: &[Entry<'_>], script: &str) -> String {
    let mut setup = String::from(
        "set -e\n\
         mount -t binfmt_misc none /proc/sys/fs/binfmt_misc\n\
         if [ -d /var/cache/binfmt-dispatcher ]; then mount -t tmpfs none /var/cache/binfmt-dispatcher; fi\n",
    );
    for (name, magic, mask, interp, flags) in entries {
        let line = format!(":{name}:M::{magic}:{mask}:{interp}:{flags}");
        setup += &format!(
            "printf '%s\\n' {} > /proc/sys/fs/binfmt_misc/register\n",
            sh_quote(&line)
        );
    }
    setup + "set +e\n" + script
}

/// [`run_in_private_binfmt_in`] in a fresh temporary directory.
pub fn run_in_private_binfmt(entries: &[Entry<'_>], script: &str, env: &[(&str, &str)]) -> Output {
    run_in_private_binfmt_in(&temp_dir("binfmt"), entries, script, env)
}

/// Text of stdout.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Text of stderr.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The arm64 static busybox, found in or fetched into
/// `target/test-fixtures/busybox-arm64` (apt, as root, like CI), once.
pub fn busybox_arm64() -> &'static Path {
    static B: OnceLock<PathBuf> = OnceLock::new();
    B.get_or_init(|| fetch_busybox("arm64"))
}

/// Debian's static busybox for s390x (big-endian), as [`busybox_arm64`].
pub fn busybox_s390x() -> &'static Path {
    static B: OnceLock<PathBuf> = OnceLock::new();
    B.get_or_init(|| fetch_busybox("s390x"))
}

/// Debian's busybox-static for `arch` at `target/test-fixtures/busybox-ARCH`,
/// fetched there unless it is.
fn fetch_busybox(arch: &str) -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR has a parent")
        .to_path_buf();
    let fixtures = target.join("test-fixtures");
    let busybox = fixtures.join(format!("busybox-{arch}"));
    if busybox.is_file() {
        return busybox;
    }
    fs::create_dir_all(&fixtures).unwrap();
    let work = fixtures.join(format!("busybox-fetch-{arch}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).unwrap();
    let script = format!(
        "set -e\n\
         dpkg --print-foreign-architectures | grep -qx {arch} || dpkg --add-architecture {arch}\n\
         apt-get update -qq\n\
         apt-get download -qq busybox-static:{arch}\n\
         dpkg -x busybox-static_*_{arch}.deb root\n\
         test -f root/bin/busybox\n"
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .current_dir(&work)
        .output()
        .expect("cannot run sh");
    assert!(
        out.status.success(),
        "cannot fetch busybox-static:{arch} (needs root and apt access):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let tmp = fixtures.join(format!("busybox-{arch}.{}", std::process::id()));
    fs::copy(work.join("root/bin/busybox"), &tmp).unwrap();
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).unwrap();
    fs::rename(&tmp, &busybox).unwrap();
    let _ = fs::remove_dir_all(&work);
    busybox
}

/// `dir/only`, a directory for a PATH that holds only `tools` (symbolic
/// links to the system's), for stand-ins to be added to.
pub fn only_tools(dir: &Path, tools: &[&str]) -> PathBuf {
    let only = dir.join("only");
    fs::create_dir_all(&only).unwrap();
    for tool in tools {
        let found = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{tool} is not installed"));
        symlink(found, only.join(tool)).unwrap();
    }
    only
}

/// Symlinks each of `applets` in `dir` to `target`.
pub fn link_applets(dir: &Path, target: &Path, applets: &[&str]) {
    for a in applets {
        symlink(target, dir.join(a)).unwrap();
    }
}

/// A PE image: `MZ` stub with `e_lfanew = at`, COFF header, an optional
/// header (PE32 or PE32+) with 16 data directories, the CLR one filled for
/// .NET; padded to a page.
pub fn pe(at: usize, machine: u16, wide: bool, dotnet: bool) -> Vec<u8> {
    let mut v = vec![0u8; at];
    v[..2].copy_from_slice(b"MZ");
    v[0x3c..0x40].copy_from_slice(&(at as u32).to_le_bytes());
    v.extend_from_slice(b"PE\0\0");
    let (magic, count_at, dirs_at) = if wide {
        (0x20bu16, 108, 112)
    } else {
        (0x10b, 92, 96)
    };
    let optional_size = dirs_at + 16 * 8;
    let mut coff = [0u8; 20];
    coff[..2].copy_from_slice(&machine.to_le_bytes());
    coff[16..18].copy_from_slice(&(optional_size as u16).to_le_bytes());
    v.extend_from_slice(&coff);
    let mut opt = vec![0u8; optional_size];
    opt[..2].copy_from_slice(&magic.to_le_bytes());
    opt[count_at..count_at + 4].copy_from_slice(&16u32.to_le_bytes());
    if dotnet {
        let e = dirs_at + 14 * 8;
        opt[e..e + 4].copy_from_slice(&0x2008u32.to_le_bytes());
        opt[e + 4..e + 8].copy_from_slice(&0x48u32.to_le_bytes());
    }
    v.extend_from_slice(&opt);
    v.resize(v.len().max(4096), 0);
    v
}

/// A Java class file named `Hello` (see `java_class_named`).
pub fn java_class() -> Vec<u8> {
    java_class_named("Hello")
}

/// A class file whose `this_class` is `name`: magic, version 52 (Java 8),
/// a constant pool of its name and its class entry, the access flags and
/// `this_class`.
pub fn java_class_named(name: &str) -> Vec<u8> {
    let mut v = b"\xca\xfe\xba\xbe\x00\x00\x00\x34\x00\x03\x01".to_vec();
    v.extend_from_slice(&(name.len() as u16).to_be_bytes());
    v.extend_from_slice(name.as_bytes());
    v.extend_from_slice(&[7, 0, 1, 0, 0x21, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    v
}

/// Runs `script` with sh in a new user namespace mapping ids 0..65535 to
/// themselves and a new mount namespace with its own binfmt_misc holding
/// `entry` and a tmpfs on /var/cache, in `dir`.
pub fn run_mapped(dir: &Path, entry: Entry<'_>, script: &str) -> Output {
    let (name, magic, mask, interp, flags) = entry;
    let setup = format!(
        "read _ || exit 90\n\
         set -e\n\
         mount -t binfmt_misc none /proc/sys/fs/binfmt_misc\n\
         printf '%s\\n' {} > /proc/sys/fs/binfmt_misc/register\n\
         mount -t tmpfs -o mode=755 none /var/cache\n\
         mkdir /var/cache/binfmt-dispatcher\n\
         set +e\n{script}",
        sh_quote(&format!(":{name}:M::{magic}:{mask}:{interp}:{flags}"))
    );
    let mut child = Command::new("unshare")
        .args(["--user", "--mount", "sh", "-c", &setup])
        .current_dir(dir)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run unshare");
    // unshare execs sh once it has made the namespaces: wait for that,
    // map the ids, then let the script go on.
    let ours = fs::read_link("/proc/self/ns/user").unwrap();
    let ns = format!("/proc/{}/ns/user", child.id());
    let start = Instant::now();
    while fs::read_link(&ns).ok().is_none_or(|l| l == ours) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "unshare made no user namespace"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    for map in ["uid_map", "gid_map"] {
        fs::write(format!("/proc/{}/{map}", child.id()), "0 0 65536\n")
            .unwrap_or_else(|e| panic!("cannot write {map} (the test must run as root): {e}"));
    }
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        !stderr(&out).contains("binfmt_misc") && !stderr(&out).contains("tmpfs"),
        "setting up the namespace failed:\n{}",
        stderr(&out)
    );
    out
}

/// One row of data/binfmt-arches.tsv, parsed here independently of binfmtctl.
#[derive(Debug)]
pub struct Row {
    pub name: String,
    pub kind: String,
    pub magic: Vec<u8>,
    pub mask: Vec<u8>,
    pub native: String,
    pub source: String,
    /// The binfmt_misc entry binfmtctl registers.
    pub entry: String,
    /// That entry's mask (the source's `mask` unless the table gives another).
    pub entry_mask: Vec<u8>,
}

pub fn table() -> Vec<Row> {
    let text = fs::read_to_string(Path::new(ROOT).join("data/binfmt-arches.tsv")).unwrap();
    let mask = |s: &str| {
        if s == "-" {
            Vec::new()
        } else {
            unescape_hex(s)
        }
    };
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            assert_eq!(c.len(), 8, "{l}");
            Row {
                name: c[0].into(),
                kind: c[1].into(),
                magic: unescape_hex(c[2]),
                mask: mask(c[3]),
                native: c[4].into(),
                source: c[5].into(),
                entry: c[6].into(),
                entry_mask: if c[7] == "=" { mask(c[3]) } else { mask(c[7]) },
            }
        })
        .collect()
}

pub fn elf_rows() -> Vec<Row> {
    table().into_iter().filter(|r| r.kind == "elf").collect()
}

/// The ELF rows `register --arch all` registers on this x86_64 or aarch64
/// host (no AArch32 check here: the test hosts are x86_64).
pub fn registered_here() -> Vec<Row> {
    let machine = rustix_uname();
    elf_rows()
        .into_iter()
        .filter(|r| !r.native.split(',').any(|n| n == machine))
        .collect()
}

pub fn rustix_uname() -> String {
    let out = Command::new("uname").arg("-m").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// binfmt_misc's `\xHH` escapes of a magic or mask, as bytes.
pub fn unescape_hex(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            assert_eq!(b[i + 1], b'x', "only \\x escapes in {s}");
            out.push(u8::from_str_radix(&s[i + 2..i + 4], 16).unwrap());
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// The bytes of a string of hex digit pairs.
pub fn from_hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex string {s:?}");
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// Bytes as binfmt_misc's `register` takes them: every byte `\xHH`.
pub fn escaped(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\x{b:02x}")).collect()
}

/// Every path below `root`, relative to it and sorted; directories end in `/`.
pub fn installed_tree(root: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, paths: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            if p.is_dir() && !p.is_symlink() {
                paths.push(format!("{rel}/"));
                walk(base, &p, paths);
            } else {
                paths.push(rel);
            }
        }
    }
    let mut paths = Vec::new();
    walk(root, root, &mut paths);
    paths.sort();
    paths
}

/// Whether `dir` is a directory with nothing in it.
pub fn is_empty_dir(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none())
}

/// The part of a script's output after the line `>>> NAME` and before
/// the next `>>> ` line.
pub fn labelled<'a>(text: &'a str, name: &str) -> &'a str {
    let label = format!(">>> {name}\n");
    let start = text
        .find(&label)
        .unwrap_or_else(|| panic!("no {label:?} in {text}"))
        + label.len();
    let end = text[start..].find(">>> ").map_or(text.len(), |e| start + e);
    &text[start..end]
}

/// Every file below `root` with its bytes (a symlink: its target; a
/// directory: nothing), and its mode.
pub fn tree(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let mut bytes = format!("{:o}:", meta.permissions().mode()).into_bytes();
            if meta.is_dir() {
                dirs.push(path.clone());
            } else if meta.file_type().is_symlink() {
                bytes.extend(
                    fs::read_link(&path)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                );
            } else {
                bytes.extend(fs::read(&path).unwrap());
            }
            files.push((path, bytes));
        }
    }
    files.sort();
    files
}

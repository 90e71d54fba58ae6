//! Dispatch overhead, measured as DESIGN.md section 7 says.
//!
//! `cargo bench --bench exec_overhead` (env BENCH_ROUNDS, default 11;
//! BENCH_EXECS, default 2000). In one private binfmt_misc (a user and mount
//! namespace of its own: nothing is registered in the machine's), four
//! foreign files that differ only in the OSABI byte of their ELF ident go to:
//!
//! - `direct`: the final interpreter (`exit0`, exits 0 at once), registered
//!   directly;
//! - `floor`: the smallest possible trampoline (execve's `exit0`, nothing
//!   else);
//! - `dispatcher`: binfmt-dispatcher with the default configuration (its
//!   aarch64 interpreter pointed at `exit0`) as the *system* cache: the
//!   default path;
//! - `dispatcher-big`: binfmt-dispatcher with 10,000 binary overrides and
//!   1,000 rules, only the last of which matches (BINFMT_DISPATCHER_CACHE).
//!
//! Interleaved rounds, pinned to one CPU; per round, overhead_x = t_x -
//! t_direct and ratio_x = overhead_x / overhead_floor; the medians are
//! reported. Also: syscalls from the dispatcher's entry to its execve (strace),
//! the trampoline's size, and page faults per exec (perf, when it works).
//!
//! It asserts nothing about time: it fails only when something does not run.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

const DISPATCHER: &str = env!("CARGO_BIN_EXE_binfmt-dispatcher");
const BINFMTCTL: &str = env!("CARGO_BIN_EXE_binfmtctl");
const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
const TARGET_TMPDIR: &str = env!("CARGO_TARGET_TMPDIR");

/// Set (to the work directory) in the copy of this bench that runs inside
/// the private namespace.
const INNER_ENV: &str = "EXEC_OVERHEAD_INNER";
/// The system cache the trampoline reads when no env or user cache exists.
const SYSTEM_CACHE_DIR: &str = "/var/cache/binfmt-dispatcher";
const SYSTEM_CACHE: &str = "/var/cache/binfmt-dispatcher/binfmt-dispatcher.cache";
const BIG_OVERRIDES: usize = 10_000;
const BIG_RULES: usize = 1_000;

type Result<T> = std::result::Result<T, String>;

/// One measured registration.
struct Variant {
    name: &'static str,
    /// The OSABI byte (e_ident[7]) that routes the file to this entry.
    osabi: u8,
    /// The binfmt_misc flags.
    flags: &'static str,
}

const VARIANTS: [Variant; 4] = [
    Variant {
        name: "direct",
        osabi: 0x61,
        flags: "F",
    },
    Variant {
        name: "floor",
        osabi: 0x62,
        flags: "F",
    },
    Variant {
        name: "dispatcher",
        osabi: 0x63,
        flags: "POCF",
    },
    Variant {
        name: "dispatcher-big",
        osabi: 0x64,
        flags: "POCF",
    },
];
const DIRECT: usize = 0;
const FLOOR: usize = 1;
const DISP: usize = 2;
const BIG: usize = 3;

/// Every path the bench uses, all below one work directory.
struct Paths {
    work: PathBuf,
}

impl Paths {
    fn f(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }
    fn exit0(&self) -> PathBuf {
        self.f("exit0")
    }
    /// A copy of exit0 that only the big cache names, so strace shows which
    /// cache the dispatcher used.
    fn exit0_big(&self) -> PathBuf {
        self.f("exit0-big")
    }
    fn floor(&self) -> PathBuf {
        self.f("floor")
    }
    fn exec_loop(&self) -> PathBuf {
        self.f("exec_loop")
    }
    fn foreign(&self, v: &Variant) -> PathBuf {
        self.f(&format!("foreign-{}", v.name))
    }
    fn system_cache(&self) -> PathBuf {
        self.f("system.cache")
    }
    fn big_cache(&self) -> PathBuf {
        self.f("big.cache")
    }
    fn empty_home(&self) -> PathBuf {
        self.f("home")
    }
    /// The registered interpreter of a variant.
    fn interpreter(&self, i: usize) -> PathBuf {
        match i {
            DIRECT => self.exit0(),
            FLOOR => self.floor(),
            _ => PathBuf::from(DISPATCHER),
        }
    }
    /// The interpreter the variant must end up executing.
    fn final_interpreter(&self, i: usize) -> PathBuf {
        if i == BIG {
            self.exit0_big()
        } else {
            self.exit0()
        }
    }
}

fn env_usize(name: &str, default: usize) -> Result<usize> {
    match env::var(name) {
        Ok(s) => s
            .trim()
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("{name}={s:?} is not a positive integer")),
        Err(_) => Ok(default),
    }
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn write(path: &Path, data: impl AsRef<[u8]>) -> Result<()> {
    fs::write(path, data).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn kib(path: &Path) -> Result<u64> {
    let len = fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    Ok(len.div_ceil(1024))
}

// ---------------------------------------------------------------------------
// Outside the namespace: build everything.

fn main() -> ExitCode {
    let result = match env::var_os(INNER_ENV) {
        Some(work) => inner(&Paths { work: work.into() }),
        None => outer(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("exec_overhead: {e}");
            ExitCode::FAILURE
        }
    }
}

fn outer() -> Result<()> {
    if !cfg!(all(target_arch = "x86_64", target_os = "linux")) {
        return Err(
            "this bench supports only x86_64 Linux hosts (its helpers are \
                    x86_64 assembly, and its foreign binaries are aarch64)"
                .into(),
        );
    }
    let p = Paths {
        work: Path::new(TARGET_TMPDIR).join("exec_overhead"),
    };
    let _ = fs::remove_dir_all(&p.work);
    fs::create_dir_all(p.empty_home()).map_err(|e| format!("{}: {e}", p.work.display()))?;

    // The trampoline and binfmtctl, as shipped.
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(&cargo)
        .args(["build", "--release", "--bins", "--quiet"])
        .current_dir(MANIFEST_DIR)
        .stdout(Stdio::inherit()))?;

    // The C helpers.
    let support = Path::new(MANIFEST_DIR).join("benches/support");
    let exit0_define = format!("-DEXIT0_PATH=\"{}\"", p.exit0().display());
    let cc = |out: PathBuf, src: &str, extra: &[&str]| -> Result<()> {
        run(Command::new("cc")
            .args(extra)
            .arg("-o")
            .arg(&out)
            .arg(support.join(src)))
        .map(drop)
    };
    cc(p.exit0(), "exit0.c", &["-O2", "-static", "-nostdlib"])?;
    fs::copy(p.exit0(), p.exit0_big()).map_err(|e| format!("copy exit0: {e}"))?;
    cc(
        p.floor(),
        "floor.c",
        &["-O2", "-static", "-nostdlib", &exit0_define],
    )?;
    cc(p.exec_loop(), "exec_loop.c", &["-O2"])?;

    // The foreign files: an aarch64 ELF header (enough for the dispatcher's
    // rules), OSABI set per variant, padded to a page.
    for v in &VARIANTS {
        let mut bytes = vec![0u8; 4096];
        bytes[..8].copy_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, v.osabi]);
        bytes[16..20].copy_from_slice(&[2, 0, 183, 0]);
        let path = p.foreign(v);
        write(&path, &bytes)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("chmod {}: {e}", path.display()))?;
    }

    // The realistic cache: the shipped default configuration, with the
    // aarch64 interpreter pointed at exit0.
    let default_toml =
        fs::read_to_string(Path::new(MANIFEST_DIR).join("data/binfmt-dispatcher.toml"))
            .map_err(|e| format!("data/binfmt-dispatcher.toml: {e}"))?;
    const QEMU: &str = "/usr/bin/qemu-aarch64-static";
    if !default_toml.contains(QEMU) {
        return Err(format!("data/binfmt-dispatcher.toml does not name {QEMU}"));
    }
    let system_toml = p.f("system.toml");
    write(
        &system_toml,
        default_toml.replace(QEMU, &p.exit0().display().to_string()),
    )?;
    compile(&[&system_toml], &p.system_cache())?;

    // The big cache.
    let big_toml = p.f("big.toml");
    write(&big_toml, big_config(&p))?;
    compile(&[&big_toml], &p.big_cache())?;

    // Everything else happens in the private binfmt_misc.
    let exe = env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let status = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "--"])
        .arg(exe)
        .env(INNER_ENV, &p.work)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run unshare: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "the measurement in the private namespace failed ({status})"
        ))
    }
}

fn compile(configs: &[&Path], out: &Path) -> Result<()> {
    run(Command::new(BINFMTCTL)
        .arg("compile")
        .arg("--output")
        .arg(out)
        .args(configs))
    .map(drop)
}

/// 10,000 binary overrides for other paths and 1,000 rules, only the last of
/// which matches the foreign file; half of the others fail on the path glob
/// after matching the machine, the other half on the machine.
fn big_config(p: &Paths) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "[interpreters.final]\npath = \"{}\"\nargv = \"qemu\"\n",
        p.exit0_big().display()
    );
    s.push_str("[interpreters.never]\npath = \"/nonexistent/never\"\nargv = \"qemu\"\n\n");
    // Other machines: i386, mips, ppc, ppc64, s390, arm, sh, x86-64, riscv.
    const OTHER_MACHINES: [u32; 9] = [3, 8, 20, 21, 22, 40, 42, 62, 243];
    for i in 0..BIG_RULES - 1 {
        if i % 2 == 0 {
            let _ = writeln!(
                s,
                "[[rules]]\nmachine = 183\npath = \"/nonexistent/{i}/**\"\ninterpreter = \"never\"\n"
            );
        } else {
            let m = OTHER_MACHINES[i / 2 % OTHER_MACHINES.len()];
            let _ = writeln!(s, "[[rules]]\nmachine = {m}\ninterpreter = \"never\"\n");
        }
    }
    s.push_str("[[rules]]\nmachine = 183\ninterpreter = \"final\"\n\n");
    // Paths next to the foreign files, so they share long prefixes.
    for i in 0..BIG_OVERRIDES {
        let _ = writeln!(
            s,
            "[binaries.b{i}]\npath = \"{}/foreign-{i}\"\ninterpreter = \"never\"\n",
            p.work.display()
        );
    }
    s
}

// ---------------------------------------------------------------------------
// Inside the namespace: register, measure, report.

fn inner(p: &Paths) -> Result<()> {
    let mount = |args: &[&str]| run(Command::new("mount").args(args)).map(drop);
    mount(&["-t", "binfmt_misc", "none", "/proc/sys/fs/binfmt_misc"])?;
    for (i, v) in VARIANTS.iter().enumerate() {
        let line = format!(
            ":bench-{}:M::\\x7fELF\\x02\\x01\\x01\\x{:02x}:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff:{}:{}",
            v.name,
            v.osabi,
            p.interpreter(i).display(),
            v.flags
        );
        write(Path::new("/proc/sys/fs/binfmt_misc/register"), line)
            .map_err(|e| format!("registering {}: {e}", v.name))?;
    }

    // The system cache, on a tmpfs that only this namespace sees.
    let cache_mount = if Path::new(SYSTEM_CACHE_DIR).is_dir() {
        SYSTEM_CACHE_DIR
    } else {
        "/var/cache"
    };
    mount(&["-t", "tmpfs", "none", cache_mount])?;
    fs::create_dir_all(SYSTEM_CACHE_DIR).map_err(|e| format!("{SYSTEM_CACHE_DIR}: {e}"))?;
    fs::copy(p.system_cache(), SYSTEM_CACHE).map_err(|e| format!("{SYSTEM_CACHE}: {e}"))?;

    let rounds = env_usize("BENCH_ROUNDS", 11)?;
    let execs = env_usize("BENCH_EXECS", 2000)?;
    let warmup = (execs / 20).clamp(10, 200);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = if cpus > 1 { "1" } else { "0" };

    // One run of each first: fails early, with the loop's message, if
    // something does not exec.
    for i in 0..VARIANTS.len() {
        exec_loop(p, i, cpu, 1, 0)?;
    }

    // Interleaved rounds; the order rotates so no variant always runs first.
    let mut t = vec![Vec::with_capacity(rounds); VARIANTS.len()];
    let mut per_round = Vec::with_capacity(rounds);
    for r in 0..rounds {
        let mut row = [0.0; 4];
        for k in 0..VARIANTS.len() {
            let i = (r + k) % VARIANTS.len();
            row[i] = exec_loop(p, i, cpu, execs, warmup)?;
        }
        for i in 0..VARIANTS.len() {
            t[i].push(row[i]);
        }
        per_round.push(row);
    }
    let overhead = |row: &[f64; 4], i: usize| row[i] - row[DIRECT];
    let ratio = |row: &[f64; 4], i: usize| overhead(row, i) / overhead(row, FLOOR);
    let med_t: Vec<f64> = t.iter().map(|v| median(v)).collect();
    let med_over = |i: usize| {
        let v: Vec<f64> = per_round.iter().map(|r| overhead(r, i)).collect();
        median(&v)
    };
    let ratios = |i: usize| per_round.iter().map(|r| ratio(r, i)).collect::<Vec<_>>();

    println!("exec overhead, {rounds} rounds x {execs} execs, pinned to CPU {cpu}");
    println!(
        "{:<15} {:>7.1} us/exec",
        VARIANTS[DIRECT].name, med_t[DIRECT]
    );
    let notes = [
        String::new(),
        String::new(),
        format!("[system cache, {} KiB]", kib(&p.system_cache())?),
        format!(
            "[{BIG_OVERRIDES} overrides, {BIG_RULES} rules, {} KiB]",
            kib(&p.big_cache())?
        ),
    ];
    for i in [FLOOR, DISP, BIG] {
        let r = ratios(i);
        let spread = if i == FLOOR {
            String::new()
        } else {
            let (lo, hi) = r
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
                    (lo.min(x), hi.max(x))
                });
            format!(", rounds {lo:.2}..{hi:.2}")
        };
        let line = format!(
            "{:<15} {:>7.1} us/exec   overhead {:>6.1} us  ({:.2}x floor{spread})   {}",
            VARIANTS[i].name,
            med_t[i],
            med_over(i),
            median(&r),
            notes[i]
        );
        println!("{}", line.trim_end());
    }
    println!(
        "(overhead: median of per-round t - t_direct; ratio: median of per-round \
         overhead / floor overhead)"
    );

    let disp = syscalls_to_execve(p, DISP)?;
    let big = syscalls_to_execve(p, BIG)?;
    println!(
        "syscalls entry->execve: default path {} ({}); big cache {} ({})",
        disp.len(),
        disp.join(", "),
        big.len(),
        big.join(", ")
    );

    let size = fs::metadata(DISPATCHER)
        .map_err(|e| format!("{DISPATCHER}: {e}"))?
        .len();
    let stripped = p.f("binfmt-dispatcher.stripped");
    run(Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(DISPATCHER))?;
    let stripped_size = fs::metadata(&stripped)
        .map_err(|e| format!("{}: {e}", stripped.display()))?
        .len();
    println!("trampoline size: {size} bytes (stripped: {stripped_size} bytes)");

    match page_faults(p, cpu, execs.min(1000)) {
        Ok(pf) => println!(
            "page faults/exec (perf, whole exec incl. fork): {}",
            VARIANTS
                .iter()
                .zip(pf)
                .map(|(v, n)| format!("{} {n:.2}", v.name))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Err(e) => println!("page faults/exec: skipped ({e})"),
    }
    Ok(())
}

/// The environment every exec gets: the same size for every variant, with
/// BINFMT_DISPATCHER_CACHE only for the big one, and a HOME with no user
/// cache.
fn variant_env(p: &Paths, i: usize) -> Vec<(String, String)> {
    let big = p.big_cache().display().to_string();
    let mut env = vec![
        (
            "PATH".to_string(),
            "/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        ),
        ("HOME".to_string(), p.empty_home().display().to_string()),
    ];
    if i == BIG {
        env.push(("BINFMT_DISPATCHER_CACHE".into(), big));
    } else {
        // Same length as the line above, a name the dispatcher ignores.
        env.push(("BENCH_PAD_XXXXXXXXXXXXX".into(), big));
    }
    env
}

fn exec_loop(p: &Paths, i: usize, cpu: &str, n: usize, warmup: usize) -> Result<f64> {
    let out = run(Command::new("taskset")
        .args(["-c", cpu])
        .arg(p.exec_loop())
        .arg(n.to_string())
        .arg(warmup.to_string())
        .arg(p.foreign(&VARIANTS[i]))
        .env_clear()
        .envs(variant_env(p, i)))
    .map_err(|e| format!("variant {}: {e}", VARIANTS[i].name))?;
    out.trim()
        .parse()
        .map_err(|_| format!("exec_loop printed {out:?}"))
}

/// The syscalls the dispatcher makes between its own execve returning and
/// its execve of the final interpreter (which must be the expected one).
fn syscalls_to_execve(p: &Paths, i: usize) -> Result<Vec<String>> {
    let log = p.f(&format!("strace-{}.log", VARIANTS[i].name));
    let foreign = p.foreign(&VARIANTS[i]);
    run(Command::new("strace")
        .args(["-f", "-qq", "-s", "4096", "-e", "trace=all", "-o"])
        .arg(&log)
        .arg(&foreign)
        .env_clear()
        .envs(variant_env(p, i)))
    .map_err(|e| {
        format!("{e}\n(strace is needed for the syscall count: apt-get install -y strace)")
    })?;
    let text = fs::read_to_string(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut names = Vec::new();
    let mut started = false;
    for line in text.lines() {
        // "PID name(args) = ret" with -f; signals and exits start with ---/+++.
        let call = line
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_start();
        if call.starts_with("---") || call.starts_with("+++") {
            continue;
        }
        let Some((name, args)) = call.split_once('(') else {
            continue;
        };
        if !started {
            if name == "execve" && args.starts_with(&format!("\"{}\"", foreign.display())) {
                started = true;
            }
            continue;
        }
        if name == "execve" || name == "execveat" {
            // execve("PATH", ...) or execveat(DIRFD, "PATH", ...).
            let want = p.final_interpreter(i).display().to_string();
            if !args.contains(&format!("\"{want}\"")) {
                return Err(format!(
                    "{}: the dispatcher exec'd something other than {want}:\n{text}",
                    VARIANTS[i].name
                ));
            }
            return Ok(names);
        }
        names.push(name.to_string());
    }
    Err(format!(
        "{}: no execve of the foreign file followed by another in the strace log:\n{text}",
        VARIANTS[i].name
    ))
}

/// Page faults per exec of each variant: perf stat over N execs minus perf
/// stat over none (the loop's own start-up).
fn page_faults(p: &Paths, cpu: &str, n: usize) -> Result<Vec<f64>> {
    let count = |i: usize, n: usize| -> Result<f64> {
        let out = Command::new("perf")
            .args([
                "stat",
                "-x",
                ",",
                "-e",
                "page-faults",
                "--",
                "taskset",
                "-c",
                cpu,
            ])
            .arg(p.exec_loop())
            .arg(n.to_string())
            .arg("0")
            .arg(p.foreign(&VARIANTS[i]))
            .env_clear()
            .envs(variant_env(p, i))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run perf: {e}"))?;
        let err = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(format!("perf stat failed: {}", err.trim()));
        }
        let line = err
            .lines()
            .find(|l| l.contains("page-faults"))
            .ok_or_else(|| format!("no page-faults line from perf: {}", err.trim()))?;
        line.split(',')
            .next()
            .unwrap_or_default()
            .parse()
            .map_err(|_| format!("page-faults not counted: {}", err.trim()))
    };
    (0..VARIANTS.len())
        .map(|i| Ok((count(i, n)? - count(i, 0)?) / n as f64))
        .collect()
}

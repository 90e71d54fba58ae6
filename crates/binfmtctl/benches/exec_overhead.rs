//! Dispatch overhead, measured as DESIGN.md section 7 says.
//!
//! `cargo bench --bench exec_overhead` (env BENCH_ROUNDS, default 11;
//! BENCH_EXECS, default 2000). The timings are `binfmtctl bench`'s (a
//! private binfmt_misc; `direct`, `floor` and `dispatcher` with the built-in
//! configuration as the system cache: see crates/binfmtctl/src/bench.rs), run
//! with `--cache big.cache`, which adds `dispatcher-big` to the same
//! interleaved rounds: 10,000 binary overrides and 1,000 rules, only the
//! last of which matches (BINFMT_DISPATCHER_CACHE).
//!
//! This driver adds what needs outside tools: the syscalls from the
//! dispatcher's entry to its execve (strace, on a one-exec `binfmtctl
//! bench`) and the trampoline's size, stripped (strip).
//!
//! It asserts nothing about time: it fails only when something does not run.

use binfmtctl::elf;
use binfmtctl::strace;

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

const BINFMTCTL: &str = env!("CARGO_BIN_EXE_binfmtctl");
/// The workspace.
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
const TARGET_TMPDIR: &str = env!("CARGO_TARGET_TMPDIR");

/// The trampoline, built beside binfmtctl by the `cargo build` below.
fn dispatcher() -> String {
    std::path::Path::new(BINFMTCTL)
        .with_file_name("binfmt-dispatcher")
        .display()
        .to_string()
}

const BIG_OVERRIDES: usize = 10_000;
const BIG_RULES: usize = 1_000;

type Result<T> = std::result::Result<T, String>;

fn env_u32(name: &str, default: u32) -> Result<u32> {
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

fn main() -> ExitCode {
    match bench() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("exec_overhead: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench() -> Result<()> {
    let isa = elf::Isa::host().ok_or("this bench supports x86_64 and aarch64 Linux hosts only")?;
    let work = Path::new(TARGET_TMPDIR).join("exec_overhead");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;

    // The trampoline and binfmtctl, as shipped.
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(&cargo)
        .args(["build", "--release", "--bins", "--quiet"])
        .current_dir(ROOT)
        .stdout(Stdio::inherit()))?;

    // The big cache's final interpreter: an exit(0) program that only it
    // names, so strace shows which cache the dispatcher used.
    let exit0_big = work.join("exit0-big");
    fs::write(&exit0_big, elf::exit0(isa)).map_err(|e| format!("exit0-big: {e}"))?;
    fs::set_permissions(&exit0_big, fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod exit0-big: {e}"))?;
    let big_toml = work.join("big.toml");
    fs::write(&big_toml, big_config(&work, &exit0_big, isa.other()))
        .map_err(|e| format!("{}: {e}", big_toml.display()))?;
    let big_cache = work.join("big.cache");
    run(Command::new(BINFMTCTL)
        .arg("compile")
        .arg("--output")
        .arg(&big_cache)
        .arg(&big_toml))?;

    // binfmtctl bench's helpers go below `work` (TMPDIR), next to the big
    // configuration's override paths.
    let bench = |rounds: u32, execs: u32| {
        let mut c = Command::new(BINFMTCTL);
        c.args(["bench", "--rounds", &rounds.to_string()])
            .args(["--execs", &execs.to_string()])
            .args(["--dispatcher", &dispatcher()])
            .arg("--cache")
            .arg(&big_cache)
            .env("TMPDIR", &work)
            .stderr(Stdio::inherit());
        c
    };
    let rounds = env_u32("BENCH_ROUNDS", 11)?;
    let execs = env_u32("BENCH_EXECS", 2000)?;
    println!(
        "big cache: {BIG_OVERRIDES} binary overrides, {BIG_RULES} rules, only the last matches"
    );
    print!("{}", run(&mut bench(rounds, execs))?);

    // One more short run under strace.
    let log = work.join("strace.log");
    run(Command::new("strace")
        .args(["-f", "-qq", "-s", "4096", "-o"])
        .arg(&log)
        .arg(BINFMTCTL)
        .args(bench(1, 1).get_args())
        .env("TMPDIR", &work))
    .map_err(|e| {
        format!("{e}\n(strace is needed for the syscall count: apt-get install -y strace)")
    })?;
    let text = fs::read_to_string(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let disp = syscalls_to_execve(&text, "dispatcher", None)?;
    let embedded = syscalls_to_execve(&text, "embedded", None)?;
    let big = syscalls_to_execve(&text, "dispatcher-big", Some(&exit0_big))?;
    println!(
        "syscalls entry->execve: default path {} ({}); embedded {} ({}); big cache {} ({})",
        disp.len(),
        disp.join(", "),
        embedded.len(),
        embedded.join(", "),
        big.len(),
        big.join(", ")
    );

    let size = fs::metadata(dispatcher())
        .map_err(|e| format!("{}: {e}", dispatcher()))?
        .len();
    let stripped = work.join("binfmt-dispatcher.stripped");
    run(Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(dispatcher()))?;
    let stripped_size = fs::metadata(&stripped)
        .map_err(|e| format!("{}: {e}", stripped.display()))?
        .len();
    println!("trampoline size: {size} bytes (stripped: {stripped_size} bytes)");
    Ok(())
}

/// 10,000 binary overrides for other paths and 1,000 rules, only the last of
/// which matches the foreign files (ELF for `machine`); half of the others
/// fail on the path glob after matching the machine, the other half on the
/// machine.
fn big_config(work: &Path, exit0: &Path, foreign: elf::Isa) -> String {
    let machine = foreign.machine();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "[interpreters.final]\npath = \"{}\"\nargv = \"qemu\"\n",
        exit0.display()
    );
    s.push_str("[interpreters.never]\npath = \"/nonexistent/never\"\nargv = \"qemu\"\n\n");
    // Other machines: i386, mips, ppc, ppc64, s390, arm, sh, x86-64,
    // riscv, aarch64, less the foreign one.
    let others: Vec<u16> = [3, 8, 20, 21, 22, 40, 42, 62, 243, 183]
        .into_iter()
        .filter(|&m| m != machine)
        .take(9)
        .collect();
    for i in 0..BIG_RULES - 1 {
        if i % 2 == 0 {
            let _ = writeln!(
                s,
                "[[rules]]\nmachine = {machine}\npath = \"/nonexistent/{i}/**\"\ninterpreter = \"never\"\n"
            );
        } else {
            let m = others[i / 2 % others.len()];
            let _ = writeln!(s, "[[rules]]\nmachine = {m}\ninterpreter = \"never\"\n");
        }
    }
    let _ = writeln!(
        s,
        "[[rules]]\nmachine = {machine}\ninterpreter = \"final\"\n"
    );
    // Paths like binfmtctl bench's foreign files, so they share long prefixes.
    for i in 0..BIG_OVERRIDES {
        let _ = writeln!(
            s,
            "[binaries.b{i}]\npath = \"{}/binfmtctl-bench-0/foreign-{i}\"\ninterpreter = \"never\"\n",
            work.display()
        );
    }
    s
}

/// From an `strace -f` log of `binfmtctl bench`: the syscalls the dispatcher
/// makes between the execve of variant `name`'s foreign file and its own
/// execve of the final interpreter (`want`, or any other than the big
/// cache's exit0-big when None).
fn syscalls_to_execve(log: &str, name: &str, want: Option<&Path>) -> Result<Vec<String>> {
    let foreign = format!("/foreign-{name}\"");
    let (calls, args) =
        strace::calls_between_execs(log, |a| a.ends_with(&foreign)).ok_or_else(|| {
            format!("{name}: no execve of the foreign file followed by another in the strace log")
        })?;
    let exec = args.split(',').find(|a| a.contains('"')).unwrap_or("");
    let ok = match want {
        Some(w) => exec.contains(&format!("\"{}\"", w.display())),
        None => exec.ends_with("/exit0\""),
    };
    if !ok {
        return Err(format!("{name}: the dispatcher exec'd {exec}:\n{log}"));
    }
    Ok(calls
        .iter()
        .map(|c| c.split('(').next().unwrap_or("").to_string())
        .collect())
}

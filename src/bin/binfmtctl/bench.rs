//! `binfmtctl bench`: the measurement of benches/exec_overhead.rs (DESIGN.md
//! section 7) for users on their own kernel, without a compiler or root.
//!
//! In a private binfmt_misc (see [`crate::private`]), three foreign files that
//! differ only in the OSABI byte of their ELF ident go to:
//!
//! - `direct`: the final interpreter, registered directly (flags F);
//! - `floor`: the smallest possible trampoline, a static binary that only
//!   execve's the final interpreter with the argv and environment it got;
//! - `dispatcher`: binfmt-dispatcher (flags POCF) with the built-in
//!   configuration, the foreign architecture's interpreter pointed at the
//!   final one, compiled as the system cache (the default path: no user
//!   cache, a system cache, on a tmpfs only this namespace sees).
//!
//! The final interpreter is a built-in static `exit0` (exits at once), or
//! with `--interpreter` a real one, which must run the foreign files: they
//! are `exit(0)` programs for the other architecture (aarch64 on x86_64
//! hosts, x86_64 on aarch64 hosts), so `--interpreter
//! /usr/bin/qemu-aarch64-static` on x86_64, FEX or box64 on aarch64.
//!
//! Interleaved rounds, pinned to one CPU; per round, overhead = t - t_direct
//! and ratio = overhead / floor overhead; the medians are printed. Timings
//! only: nothing is asserted about them.

use std::fs;
use std::io::{self, IsTerminal, Write as _};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use binfmt_dispatcher::blob::{header, interp, Blob};
use binfmt_dispatcher::config::{self, Config};
use binfmt_dispatcher::decide::{self, Subject};
use binfmt_dispatcher::paths;
use binfmt_dispatcher::probe;
use rustix::mount::MountFlags;
use rustix::thread::CpuSet;

use crate::elf::{self, Isa};
use crate::locations::BAKED;
use crate::private;
use crate::register::default_dispatcher;

/// `binfmtctl bench` options.
#[derive(clap::Args)]
pub struct Args {
    /// Interleaved rounds (the median of their ratios is reported).
    #[arg(long, default_value_t = 11, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Execs of each variant per round.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..))]
    execs: u32,
    /// A real final interpreter that runs the foreign exit(0) program (e.g.
    /// /usr/bin/qemu-aarch64-static on x86_64) [default: a built-in one that
    /// exits at once].
    #[arg(long, value_name = "PATH")]
    interpreter: Option<PathBuf>,
    /// The dispatcher [default: binfmt-dispatcher next to binfmtctl, else
    /// /usr/bin/binfmt-dispatcher].
    #[arg(long, value_name = "PATH")]
    dispatcher: Option<PathBuf>,
    /// The CPU to pin to [default: the last one this process may use].
    #[arg(long, value_name = "N")]
    cpu: Option<usize>,
}

/// One measured registration.
struct Variant {
    name: &'static str,
    /// The OSABI byte (e_ident[7]) that routes a file to this entry.
    osabi: u8,
    flags: &'static str,
}

const VARIANTS: [Variant; 3] = [
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
];
const DIRECT: usize = 0;
const FLOOR: usize = 1;
const DISP: usize = 2;

const SYSTEM_CACHE_DIR: &str = "/var/cache/binfmt-dispatcher";

/// The work directory, removed when dropped.
struct Work(PathBuf);

impl Work {
    fn f(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn write_exe(path: &Path, bytes: &[u8]) -> Result<(), String> {
    fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod {}: {e}", path.display()))
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

/// The built-in configuration with the interpreter it picks for `foreign`
/// pointed at `final_interp`, compiled. Returns the blob and the
/// interpreter's ID.
fn cache_for(foreign: &Path, final_interp: &str) -> Result<(Vec<u8>, String), String> {
    let blob =
        Blob::open(BAKED).map_err(|e| format!("built-in configuration: {}", e.describe()))?;
    let header_bytes = fs::read(foreign).map_err(|e| format!("{}: {e}", foreign.display()))?;
    let path = foreign.as_os_str().as_bytes();
    let subject = Subject {
        facts: probe::probe(&header_bytes),
        paths: &[path],
    };
    let plan = decide::decide(&blob, &subject, None)
        .map_err(|e| format!("built-in configuration: {e:?}"))?
        .ok_or("the built-in configuration has no interpreter for the foreign files")?;
    let rec = blob
        .record(
            blob.header_array(header::INTERPRETERS),
            plan.interpreter,
            interp::LEN,
        )
        .map_err(|e| format!("built-in configuration: {e:?}"))?;
    let id = String::from_utf8_lossy(
        blob.str(rec, interp::ID)
            .map_err(|e| format!("built-in configuration: {e:?}"))?,
    )
    .into_owned();
    let text = config::dump(&blob).map_err(|e| format!("built-in configuration: {e}"))?;
    let mut cfg = Config::parse("built-in", &text).map_err(|e| e.to_string())?;
    let overlay = format!(
        "[interpreters.{}]\npath = {}\n",
        config::quote(&id),
        config::quote(final_interp)
    );
    cfg.merge(Config::parse("bench", &overlay).map_err(|e| e.to_string())?);
    let bytes = config::compile(&cfg).map_err(|e| e.to_string())?;
    Ok((bytes, id))
}

/// Progress on stderr: one updated line on a terminal, else a line per round.
struct Progress {
    tty: bool,
}

impl Progress {
    fn round(&self, r: u32, rounds: u32) {
        let mut err = io::stderr().lock();
        let _ = if self.tty {
            write!(err, "\rbinfmtctl bench: round {r}/{rounds} ")
        } else {
            writeln!(err, "binfmtctl bench: round {r}/{rounds}")
        };
        let _ = err.flush();
    }

    fn done(&self) {
        if self.tty {
            let _ = write!(io::stderr(), "\r\x1b[K");
        }
    }
}

/// `binfmtctl bench`.
pub fn run(args: &Args) -> Result<ExitCode, String> {
    let isa = Isa::host()
        .ok_or("binfmtctl bench writes its helper programs for x86_64 and aarch64 hosts only")?;
    let foreign_isa = isa.other();
    let dispatcher = args.dispatcher.clone().unwrap_or_else(default_dispatcher);
    if !dispatcher.is_file() {
        return Err(format!(
            "{} does not exist (--dispatcher PATH)",
            dispatcher.display()
        ));
    }
    let dispatcher = dispatcher
        .canonicalize()
        .map_err(|e| format!("{}: {e}", dispatcher.display()))?;
    if let Some(i) = &args.interpreter {
        if !i.is_absolute() || !i.is_file() {
            return Err(format!(
                "--interpreter {}: not an absolute path to a file",
                i.display()
            ));
        }
    }

    // The helpers, in a private directory.
    let dir = std::env::temp_dir().join(format!("binfmtctl-bench-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::DirBuilder::new()
        .mode(0o755)
        .create(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let work = Work(dir);
    fs::create_dir(work.f("home")).map_err(|e| format!("{}: {e}", work.0.display()))?;
    write_exe(&work.f("exit0"), &elf::exit0(isa))?;
    let final_interp = match &args.interpreter {
        Some(p) => p.clone(),
        None => work.f("exit0"),
    };
    let final_text = final_interp
        .to_str()
        .ok_or("the final interpreter's path is not UTF-8")?
        .to_string();
    write_exe(&work.f("floor"), &elf::floor(isa, final_text.as_bytes()))?;
    let foreign = |v: &Variant| work.f(&format!("foreign-{}", v.name));
    for v in &VARIANTS {
        let mut bytes = elf::exit0(foreign_isa);
        bytes[7] = v.osabi;
        write_exe(&foreign(v), &bytes)?;
    }
    let (cache, interp_id) = cache_for(&foreign(&VARIANTS[DISP]), &final_text)?;
    fs::write(work.f("system.cache"), &cache).map_err(|e| format!("system cache: {e}"))?;

    // The private binfmt_misc, and the system cache on a private tmpfs.
    let inst = private::enter().map_err(|e| format!("binfmtctl bench: {e}"))?;
    let registered = |i: usize| -> PathBuf {
        match i {
            DIRECT => final_interp.clone(),
            FLOOR => work.f("floor"),
            _ => dispatcher.clone(),
        }
    };
    for (i, v) in VARIANTS.iter().enumerate() {
        let line = format!(
            ":bench-{}:M::\\x7fELF\\x02\\x01\\x01\\x{:02x}:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff:{}:{}",
            v.name,
            v.osabi,
            registered(i).display(),
            v.flags
        );
        inst.register(&line)?;
    }
    install_system_cache(&work.f("system.cache"))?;

    let cpu = pin(args.cpu)?;
    let env: Vec<(&str, String)> = vec![
        ("PATH", "/usr/sbin:/usr/bin:/sbin:/bin".into()),
        ("HOME", work.f("home").display().to_string()),
    ];
    let mut commands: Vec<Command> = VARIANTS
        .iter()
        .map(|v| {
            let mut c = Command::new(foreign(v));
            c.env_clear()
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            c
        })
        .collect();

    // One run of each first, with its stderr, so a failure says why.
    for (i, v) in VARIANTS.iter().enumerate() {
        let out = Command::new(foreign(v))
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{}: cannot run {}: {e}", v.name, foreign(v).display()))?;
        if !out.status.success() {
            return Err(format!(
                "{}: {} through {} failed ({}): {}",
                v.name,
                foreign(v).display(),
                registered(i).display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }

    let rounds = args.rounds as usize;
    let execs = args.execs;
    let warmup = (execs / 20).clamp(5, 200);
    let progress = Progress {
        tty: io::stderr().is_terminal(),
    };
    let mut per_round: Vec<[f64; 3]> = Vec::with_capacity(rounds);
    for r in 0..rounds {
        progress.round(r as u32 + 1, args.rounds);
        let mut row = [0.0; 3];
        for k in 0..VARIANTS.len() {
            // The order rotates so that no variant always runs first.
            let i = (r + k) % VARIANTS.len();
            row[i] = exec_loop(&mut commands[i], VARIANTS[i].name, execs, warmup)?;
        }
        per_round.push(row);
    }
    progress.done();

    let column = |f: &dyn Fn(&[f64; 3]) -> f64| -> Vec<f64> { per_round.iter().map(f).collect() };
    let time = |i: usize| median(&column(&|r| r[i]));
    let overhead = |i: usize| median(&column(&|r| r[i] - r[DIRECT]));
    let ratios = |i: usize| column(&|r| (r[i] - r[DIRECT]) / (r[FLOOR] - r[DIRECT]));

    let uname = rustix::system::uname();
    let mut out = String::new();
    out += &format!(
        "binfmtctl bench: Linux {}, {}, {rounds} rounds x {execs} execs, pinned to CPU {cpu}\n",
        uname.release().to_string_lossy(),
        isa.name()
    );
    out += &match &args.interpreter {
        Some(p) => format!(
            "final interpreter: {} ({} exit(0) programs)\n",
            p.display(),
            foreign_isa.name()
        ),
        None => "final interpreter: built-in exit0 (exits at once)\n".to_string(),
    };
    out += &format!(
        "dispatcher: {} ({} bytes), system cache: built-in configuration with interpreter {interp_id} at the final interpreter ({} KiB)\n",
        dispatcher.display(),
        fs::metadata(&dispatcher).map(|m| m.len()).unwrap_or(0),
        cache.len().div_ceil(1024)
    );
    out += &format!("{:<11} {:>8.1} us/exec\n", "direct", time(DIRECT));
    for i in [FLOOR, DISP] {
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
        out += &format!(
            "{:<11} {:>8.1} us/exec   overhead {:>6.1} us   ({:.2}x floor{spread})\n",
            VARIANTS[i].name,
            time(i),
            overhead(i),
            median(&r)
        );
    }
    out += "(overhead: median of per-round t - t_direct; ratio: median of per-round overhead / floor overhead)\n";
    io::stdout()
        .write_all(out.as_bytes())
        .map_err(|e| format!("stdout: {e}"))?;
    drop(inst);
    Ok(ExitCode::SUCCESS)
}

/// Mounts a tmpfs on /var/cache/binfmt-dispatcher (or /var/cache) in this
/// mount namespace and puts `cache` there as the system cache.
fn install_system_cache(cache: &Path) -> Result<(), String> {
    let target = if Path::new(SYSTEM_CACHE_DIR).is_dir() {
        SYSTEM_CACHE_DIR
    } else {
        "/var/cache"
    };
    rustix::mount::mount("tmpfs", target, "tmpfs", MountFlags::empty(), None)
        .map_err(|e| format!("cannot mount a private tmpfs on {target}: {e}"))?;
    fs::create_dir_all(SYSTEM_CACHE_DIR).map_err(|e| format!("{SYSTEM_CACHE_DIR}: {e}"))?;
    let system = Path::new(std::ffi::OsStr::from_bytes(paths::SYSTEM_CACHE.to_bytes()));
    fs::copy(cache, system).map_err(|e| format!("{}: {e}", system.display()))?;
    Ok(())
}

/// Pins this process (and so its children) to one CPU.
fn pin(cpu: Option<usize>) -> Result<usize, String> {
    let allowed =
        rustix::thread::sched_getaffinity(None).map_err(|e| format!("sched_getaffinity: {e}"))?;
    let cpu = match cpu {
        Some(c) => c,
        None => (0..CpuSet::MAX_CPU)
            .rev()
            .find(|&c| allowed.is_set(c))
            .unwrap_or(0),
    };
    if cpu >= CpuSet::MAX_CPU || !allowed.is_set(cpu) {
        return Err(format!("--cpu {cpu}: not a CPU this process may run on"));
    }
    let mut set = CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).map_err(|e| format!("sched_setaffinity: {e}"))?;
    Ok(cpu)
}

/// Mean microseconds per exec over `n` runs, after `warmup` untimed.
fn exec_loop(cmd: &mut Command, name: &str, n: u32, warmup: u32) -> Result<f64, String> {
    let mut once = || -> Result<(), String> {
        let status = cmd
            .status()
            .map_err(|e| format!("{name}: cannot run: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("{name}: exited with {status}"))
        }
    };
    for _ in 0..warmup {
        once()?;
    }
    let start = Instant::now();
    for _ in 0..n {
        once()?;
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / f64::from(n))
}

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
//!   cache, a system cache, on a tmpfs only this namespace sees);
//! - `embedded`: a copy of the dispatcher carrying that same configuration
//!   (`binfmtctl compile --embed`), which reads no cache file at all;
//! - `dispatcher-NAME`, one per `--cache DIR/NAME.cache`: the dispatcher
//!   with that compiled cache (BINFMT_DISPATCHER_CACHE), which must route
//!   the foreign files to an interpreter that runs them (benches/
//!   exec_overhead.rs measures its 10,000-override cache this way).
//!
//! The final interpreter is a built-in static `exit0` (exits at once), or
//! with `--interpreter` a real one, which must run the foreign files: they
//! are `exit(0)` programs for the other architecture (aarch64 on x86_64
//! hosts, x86_64 on aarch64 hosts), so `--interpreter
//! /usr/bin/qemu-aarch64-static` on x86_64, FEX or box64 on aarch64.
//!
//! Interleaved rounds, pinned to one CPU; per round, overhead = t - t_direct
//! and ratio = overhead / floor overhead; the medians are printed, with the
//! page faults per exec (the children's, from /proc/self/stat). Timings
//! only: nothing is asserted about them.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::io::{self, IsTerminal, Write as _};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use binfmt_dispatcher_config::{self as config, Config};
use binfmt_dispatcher_core::blob::Blob;
use binfmt_dispatcher_core::decide::{self, Subject};
use binfmt_dispatcher_core::paths;
use binfmt_dispatcher_core::probe;
use rustix::mount::MountFlags;
use rustix::thread::CpuSet;

use crate::elf::{self, Isa};
use crate::embed;
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
    /// Also measure the dispatcher with this compiled cache (given as
    /// BINFMT_DISPATCHER_CACHE; it must route the foreign files to an
    /// interpreter that runs them), as variant dispatcher-STEM; repeatable.
    #[arg(long, value_name = "FILE")]
    cache: Vec<PathBuf>,
    /// The environment the foreign programs run with: `inherit`, binfmtctl's
    /// own (real programs carry one, and every exec copies it), less the
    /// dispatcher's variables and XDG_CACHE_HOME, with HOME an empty
    /// directory so that no user cache applies; or `minimal`, PATH and HOME.
    #[arg(long, value_enum, default_value_t = Environment::Inherit)]
    env: Environment,
}

/// `binfmtctl bench --env`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Environment {
    /// binfmtctl's own environment, less what would steer the dispatcher.
    Inherit,
    /// PATH and HOME only.
    Minimal,
}

/// One measured registration: `direct`, `floor`, `dispatcher`,
/// `embedded`, then one per `--cache`.
struct Variant {
    name: String,
    /// The OSABI byte (e_ident[7]) that routes a file to this entry.
    osabi: u8,
    flags: &'static str,
    /// The registered interpreter.
    registered: PathBuf,
    /// BINFMT_DISPATCHER_CACHE, for a `--cache` variant.
    cache: Option<PathBuf>,
}

const DIRECT: usize = 0;
const FLOOR: usize = 1;
const DISP: usize = 2;
const EMBEDDED: usize = 3;
/// The most `--cache` options: an OSABI byte each, kept apart from 0 (SysV)
/// and 3 (GNU/Linux).
const MAX_CACHES: usize = 16;

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
    crate::files::write_atomically_mode(path, bytes, 0o755)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
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
    let id = blob
        .interpreter(plan.interpreter)
        .and_then(|i| i.id())
        .map(|id| String::from_utf8_lossy(id.as_bytes()).into_owned())
        .map_err(|e| format!("built-in configuration: {e:?}"))?;
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

    if args.cache.len() > MAX_CACHES {
        return Err(format!("at most {MAX_CACHES} --cache options"));
    }
    let mut caches: Vec<(String, PathBuf)> = Vec::new();
    for c in &args.cache {
        let path = c
            .canonicalize()
            .map_err(|e| format!("--cache {}: {e}", c.display()))?;
        if !path.is_file() || path.to_str().is_none() {
            return Err(format!(
                "--cache {}: not a file with a UTF-8 path",
                c.display()
            ));
        }
        let stem = path
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        let mut name = format!("dispatcher-{stem}");
        if caches.iter().any(|(n, _)| *n == name) {
            name = format!("{name}-{}", caches.len() + 1);
        }
        caches.push((name, path));
    }

    // The helpers, in a private directory.
    let dir = std::env::temp_dir().join(format!("binfmtctl-bench-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::DirBuilder::new()
        .mode(0o755)
        .create(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let work = Work(dir);
    crate::files::create_dirs(&work.f("home")).map_err(|e| format!("{}: {e}", work.0.display()))?;
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
    let fixed = [
        ("direct", "F", final_interp.clone()),
        ("floor", "F", work.f("floor")),
        ("dispatcher", "POCF", dispatcher.clone()),
        ("embedded", "POCF", work.f("embedded")),
    ];
    let variants: Vec<Variant> = fixed
        .into_iter()
        .map(|(name, flags, registered)| (name.to_string(), flags, registered, None))
        .chain(
            caches
                .iter()
                .map(|(name, path)| (name.clone(), "POCF", dispatcher.clone(), Some(path.clone()))),
        )
        .zip(0x61u8..)
        .map(|((name, flags, registered, cache), osabi)| Variant {
            name,
            osabi,
            flags,
            registered,
            cache,
        })
        .collect();
    let foreign = |v: &Variant| work.f(&format!("foreign-{}", v.name));
    for v in &variants {
        let mut bytes = elf::exit0(foreign_isa);
        bytes[7] = v.osabi;
        write_exe(&foreign(v), &bytes)?;
    }
    let (cache, interp_id) = cache_for(&foreign(&variants[DISP]), &final_text)?;
    crate::files::write_atomically(&work.f("system.cache"), &cache)
        .map_err(|e| format!("system cache: {e}"))?;
    // Written before the registration: the F flag opens it then.
    let image = fs::read(&dispatcher).map_err(|e| format!("{}: {e}", dispatcher.display()))?;
    let embedded = embed::replace(&image, &embed::mark_embedded(cache.clone())).map_err(|e| {
        format!(
            "cannot embed a configuration in {}: {e}",
            dispatcher.display()
        )
    })?;
    write_exe(&variants[EMBEDDED].registered, &embedded)?;

    // The private binfmt_misc, and the system cache on a private tmpfs.
    let inst = private::enter().map_err(|e| format!("binfmtctl bench: {e}"))?;
    for (i, v) in variants.iter().enumerate() {
        let line = format!(
            ":bench-{i}:M::\\x7fELF\\x02\\x01\\x01\\x{:02x}:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff:{}:{}",
            v.osabi,
            v.registered.display(),
            v.flags
        );
        inst.register(&line)?;
    }
    install_system_cache(&work.f("system.cache"))?;

    let cpu = pin(args.cpu)?;
    // The same environment size for every variant: BINFMT_DISPATCHER_CACHE
    // for a --cache one, a variable of the same length the dispatcher
    // ignores for the others.
    let longest = caches
        .iter()
        .map(|(_, p)| p.as_os_str().len())
        .max()
        .unwrap_or(0);
    let home = work.f("home");
    let base: Vec<(OsString, OsString)> = match args.env {
        Environment::Minimal => vec![("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into())],
        Environment::Inherit => env::vars_os()
            .filter(|(k, _)| {
                let k = k.as_bytes();
                !k.starts_with(b"BINFMT_DISPATCHER") && k != b"XDG_CACHE_HOME" && k != b"HOME"
            })
            .collect(),
    };
    let env_of = |v: &Variant| -> Vec<(OsString, OsString)> {
        let mut env = base.clone();
        env.push(("HOME".into(), home.clone().into()));
        match &v.cache {
            Some(p) => env.push(("BINFMT_DISPATCHER_CACHE".into(), p.clone().into())),
            None if longest > 0 => {
                env.push(("BENCH_PAD_XXXXXXXXXXXXX".into(), "x".repeat(longest).into()))
            }
            None => {}
        }
        env
    };
    let mut commands: Vec<Command> = variants
        .iter()
        .map(|v| {
            let mut c = Command::new(foreign(v));
            c.env_clear()
                .envs(env_of(v))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            c
        })
        .collect();

    // One run of each first, with its stderr, so a failure says why.
    for v in &variants {
        let out = Command::new(foreign(v))
            .env_clear()
            .envs(env_of(v))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{}: cannot run {}: {e}", v.name, foreign(v).display()))?;
        if !out.status.success() {
            return Err(format!(
                "{}: {} through {} failed ({}): {}",
                v.name,
                foreign(v).display(),
                v.registered.display(),
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
    let n = variants.len();
    let mut per_round: Vec<Vec<f64>> = Vec::with_capacity(rounds);
    for r in 0..rounds {
        progress.round(r as u32 + 1, args.rounds);
        per_round.push(timed_round(&mut commands, &variants, execs, warmup, r)?);
    }
    // Page faults in a pass of their own: reading /proc/self/stat between
    // timed execs would disturb the timing.
    let mut faults: Vec<f64> = Vec::with_capacity(n);
    for (cmd, v) in commands.iter_mut().zip(&variants) {
        faults.push(fault_loop(cmd, &v.name, (execs / 10).clamp(10, 500))?);
    }
    progress.done();

    let column =
        |f: &dyn Fn(&[f64]) -> f64| -> Vec<f64> { per_round.iter().map(|r| f(r)).collect() };
    let time = |i: usize| median(&column(&|r| r[i]));
    let overhead = |i: usize| median(&column(&|r| r[i] - r[DIRECT]));
    let ratios = |i: usize| column(&|r| (r[i] - r[DIRECT]) / (r[FLOOR] - r[DIRECT]));
    let width = variants.iter().map(|v| v.name.len()).max().unwrap_or(0) + 1;

    let uname = rustix::system::uname();
    let mut out = String::new();
    out += &format!(
        "binfmtctl bench: Linux {}, {}, {rounds} rounds x {execs} execs, pinned to CPU {cpu}, {} environment of {} variables\n",
        uname.release().to_string_lossy(),
        isa.name(),
        match args.env {
            Environment::Inherit => "inherited",
            Environment::Minimal => "minimal",
        },
        env_of(&variants[DIRECT]).len()
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
    out += &format!(
        "embedded: the dispatcher with that configuration embedded (compile --embed, {} bytes)\n",
        embedded.len()
    );
    for v in &variants[EMBEDDED + 1..] {
        let path = v.cache.as_deref().unwrap_or(Path::new(""));
        out += &format!(
            "{}: BINFMT_DISPATCHER_CACHE={} ({} KiB)\n",
            v.name,
            path.display(),
            fs::metadata(path).map_or(0, |m| m.len()).div_ceil(1024)
        );
    }
    out += &format!("{:<width$} {:>8.1} us/exec\n", "direct", time(DIRECT));
    for (i, v) in variants.iter().enumerate().skip(FLOOR) {
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
            "{:<width$} {:>8.1} us/exec   overhead {:>6.1} us   ({:.2}x floor{spread})\n",
            v.name,
            time(i),
            overhead(i),
            median(&r)
        );
    }
    out += "(overhead: median of per-round t - t_direct, t the median exec time of its variant in the round; ratio: median of per-round overhead / floor overhead)\n";
    out += &format!(
        "page faults/exec (the child's, spawn to exit): {}\n",
        variants
            .iter()
            .zip(&faults)
            .map(|(v, f)| format!("{} {f:.2}", v.name))
            .collect::<Vec<_>>()
            .join(", ")
    );
    io::stdout()
        .write_all(out.as_bytes())
        .map_err(|e| format!("stdout: {e}"))?;
    drop(inst);
    Ok(ExitCode::SUCCESS)
}

/// Mounts a tmpfs on /var/cache/binfmt-dispatcher (or /var/cache) in this
/// mount namespace and puts `cache` there as the system cache.
fn install_system_cache(cache: &Path) -> Result<(), String> {
    let dir = paths::SYSTEM_CACHE_DIR;
    let target = match Path::new(std::ffi::OsStr::from_bytes(dir.to_bytes())).is_dir() {
        true => dir,
        false => c"/var/cache",
    };
    rustix::mount::mount(c"tmpfs", target, c"tmpfs", MountFlags::empty(), None).map_err(|e| {
        let target = target.to_string_lossy();
        format!("cannot mount a private tmpfs on {target}: {e}")
    })?;
    let system = Path::new(std::ffi::OsStr::from_bytes(paths::SYSTEM_CACHE.to_bytes()));
    fs::read(cache)
        .and_then(|bytes| crate::files::write_atomically(system, &bytes))
        .map_err(|e| format!("{}: {e}", system.display()))?;
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

/// Page faults (minor and major) of this process's waited-for children,
/// from /proc/self/stat (cminflt and cmajflt).
fn children_faults() -> Result<u64, String> {
    let stat =
        fs::read_to_string("/proc/self/stat").map_err(|e| format!("/proc/self/stat: {e}"))?;
    // Fields after "(comm) ": state is the first, cminflt the 9th, cmajflt the 11th.
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    let field = |i: usize| -> Result<u64, String> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("/proc/self/stat: no field {}: {stat}", i + 3))
    };
    Ok(field(8)? + field(10)?)
}

/// One round: `execs` execs of every variant, interleaved exec by exec
/// (the order rotating) so that a slow phase of a shared machine falls on
/// all of them alike, after `warmup` untimed; the median microseconds per
/// exec of each variant.
fn timed_round(
    commands: &mut [Command],
    variants: &[Variant],
    execs: u32,
    warmup: u32,
    round: usize,
) -> Result<Vec<f64>, String> {
    let n = commands.len();
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(execs as usize); n];
    for j in 0..(warmup + execs) as usize {
        for k in 0..n {
            let i = (round + j + k) % n;
            let start = Instant::now();
            exec_once(&mut commands[i], &variants[i].name)?;
            let us = start.elapsed().as_secs_f64() * 1e6;
            if j >= warmup as usize {
                samples[i].push(us);
            }
        }
    }
    Ok(samples.iter().map(|s| median(s)).collect())
}

/// Runs one exec of a variant; an unsuccessful exit is an error.
fn exec_once(cmd: &mut Command, name: &str) -> Result<(), String> {
    let status = cmd
        .status()
        .map_err(|e| format!("{name}: cannot run: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{name}: exited with {status}"))
    }
}

/// Page faults per exec of a variant, over `n` execs.
fn fault_loop(cmd: &mut Command, name: &str, n: u32) -> Result<f64, String> {
    let before = children_faults()?;
    for _ in 0..n {
        exec_once(cmd, name)?;
    }
    Ok((children_faults()? - before) as f64 / f64::from(n))
}

//! The exec path, whole: from the process the kernel started (argv, envp,
//! the auxiliary vector's facts) to the interpreter's `execve`, or to the
//! one line and the exit status that say why nothing ran.
//!
//! [`run`] is generic over a [`Host`], which holds exactly what differs
//! between its two users: the trampoline's host makes the syscalls;
//! `binfmtctl explain`'s answers from the file system and records each exec
//! instead of making it. Both run this code, so explain says what the
//! kernel's exec will do.
//!
//! The steps: [`run`] (usage, `--help`, the set-id gate, the environment),
//! the header read and the configuration ([`caches`]), the decision
//! ([`dispatch`]), the fallback walk and the exec ([`exec`]), and the
//! failure report and the missing-interpreter helper ([`report`]).

mod caches;
mod dispatch;
mod exec;
mod host;
mod java;
mod log;
mod report;

use core::ffi::CStr;
use core::mem::MaybeUninit;

pub use host::{whole_link, ConfigSource, Event, ExecBuffers, ExecCall, FileStat, Host};

use crate::blob::Blob;
use crate::decide::LogLevel;
use crate::launch::{Guest, Strings};
use crate::paths;
use crate::probe::{self, HEADER_LEN};
use caches::Source;
use dispatch::Inputs;
use exec::Exec;
use log::{built_in_corrupt, describe, refuse, Log};

/// What the kernel told the process at its start.
pub struct Process<'p, S: Strings> {
    /// argv: the dispatcher, the binary, (argv[0] with the P flag), the
    /// guest's arguments.
    pub args: S,
    /// envp.
    pub env: S,
    /// envp with its terminating NULL, as `execve` takes it: passed as it
    /// is when the interpreter's environment is the process's.
    pub envp: &'p [*const u8],
    /// `AT_EXECFD`: binfmt_misc's descriptor on the binary (O flag).
    pub execfd: Option<u32>,
    /// `AT_FLAGS`: bit 0 set when binfmt_misc preserved argv[0] (P flag).
    pub flags: usize,
    /// `AT_SECURE`: the exec raised privileges (setuid, C flag).
    pub secure: bool,
    /// `AT_PAGESZ`.
    pub page_size: usize,
    /// `AT_EXECFN`: the path the exec was asked for.
    pub execfn: Option<&'p CStr>,
}

impl<S: Strings> Process<'_, S> {
    /// Whether binfmt_misc preserved argv[0] (the P flag).
    fn preserves_argv0(&self) -> bool {
        self.flags & 1 != 0
    }
}

const USAGE: &[u8] = b"usage: binfmt-dispatcher BINARY [ARGS...]\n\
\n\
Runs BINARY with the interpreter its header and the configuration call for,\n\
as binfmt_misc does when binfmt-dispatcher is registered for BINARY's format.\n\
Configuration: binfmtctl compile; explain a decision: binfmtctl explain BINARY.\n\
Environment (ignored for setuid binaries): BINFMT_DISPATCHER_CACHE=FILE,\n\
BINFMT_DISPATCHER_INTERPRETER=ID, BINFMT_DISPATCHER_LOG=off|error|warn|info|debug.\n";

/// The environment variables the exec path reads.
#[derive(Default)]
struct Vars<'p> {
    log: Option<&'p CStr>,
    cache: Option<&'p CStr>,
    interpreter: Option<&'p CStr>,
    xdg_cache_home: Option<&'p CStr>,
    home: Option<&'p CStr>,
}

impl<'p> Vars<'p> {
    /// Reads them in one pass over the environment.
    fn read<S: Strings>(env: &'p S) -> Vars<'p> {
        let [log, log_compat, cache, interpreter, xdg_cache_home, home] = env.vars([
            paths::ENV_LOG,
            paths::ENV_LOG_COMPAT,
            paths::ENV_CACHE,
            paths::ENV_INTERPRETER,
            "XDG_CACHE_HOME",
            "HOME",
        ]);
        Vars {
            log: log.or(log_compat),
            cache,
            interpreter,
            xdg_cache_home,
            home,
        }
    }
}

/// Runs the exec path with `baked`, the configuration built into the
/// trampoline; returns the exit status when nothing ran, or 0 when the
/// host recorded an exec as made.
pub fn run<H: Host, S: Strings>(host: &mut H, p: &Process<'_, S>, baked: &[u8]) -> i32 {
    if p.args.count() < 2 {
        host.write_stderr(USAGE);
        return 2;
    }
    let filename = p.args.c_str(1);
    if let Some(status) = by_hand_option(host, p, filename.to_bytes()) {
        return status;
    }
    // Privileges raised by the dispatcher's own file, not by the binary
    // (the C flag, which implies O): a set-id dispatcher would run any file
    // its caller names as root.
    if p.secure && (p.execfd.is_none() || host.dispatcher_is_set_id()) {
        let log = Log {
            level: LogLevel::Error,
        };
        let why = b"binfmt-dispatcher itself is set-id, or no binfmt_misc descriptor";
        return refuse(host, log, filename.to_bytes(), [b"set-id exec", b""], why);
    }
    // The environment steers nothing when the exec raised privileges.
    let vars = match p.secure {
        true => Vars::default(),
        false => Vars::read(&p.env),
    };
    run_binary(host, p, filename, &vars, baked)
}

/// `--help` and `--version`, answered only when the dispatcher was run by
/// hand: no sign of a kernel handler (binfmt_misc's descriptor or P flag,
/// a set-id exec) and `AT_EXECFN`, the file the exec was asked for, is this
/// program's own file. Otherwise argv[1] is a binary, whatever its name: a
/// program or a script's interpreter called `--help` runs. `None`: go on.
#[cold]
#[inline(never)]
fn by_hand_option<H: Host, S: Strings>(
    host: &mut H,
    p: &Process<'_, S>,
    arg: &[u8],
) -> Option<i32> {
    let out: &[u8] = match arg {
        b"--help" | b"-h" => USAGE,
        b"--version" => concat!("binfmt-dispatcher ", env!("CARGO_PKG_VERSION"), "\n").as_bytes(),
        _ => return None,
    };
    let kernel_signs = p.execfd.is_some() || p.preserves_argv0() || p.secure;
    if kernel_signs || !p.execfn.is_some_and(|f| host.is_dispatcher(f)) {
        return None;
    }
    host.write_stdout(out);
    Some(0)
}

/// The exec path from the binary's header on. Inlined: a frame of its own
/// would take the exec path's stack deeper, and every stack page it
/// touches is a page fault.
#[inline(always)]
fn run_binary<H: Host, S: Strings>(
    host: &mut H,
    p: &Process<'_, S>,
    filename: &CStr,
    vars: &Vars<'_>,
    baked: &[u8],
) -> i32 {
    let env_level = vars.log.and_then(|v| LogLevel::from_name(v.to_bytes()));
    let mut log = Log {
        level: env_level.unwrap_or(LogLevel::Warn),
    };
    let name = filename.to_bytes();
    // 1. The header: from binfmt_misc's descriptor (O flag) or the file.
    let fd = match p.execfd {
        Some(n) => n,
        None => match host.open(filename) {
            Ok(fd) => fd,
            Err(e) => return cannot(host, log, name, b": cannot open: ", describe(e)),
        },
    };
    // Uninitialised: zeroing it would fault in stack pages that the exec
    // path never otherwise touches.
    let mut header_buf = [MaybeUninit::uninit(); HEADER_LEN];
    let header = match host.pread(fd, 0, &mut header_buf[..]) {
        Ok(header) => header,
        Err(e) => return cannot(host, log, name, b": cannot read: ", describe(e)),
    };
    // 2. The configuration: one blob.
    let (source, cache) = match caches::load(host, p.secure, vars, (log, name), baked) {
        Ok(Some((source, bytes))) => (source, bytes),
        Ok(None) => {
            host.note(Event::Configuration(ConfigSource::BuiltIn, b""));
            (Source::BuiltIn, baked)
        }
        Err(status) => return status,
    };
    let Ok(blob) = Blob::open(cache) else {
        return built_in_corrupt(host, log, p.secure);
    };
    if env_level.is_none() {
        log.level = LogLevel::from_code(blob.log_level()).unwrap_or(LogLevel::Warn);
    }
    let binary = Binary {
        fd,
        name,
        header,
        source,
    };
    run_with_blob(host, p, vars, log, &binary, &blob, baked)
}

/// Says that the binary cannot be opened or read; exit status 126.
#[cold]
#[inline(never)]
fn cannot<H: Host>(host: &mut H, log: Log, name: &[u8], what: &[u8], why: &[u8]) -> i32 {
    log.say(host, LogLevel::Error, &[name, what, why]);
    126
}

/// The binary as found: its descriptor, name, first bytes, and where the
/// configuration came from.
struct Binary<'a> {
    fd: u32,
    name: &'a [u8],
    header: &'a [u8],
    source: Source<'a>,
}

/// The exec path with the configuration open: names the binary for the
/// interpreter, decides and walks; on corruption found mid-lookup, again
/// with the built-in configuration (unless secure). Inlined, as
/// [`run_binary`] is.
#[inline(always)]
fn run_with_blob<H: Host, S: Strings>(
    host: &mut H,
    p: &Process<'_, S>,
    vars: &Vars<'_>,
    log: Log,
    binary: &Binary<'_>,
    blob: &Blob<'_>,
    baked: &[u8],
) -> i32 {
    let mut fd_link = [0u8; 32];
    let fd_link = proc_fd_path(binary.fd, &mut fd_link);
    let guest = guest_of(host, p, binary, fd_link);
    let mut exec = Exec::new(host, p, log, &guest, binary.fd);
    let inputs = Inputs {
        facts: probe::probe(binary.header),
        header: binary.header,
        name: binary.name,
        fd_link,
        env_interpreter: vars.interpreter.map(CStr::to_bytes),
    };
    let outcome = match dispatch::dispatch(blob, &inputs, &mut exec) {
        Ok(outcome) => outcome,
        // A set-id exec runs with the configuration it found or not at all.
        Err(e) if p.secure => {
            let what = caches::refusal_subject(binary.source);
            return refuse(exec.host, log, binary.name, what, e.describe().as_bytes());
        }
        Err(e) => {
            // Corruption found only now, in a chunk the lookup touched.
            caches::warn_ignoring(exec.host, log, vars, binary.source, e);
            exec.forget_failures();
            match dispatch::dispatch_built_in(baked, &inputs, &mut exec) {
                Some(outcome) => outcome,
                None => return built_in_corrupt(exec.host, log, p.secure),
            }
        }
    };
    match outcome {
        Ok(()) => 0,
        Err(status) => status,
    }
}

/// The guest as the interpreter will be told of it. The binary is named by
/// its path, or by the descriptor: always under AT_SECURE (the file the
/// kernel opened and checked, where a name could be pointed at another
/// file, a symlink swapped, before the interpreter opens it as root); when
/// the path is one of the caller's descriptors (fexecve); and when the
/// binary has been deleted since it was opened (no links left), since the
/// name no longer leads to it.
fn guest_of<'a, H: Host, S: Strings>(
    host: &mut H,
    p: &'a Process<'_, S>,
    binary: &Binary<'a>,
    fd_link: &'a [u8],
) -> Guest<'a, S> {
    let via_fd = p.secure
        || (p.execfd.is_some() && binary.name.starts_with(b"/dev/fd/"))
        || host.fstat(binary.fd).is_ok_and(|st| st.links == 0);
    let p_flag = p.preserves_argv0();
    Guest {
        binary: if via_fd { fd_link } else { p.args.with_nul(1) },
        argv0: p
            .args
            .with_nul(if p_flag && p.args.count() >= 3 { 2 } else { 1 }),
        args: &p.args,
        first_arg: if p_flag { 3 } else { 2 }.min(p.args.count()),
        execfd: Some(binary.fd),
        by_descriptor: via_fd,
        secure: p.secure,
        java_class: None,
    }
}

/// `/proc/self/fd/N` with its NUL, in `buf`.
pub(super) fn proc_fd_path(fd: u32, buf: &mut [u8; 32]) -> &[u8] {
    let mut digits = [0u8; 10];
    let digits = crate::launch::decimal(fd, &mut digits);
    let prefix = b"/proc/self/fd/";
    buf[..prefix.len()].copy_from_slice(prefix);
    buf[prefix.len()..prefix.len() + digits.len()].copy_from_slice(digits);
    &buf[..prefix.len() + digits.len() + 1]
}

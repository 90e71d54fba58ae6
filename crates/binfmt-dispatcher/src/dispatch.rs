//! The exec path, step by step: read the header, load one blob, decide,
//! build the argv, execute; and the one-line message when nothing can run.

use core::ffi::CStr;
use core::mem::MaybeUninit;

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::io::Errno;

use binfmt_dispatcher_core::blob::{self, header, interp, Blob, BlobError, Flags};
use binfmt_dispatcher_core::decide::{
    self, Candidate, Failure, LogLevel, Partial, Plan, Reason, Subject, System,
};
use binfmt_dispatcher_core::launch::{self, ArgvStyle, Buffers, BuildError, Guest, Sizes, Strings};

/// Why an interpreter whose template needs the binary's directory or stem
/// was passed over (`Failure::NoSafeName`).
const NO_SAFE_NAME: &[u8] = b"cannot be given the binary's name safely";

/// Environment variables the missing-interpreter helper is told the
/// details in.
const HELPER_MISSING: &[u8] = b"BINFMT_DISPATCHER_MISSING=";
const HELPER_HINT: &[u8] = b"BINFMT_DISPATCHER_HINT=";
const HELPER_KIND: &[u8] = b"BINFMT_DISPATCHER_KIND=";
use crate::rt::{self, CStrList, Process};
use binfmt_dispatcher_core::paths;
use binfmt_dispatcher_core::probe::{self, Facts, HEADER_LEN, HEADER_LEN_MAX};

const USAGE: &[u8] = b"usage: binfmt-dispatcher BINARY [ARGS...]\n\
\n\
Runs BINARY with the interpreter its header and the configuration call for,\n\
as binfmt_misc does when binfmt-dispatcher is registered for BINARY's format.\n\
Configuration: binfmtctl compile; explain a decision: binfmtctl explain BINARY.\n\
Environment (ignored for setuid binaries): BINFMT_DISPATCHER_CACHE=FILE,\n\
BINFMT_DISPATCHER_INTERPRETER=ID, BINFMT_DISPATCHER_LOG=off|error|warn|info|debug.\n";

/// Argv and envp entries, and arena bytes, built on the stack; more are mapped.
const STACK_ARGS: usize = 64;
const STACK_ARENA: usize = 512;
/// The same when the process's envp goes as it is (qemu, plain): argv
/// only, for a smaller frame, since every stack page the exec path
/// touches is a page fault.
const KEPT_ENV_ARGS: usize = 32;
const KEPT_ENV_ARENA: usize = 256;
/// The longest user cache path the trampoline composes.
const USER_CACHE_PATH_MAX: usize = 512;

/// The environment variables the exec path reads.
#[derive(Default)]
struct Vars {
    log: Option<&'static CStr>,
    cache: Option<&'static CStr>,
    interpreter: Option<&'static CStr>,
    xdg_cache_home: Option<&'static CStr>,
    home: Option<&'static CStr>,
}

impl Vars {
    /// Reads them in one pass over the environment.
    fn read(env: &CStrList) -> Vars {
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

/// One line on stderr per message, at or above the level in force.
struct Log {
    level: LogLevel,
}

impl Log {
    /// Out of line: its line buffer must not take stack pages from the
    /// exec path, which logs nothing at the default level.
    #[inline(never)]
    fn say(&self, level: LogLevel, parts: &[&[u8]]) {
        if level > self.level || self.level == LogLevel::Off {
            return;
        }
        let mut line = [0u8; 2048];
        let mut at = 0;
        let prefix: &[u8] = b"binfmt-dispatcher: ";
        for part in core::iter::once(&prefix).chain(parts) {
            let n = part.len().min(line.len() - 1 - at);
            line[at..at + n].copy_from_slice(&part[..n]);
            at += n;
        }
        line[at] = b'\n';
        rt::write_stderr(&line[..at + 1]);
    }
}

/// A short description of an errno.
fn describe(e: Errno) -> &'static [u8] {
    match e {
        Errno::NOENT => b"not found",
        Errno::ACCESS => b"permission denied",
        Errno::NOEXEC => b"exec format error",
        Errno::ISDIR => b"is a directory",
        Errno::NOTDIR => b"a path component is not a directory",
        Errno::LOOP => b"too many symbolic links",
        Errno::TXTBSY => b"text file busy",
        Errno::NOMEM => b"out of memory",
        Errno::TOOBIG => b"argument list too long",
        Errno::PERM => b"operation not permitted",
        Errno::IO => b"input/output error",
        Errno::MFILE => b"too many open files",
        Errno::NFILE => b"too many open files in the system",
        Errno::AGAIN => b"resource temporarily unavailable",
        Errno::LIBBAD => b"bad ELF interpreter",
        _ => b"system error",
    }
}

/// `--help` and `--version`, answered only when the dispatcher was run by
/// hand: no sign of a kernel handler (binfmt_misc's descriptor or P flag,
/// a set-id exec) and `AT_EXECFN`, the file the exec was asked for, is this
/// program's own file. Otherwise argv[1] is a binary, whatever its name: a
/// program or a script's interpreter called `--help` runs. `None`: go on.
#[cold]
#[inline(never)]
fn by_hand_option(p: &Process, arg: &[u8]) -> Option<i32> {
    let out: &[u8] = match arg {
        b"--help" | b"-h" => USAGE,
        b"--version" => concat!("binfmt-dispatcher ", env!("CARGO_PKG_VERSION"), "\n").as_bytes(),
        _ => return None,
    };
    let kernel_signs = p.execfd.is_some() || p.flags & 1 != 0 || p.secure;
    if kernel_signs
        || !p
            .execfn
            .is_some_and(|f| rt::same_file(f, c"/proc/self/exe"))
    {
        return None;
    }
    rt::write_stdout(out);
    Some(0)
}

/// Runs the exec path; returns the exit status when nothing could be run.
pub fn run(p: &Process, baked: &'static [u8]) -> i32 {
    let args = p.args;
    let env = p.env;
    if args.count() < 2 {
        rt::write_stderr(USAGE);
        return 2;
    }
    let filename = args.c_str(1);
    if let Some(status) = by_hand_option(p, filename.to_bytes()) {
        return status;
    }
    // Privileges raised by the dispatcher's own file, not by the binary
    // (the C flag, which implies O): a set-id dispatcher would run any file
    // its caller names as root.
    if p.secure && (p.execfd.is_none() || rt::is_set_id(c"/proc/self/exe")) {
        let log = Log {
            level: LogLevel::Error,
        };
        let why = b"binfmt-dispatcher itself is set-id, or no binfmt_misc descriptor";
        return refuse(&log, filename.to_bytes(), [b"set-id exec", b""], why);
    }
    // The environment steers nothing when the exec raised privileges.
    let vars = match p.secure {
        true => Vars::default(),
        false => Vars::read(&env),
    };
    let env_level = vars.log.and_then(|v| LogLevel::from_name(v.to_bytes()));
    let mut log = Log {
        level: env_level.unwrap_or(LogLevel::Warn),
    };
    let name = filename.to_bytes();

    // 1. The header: from binfmt_misc's descriptor (O flag) or the file.
    let opened: OwnedFd;
    let fd: BorrowedFd<'_> = match p.execfd {
        Some(n) => rt::borrowed(n),
        None => match rt::open(filename) {
            Ok(f) => {
                opened = f;
                opened.as_fd()
            }
            Err(e) => {
                log.say(LogLevel::Error, &[name, b": cannot open: ", describe(e)]);
                return 126;
            }
        },
    };
    // Buffers stay uninitialised: zeroing them would fault in stack pages
    // that the exec path never otherwise touches.
    let mut header_buf = [MaybeUninit::uninit(); HEADER_LEN];
    let header = match rustix::io::pread(fd, &mut header_buf[..], 0) {
        Ok((header, _)) => &*header,
        Err(e) => {
            log.say(LogLevel::Error, &[name, b": cannot read: ", describe(e)]);
            return 126;
        }
    };
    let facts = probe::probe(header);

    // 2. The configuration: one blob.
    let (source, cache) = match load_config(p, &vars, &log, name, baked) {
        Ok(found) => found.unwrap_or((Source::BuiltIn, baked)),
        Err(status) => return status,
    };
    let Ok(blob) = Blob::open(cache) else {
        return built_in_corrupt(p, &log);
    };
    if env_level.is_none() {
        log.level = LogLevel::from_code(blob.header(header::LOG_LEVEL)).unwrap_or(LogLevel::Warn);
    }

    // The binary as the interpreter will be told of it: its path, or the
    // descriptor. Under AT_SECURE always the descriptor: the file the
    // kernel opened and checked, where a name could be pointed at another
    // file (a symlink swapped) before the interpreter opens it as root.
    // The descriptor too when the path is one of the caller's (fexecve),
    // or when the binary has been deleted since it was opened (no links
    // left), since the name no longer leads to it.
    let mut fd_link = [0u8; 32];
    let fd_link = proc_fd_path(rt::raw(&fd), &mut fd_link);
    let via_fd = p.secure
        || (p.execfd.is_some() && name.starts_with(b"/dev/fd/"))
        || rustix::fs::fstat(fd).is_ok_and(|st| st.st_nlink == 0);
    let guest = Guest {
        binary: if via_fd {
            fd_link
        } else {
            filename.to_bytes_with_nul()
        },
        argv0: args.with_nul(if p.flags & 1 != 0 && args.count() >= 3 {
            2
        } else {
            1
        }),
        args: &args,
        first_arg: if p.flags & 1 != 0 { 3 } else { 2 }.min(args.count()),
        execfd: Some(rt::raw(&fd)),
        by_descriptor: via_fd,
        secure: p.secure,
    };
    let mut exec = Exec {
        p,
        log: &log,
        guest: &guest,
        fd,
        inherited: p.execfd.is_some(),
        keep_fd: via_fd,
        failures: [None; 8],
        count: 0,
        facts,
    };
    let inputs = Inputs {
        facts,
        header,
        name,
        fd_link,
        env_interpreter: vars.interpreter.map(CStr::to_bytes),
    };
    let outcome = match dispatch(&blob, &inputs, &mut exec) {
        Ok(outcome) => outcome,
        // A set-id exec runs with the configuration it found or not at all.
        Err(e) if p.secure => {
            let what = match source {
                Source::File(path) => [&b"cache "[..], path.to_bytes()],
                Source::User | Source::BuiltIn => [&b"the built-in configuration"[..], b""],
            };
            return refuse(&log, name, what, e.describe().as_bytes());
        }
        Err(e) => {
            // Corruption found only now, in a chunk the lookup touched.
            warn_ignoring(&log, &vars, source, e);
            exec.count = 0;
            match dispatch_built_in(baked, &inputs, &mut exec) {
                Some(outcome) => outcome,
                None => return built_in_corrupt(p, &log),
            }
        }
    };
    // Ok means the exec succeeded, so only a failure gets here.
    outcome.err().unwrap_or(126)
}

/// Says that the built-in configuration is corrupt; the exit status.
#[cold]
#[inline(never)]
fn built_in_corrupt(p: &Process, log: &Log) -> i32 {
    log.say(LogLevel::Error, &[b"the built-in configuration is corrupt"]);
    if p.secure {
        126
    } else {
        127
    }
}

/// Ends a set-id exec that cannot go on safely: one line, `NAME: not run:
/// WHAT: WHY`, and exit status 126.
#[cold]
#[inline(never)]
fn refuse(log: &Log, name: &[u8], what: [&[u8]; 2], why: &[u8]) -> i32 {
    log.say(
        LogLevel::Error,
        &[name, b": not run: ", what[0], what[1], b": ", why],
    );
    126
}

/// [`dispatch`] with the built-in configuration, after a cache turned out
/// corrupt; `None` when that one is corrupt too. Out of line, so that the
/// exec path's frame holds one blob reader, not two.
#[cold]
#[inline(never)]
fn dispatch_built_in(
    baked: &[u8],
    inputs: &Inputs<'_>,
    exec: &mut Exec<'_>,
) -> Option<Result<(), i32>> {
    Blob::open(baked)
        .and_then(|b| dispatch(&b, inputs, exec))
        .ok()
}

/// Which file the configuration came from, for messages.
#[derive(Clone, Copy)]
enum Source {
    /// `BINFMT_DISPATCHER_CACHE`'s or the system's: a path that lives on.
    File(&'static CStr),
    /// The user's cache, whose path is composed again when it is named.
    User,
    /// None: the configuration built into the trampoline.
    BuiltIn,
}

/// Says that the cache `source` turned out corrupt and is set aside.
#[cold]
#[inline(never)]
fn warn_ignoring(log: &Log, vars: &Vars, source: Source, e: BlobError) {
    let mut buf = [0u8; USER_CACHE_PATH_MAX];
    let path: &[u8] = match source {
        Source::File(path) => path.to_bytes(),
        Source::User => user_cache_path(vars, &mut buf).map_or(b"", CStr::to_bytes),
        Source::BuiltIn => b"",
    };
    log.say(
        LogLevel::Warn,
        &[
            b"ignoring cache ",
            path,
            b": ",
            e.describe().as_bytes(),
            b"; using the built-in configuration",
        ],
    );
}

/// What the decision needs besides the blob.
#[derive(Clone, Copy)]
struct Inputs<'a> {
    facts: Facts<'a>,
    /// The bytes the facts come from.
    header: &'a [u8],
    name: &'a [u8],
    fd_link: &'a [u8],
    env_interpreter: Option<&'a [u8]>,
}

/// Decides and walks the chain. `Ok(Err(status))`: nothing ran.
fn dispatch(
    blob: &Blob<'_>,
    inputs: &Inputs<'_>,
    exec: &mut Exec<'_>,
) -> blob::Result<Result<(), i32>> {
    let want_interp = blob.header(header::FLAGS) & Flags::INTERP_MATCHERS != 0;
    if probe::needs_more(inputs.header, &inputs.facts, want_interp) {
        dispatch_with_more_header(blob, inputs, exec)
    } else {
        dispatch_facts(blob, inputs, exec)
    }
}

/// [`dispatch`] when the first read was too short ([`probe::needs_more`]:
/// a `PT_INTERP` some rule looks at, or a PE header, past it): read more, in a frame of its own so the usual path does not pay
/// for the buffer.
#[inline(never)]
fn dispatch_with_more_header(
    blob: &Blob<'_>,
    inputs: &Inputs<'_>,
    exec: &mut Exec<'_>,
) -> blob::Result<Result<(), i32>> {
    let mut buf = [MaybeUninit::uninit(); HEADER_LEN_MAX];
    let more = match rustix::io::pread(exec.fd, &mut buf[..], 0) {
        Ok((header, _)) => Inputs {
            facts: probe::probe(header),
            header,
            ..*inputs
        },
        Err(_) => *inputs,
    };
    dispatch_facts(blob, &more, exec)
}

/// [`dispatch`] with the facts settled.
fn dispatch_facts(
    blob: &Blob<'_>,
    inputs: &Inputs<'_>,
    exec: &mut Exec<'_>,
) -> blob::Result<Result<(), i32>> {
    let env = inputs.env_interpreter;
    // Under AT_SECURE the caller's name decides nothing: only the path of
    // the file the kernel opened, which is also checked to be readable
    // (the interpreter is told /proc/self/fd/N).
    if exec.p.secure {
        return dispatch_with_canonical(blob, inputs, exec);
    }
    if blob.header(header::FLAGS) & Flags::PATH_MATCHERS == 0 {
        let subject = Subject {
            facts: inputs.facts,
            paths: &[],
        };
        return walk_plan(blob, inputs, decide::decide(blob, &subject, env)?, exec);
    }
    // The filename, when absolute, first: the canonical path is looked up
    // only when it could change the decision.
    let name = [inputs.name];
    let subject = Subject {
        facts: inputs.facts,
        paths: if inputs.name.starts_with(b"/") {
            &name
        } else {
            &[]
        },
    };
    match decide::decide_without_canonical(blob, &subject, env)? {
        Partial::Decided(plan) => walk_plan(blob, inputs, plan, exec),
        Partial::NeedsCanonicalPath => dispatch_with_canonical(blob, inputs, exec),
    }
}

/// [`dispatch`] when the canonical path of the open binary may decide:
/// decides with it and the filename when that is absolute (under
/// AT_SECURE with it alone, and not at all when it cannot be read). Its
/// own function so that the path buffer costs stack pages only when it is
/// needed.
#[inline(never)]
fn dispatch_with_canonical(
    blob: &Blob<'_>,
    inputs: &Inputs<'_>,
    exec: &mut Exec<'_>,
) -> blob::Result<Result<(), i32>> {
    // Longer canonical paths (rare) are treated as unknown: a 4 KiB buffer
    // would cost a stack page on every exec of a config with path rules.
    let mut canonical_buf = [MaybeUninit::uninit(); 1024];
    let mut paths: [&[u8]; 2] = [b""; 2];
    let mut n = 0;
    let secure = exec.p.secure;
    if inputs.name.starts_with(b"/") && !secure {
        paths[n] = inputs.name;
        n += 1;
    }
    let link = CStr::from_bytes_with_nul(inputs.fd_link).unwrap_or(c"");
    // A full buffer may hold a truncated path: then there is none.
    let canonical = rustix::fs::readlinkat_raw(rustix::fs::CWD, link, &mut canonical_buf[..])
        .ok()
        .filter(|(_, rest)| !rest.is_empty())
        .map(|(path, _)| &*path);
    if secure {
        if let Some(status) = refuse_insecure_path(blob, inputs, exec, canonical.is_some()) {
            return Ok(Err(status));
        }
    }
    if let Some(c) = canonical.filter(|c| Some(c) != paths.first().filter(|_| n > 0)) {
        paths[n] = c;
        n += 1;
    }
    let subject = Subject {
        facts: inputs.facts,
        paths: &paths[..n],
    };
    let plan = decide::decide(blob, &subject, inputs.env_interpreter)?;
    walk_plan(blob, inputs, plan, exec)
}

/// Under AT_SECURE, the exit status when the file's path cannot be used:
/// it cannot be read (no /proc, or longer than the buffer), or path
/// matchers would decide on it and the file has been deleted since it was
/// opened (an old version replaced by an upgrade, run through a
/// descriptor kept open): its `... (deleted)` path would match no entry
/// meant for it.
#[inline(never)]
fn refuse_insecure_path(
    blob: &Blob<'_>,
    inputs: &Inputs<'_>,
    exec: &Exec<'_>,
    readable: bool,
) -> Option<i32> {
    let link = &inputs.fd_link[..inputs.fd_link.len() - 1];
    let why: &[u8] = if !readable {
        b"unreadable, or its target too long (is /proc mounted?)"
    } else if blob.header(header::FLAGS) & Flags::PATH_MATCHERS != 0
        && !rustix::fs::fstat(exec.fd).is_ok_and(|st| st.st_nlink > 0)
    {
        b"deleted since it was opened, so its path cannot choose"
    } else {
        return None;
    };
    Some(refuse(exec.log, inputs.name, [link, b""], why))
}

/// Walks the chain of the decision `plan` (`None`: nothing is configured).
fn walk_plan(
    blob: &Blob<'_>,
    inputs: &Inputs<'_>,
    plan: Option<Plan<'_>>,
    exec: &mut Exec<'_>,
) -> blob::Result<Result<(), i32>> {
    let Some(plan) = plan else {
        exec.log.say(
            LogLevel::Error,
            &[
                inputs.name,
                b": no interpreter is configured for this kind of binary (",
                kind(&inputs.facts),
                b")",
            ],
        );
        return Ok(Err(127));
    };
    if exec.log.level >= LogLevel::Info {
        log_plan(exec.log, blob, inputs.name, &plan)?;
    }
    match decide::walk(
        blob,
        &plan,
        exec.p.page_size,
        &mut ExecSystem { exec, blob },
    )? {
        Ok(()) => Ok(Ok(())),
        Err(nothing) => {
            report(exec, blob, inputs.name, &plan)?;
            if nothing == decide::NothingRan::NotFound {
                run_helper(exec, blob, &plan)?;
            }
            Ok(Err(nothing.exit_code()))
        }
    }
}

/// Says which interpreter was chosen and why (log level info).
fn log_plan(log: &Log, blob: &Blob<'_>, name: &[u8], plan: &Plan<'_>) -> blob::Result<()> {
    let all = blob.header_array(header::INTERPRETERS);
    let id = blob.str(blob.record(all, plan.interpreter, interp::LEN)?, interp::ID)?;
    let mut digits = [0u8; 10];
    let why: [&[u8]; 2] = match plan.reason {
        Reason::Environment => [b"BINFMT_DISPATCHER_INTERPRETER", b""],
        Reason::Binary(path) => [b"[binaries] entry for ", path],
        Reason::Rule(n) => [b"rule #", launch::decimal(n + 1, &mut digits)],
        Reason::Default => [b"[defaults] interpreter", b""],
    };
    log.say(
        LogLevel::Info,
        &[name, b": ", id, b" (", why[0], why[1], b")"],
    );
    Ok(())
}

/// A short description of the binary's kind for messages.
fn kind(facts: &Facts<'_>) -> &'static [u8] {
    match facts.format {
        probe::Format::Elf => {}
        probe::Format::Pe if facts.dotnet => return b".NET assembly",
        probe::Format::Pe => return b"Windows program (PE)",
        probe::Format::JavaClass => return b"Java class file",
        probe::Format::MachO => return b"macOS program (Mach-O)",
        probe::Format::Unknown => return b"not a recognised format",
    }
    match probe::ARCHES.iter().find(|a| {
        a.machine == facts.machine
            && a.class == facts.class
            && a.endian == facts.endian
            && facts.flags & a.flags_mask == a.flags
    }) {
        Some(a) => a.name.as_bytes(),
        None => b"ELF of an unknown machine",
    }
}

/// The single line that says why nothing ran.
#[inline(never)]
fn report(exec: &Exec<'_>, blob: &Blob<'_>, name: &[u8], plan: &Plan<'_>) -> blob::Result<()> {
    let all = blob.header_array(header::INTERPRETERS);
    let mut line = [0u8; 2048];
    let mut at = 0;
    let mut put = |part: &[u8]| {
        let n = part.len().min(line.len() - at);
        line[at..at + n].copy_from_slice(&part[..n]);
        at += n;
    };
    put(name);
    put(b": cannot run it:");
    for (i, entry) in exec.failures.iter().flatten().enumerate() {
        let (index, failure, muvm) = *entry;
        let record = blob.record(all, index, interp::LEN)?;
        put(if i == 0 { b" " } else { b"; " });
        put(blob.str(record, interp::ID)?);
        put(b" (");
        put(blob.str(record, interp::PATH)?);
        put(b"): ");
        if muvm {
            put(b"muvm ");
        }
        match failure {
            Failure::Missing => put(b"not found"),
            Failure::RequiredPathMissing(_) => put(b"a required path is missing"),
            Failure::NotExecutable(errno) => {
                put(b"cannot execute: ");
                put(describe(Errno::from_raw_os_error(errno)));
            }
            Failure::NoSafeName => put(NO_SAFE_NAME),
        }
    }
    let hint = blob.str(
        blob.record(all, plan.interpreter, interp::LEN)?,
        interp::INSTALL_HINT,
    )?;
    if !hint.is_empty() {
        put(b". ");
        put(hint);
    }
    exec.log.say(LogLevel::Error, &[&line[..at]]);
    Ok(())
}

/// Executes the missing-interpreter helper (`[defaults] missing_helper`)
/// when no interpreter of the chain exists: `HELPER BINARY ARGV0 ARGS...`,
/// with `BINFMT_DISPATCHER_MISSING` (the interpreters tried, by ID,
/// space-separated), `BINFMT_DISPATCHER_HINT` (the chosen interpreter's
/// install hint) and `BINFMT_DISPATCHER_KIND` in the environment. Returns
/// when there is none or it cannot be executed. Never in secure mode: the
/// helper would run with the privileges of the set-id binary.
#[inline(never)]
fn run_helper(exec: &mut Exec<'_>, blob: &Blob<'_>, plan: &Plan<'_>) -> blob::Result<()> {
    let helper = blob.c_str(0, header::MISSING_HELPER)?;
    if helper.len() <= 1 || exec.p.secure {
        return Ok(());
    }
    let all = blob.header_array(header::INTERPRETERS);
    let hint = blob.str(
        blob.record(all, plan.interpreter, interp::LEN)?,
        interp::INSTALL_HINT,
    )?;
    let kind = kind(&exec.facts);
    // The composed variables: the IDs, the hint, the kind.
    let mut ids_len = 0;
    for entry in exec.failures.iter().flatten() {
        ids_len += blob
            .str(blob.record(all, entry.0, interp::LEN)?, interp::ID)?
            .len()
            + 1;
    }
    let arena_len = HELPER_MISSING.len()
        + ids_len
        + 1
        + HELPER_HINT.len()
        + hint.len()
        + 1
        + HELPER_KIND.len()
        + kind.len()
        + 1;
    let g = exec.guest;
    let argc = 3 + g.args.count().saturating_sub(g.first_arg) + 1;
    let envc = exec.p.env.count() + 3 + 1;
    let Ok((argv, envp, arena)) = rt::alloc_exec_buffers(argc, envc, arena_len) else {
        return Ok(());
    };
    let mut at = 0;
    let mut put = |at: &mut usize, bytes: &[u8]| {
        arena[*at..*at + bytes.len()].copy_from_slice(bytes);
        *at += bytes.len();
    };
    put(&mut at, HELPER_MISSING);
    for (i, entry) in exec.failures.iter().flatten().enumerate() {
        if i > 0 {
            put(&mut at, b" ");
        }
        put(
            &mut at,
            blob.str(blob.record(all, entry.0, interp::LEN)?, interp::ID)?,
        );
    }
    put(&mut at, b"\0");
    let hint_at = at;
    put(&mut at, HELPER_HINT);
    put(&mut at, hint);
    put(&mut at, b"\0");
    let kind_at = at;
    put(&mut at, HELPER_KIND);
    put(&mut at, kind);
    put(&mut at, b"\0");
    let arena = &*arena;
    argv[0] = helper.as_ptr();
    argv[1] = g.binary.as_ptr();
    argv[2] = g.argv0.as_ptr();
    for (slot, i) in argv[3..].iter_mut().zip(g.first_arg..g.args.count()) {
        *slot = g.args.ptr(i);
    }
    let mut n = 0;
    let env = &exec.p.env;
    for i in 0..env.count() {
        let ours = [HELPER_MISSING, HELPER_HINT, HELPER_KIND]
            .iter()
            .any(|k| env.has_key(i, &k[..k.len() - 1]));
        if !ours {
            envp[n] = env.ptr(i);
            n += 1;
        }
    }
    envp[n] = arena.as_ptr();
    envp[n + 1] = arena[hint_at..].as_ptr();
    envp[n + 2] = arena[kind_at..].as_ptr();
    // The helper is handed the binary by path: the descriptor stays open
    // only when the path is the descriptor.
    if exec.inherited != exec.keep_fd {
        rt::set_cloexec(exec.fd, !exec.keep_fd);
        exec.inherited = exec.keep_fd;
    }
    let errno = rt::execve(helper, &argv[..argc], &envp[..n + 4]);
    if errno != Errno::NOENT {
        exec.log.say(
            LogLevel::Warn,
            &[
                b"cannot run the missing-interpreter helper ",
                &helper[..helper.len() - 1],
                b": ",
                describe(errno),
            ],
        );
    }
    Ok(())
}

/// `/proc/self/fd/N` with its NUL, in `buf`.
fn proc_fd_path(fd: u32, buf: &mut [u8; 32]) -> &[u8] {
    let mut digits = [0u8; 10];
    let digits = launch::decimal(fd, &mut digits);
    let prefix = b"/proc/self/fd/";
    buf[..prefix.len()].copy_from_slice(prefix);
    buf[prefix.len()..prefix.len() + digits.len()].copy_from_slice(digits);
    &buf[..prefix.len() + digits.len() + 1]
}

/// The first usable compiled cache, mapped: `BINFMT_DISPATCHER_CACHE`, the
/// user's, the system's (unless the `embedded` configuration is the
/// system's). A missing one is skipped silently (but for the one the
/// environment names); one that cannot be used is skipped with a one-line
/// warning, except under AT_SECURE, where only absence moves on: a cache
/// the process cannot open, map or trust ends the exec (`Err`, the exit
/// status), so that no limit or error the caller can cause swaps the
/// administrator's configuration for the built-in one. `Ok(None)`: use the
/// built-in configuration. Out of line: the buffer the user cache's path
/// is composed in is off the stack by the time the exec path goes deeper.
///
/// Mapping rather than reading keeps the cost flat in the size of the
/// cache: only the pages a lookup touches are faulted in, from the page
/// cache, and no stack pages are spent on a copy.
#[inline(never)]
fn load_config(
    p: &Process,
    vars: &Vars,
    log: &Log,
    name: &[u8],
    embedded: &[u8],
) -> Result<Option<(Source, &'static [u8])>, i32> {
    let mut user_buf = [0u8; USER_CACHE_PATH_MAX];
    let candidates: [Option<&CStr>; 3] = match p.secure {
        true => [None, None, Some(paths::SYSTEM_CACHE)],
        false => [
            vars.cache,
            user_cache_path(vars, &mut user_buf),
            Some(paths::SYSTEM_CACHE),
        ],
    };
    for (i, path) in candidates.iter().enumerate() {
        let Some(path) = *path else { continue };
        // A trampoline with the system's configuration embedded (`binfmtctl
        // compile --embed`) looks for no system cache: it carries it. Asked
        // only here, so that a cache found first leaves it untouched.
        if i == 2 && Blob::open(embedded).is_ok_and(|b| b.is_embedded()) {
            return Ok(None);
        }
        let why = match map_cache(p, path) {
            Ok(bytes) => {
                let source = match i {
                    0 => vars.cache.map_or(Source::BuiltIn, Source::File),
                    1 => Source::User,
                    _ => Source::File(paths::SYSTEM_CACHE),
                };
                return Ok(Some((source, bytes)));
            }
            Err(CacheError::Missing) if i != 0 => continue,
            Err(e) => e.describe(),
        };
        let path = path.to_bytes();
        if p.secure {
            return Err(refuse(log, name, [b"cache ", path], why));
        }
        log.say(LogLevel::Warn, &[b"ignoring cache ", path, b": ", why]);
    }
    Ok(None)
}

/// Why a cache file cannot be used.
#[derive(Clone, Copy)]
enum CacheError {
    /// It does not exist.
    Missing,
    /// A syscall on it failed.
    Sys(Errno),
    /// Secure mode, and someone other than root could have written it.
    Unsafe,
    /// Secure mode, and someone other than root could have put another
    /// file in its place.
    UnsafeDir,
    /// Its contents are not a valid blob.
    Blob(BlobError),
}

/// The system cache, opened through its directory after checking that no
/// one but root can change what the directory holds: the file's own owner
/// and mode would not show that someone put another root-owned file (an
/// older cache) in its place. The directories above it are the system's.
#[cold]
#[inline(never)]
fn open_system_cache() -> Result<OwnedFd, CacheError> {
    let dir = rt::open_dir(paths::SYSTEM_CACHE_DIR).map_err(CacheError::from_open)?;
    let (owner, mode, _) = rt::stat(dir.as_fd()).map_err(CacheError::Sys)?;
    if owner != 0 || mode & 0o022 != 0 {
        return Err(CacheError::UnsafeDir);
    }
    let file = rt::open_at(dir.as_fd(), paths::SYSTEM_CACHE_NAME).map_err(CacheError::from_open);
    // Close-on-exec: closing it would only cost a syscall.
    core::mem::forget(dir);
    file
}

impl CacheError {
    /// What a failed `open` means: absence, or an error.
    fn from_open(e: Errno) -> CacheError {
        match e {
            Errno::NOENT => CacheError::Missing,
            e => CacheError::Sys(e),
        }
    }

    /// Why, in a few words.
    fn describe(self) -> &'static [u8] {
        match self {
            CacheError::Missing => describe(Errno::NOENT),
            CacheError::Sys(errno) => describe(errno),
            CacheError::Unsafe => b"not owned by root, or writable by others",
            CacheError::UnsafeDir => b"its directory is not owned by root, or writable by others",
            CacheError::Blob(e) => e.describe().as_bytes(),
        }
    }
}

/// Opens, checks and maps one cache file (under AT_SECURE, the system's).
fn map_cache(p: &Process, path: &CStr) -> Result<&'static [u8], CacheError> {
    let fd = match p.secure {
        true => open_system_cache(),
        false => rt::open(path).map_err(CacheError::from_open),
    }?;
    let (owner, mode, size) = rt::stat(fd.as_fd()).map_err(CacheError::Sys)?;
    // A setuid exec must not be steered by a file its caller could write.
    if p.secure && (owner != 0 || mode & 0o022 != 0) {
        return Err(CacheError::Unsafe);
    }
    if (size as usize) < header::LEN {
        return Err(CacheError::Blob(BlobError::Truncated));
    }
    let bytes = rt::map_file(fd.as_fd(), size as usize).map_err(CacheError::Sys)?;
    Blob::open(bytes).map_err(CacheError::Blob)?;
    // The mapping outlives the descriptor, which is close-on-exec: closing
    // it now would only cost a syscall.
    core::mem::forget(fd);
    Ok(bytes)
}

/// `$XDG_CACHE_HOME/…` or `$HOME/.cache/…`, composed in `buf`.
fn user_cache_path<'b>(vars: &Vars, buf: &'b mut [u8]) -> Option<&'b CStr> {
    let (base, middle): (&[u8], &[u8]) = match vars.xdg_cache_home.map(CStr::to_bytes) {
        Some(xdg) if xdg.starts_with(b"/") => (xdg, b"/"),
        _ => (vars.home?.to_bytes(), b"/.cache/"),
    };
    let tail = paths::USER_CACHE.as_bytes();
    let len = base.len() + middle.len() + tail.len();
    if len >= buf.len() || base.is_empty() {
        return None;
    }
    buf[..base.len()].copy_from_slice(base);
    buf[base.len()..base.len() + middle.len()].copy_from_slice(middle);
    buf[base.len() + middle.len()..len].copy_from_slice(tail);
    buf[len] = 0;
    CStr::from_bytes_with_nul(&buf[..=len]).ok()
}

/// The state of the walk: the guest, the descriptor, what failed so far.
struct Exec<'a> {
    p: &'a Process,
    log: &'a Log,
    guest: &'a Guest<'a, CStrList>,
    fd: BorrowedFd<'a>,
    /// Whether the descriptor currently survives exec.
    inherited: bool,
    /// Whether the guest's binary is named by the descriptor.
    keep_fd: bool,
    failures: [Option<(u32, Failure<'static>, bool)>; 8],
    count: usize,
    /// The binary's facts (for the missing-interpreter helper).
    facts: Facts<'a>,
}

/// `decide::System` over real syscalls.
struct ExecSystem<'e, 'a, 'b> {
    exec: &'e mut Exec<'a>,
    blob: &'e Blob<'b>,
}

impl System for ExecSystem<'_, '_, '_> {
    fn exists(&mut self, path: &[u8]) -> bool {
        CStr::from_bytes_with_nul(path).is_ok_and(rt::exists)
    }

    fn run(&mut self, candidate: &Candidate<'_>) -> Result<(), Failure<'static>> {
        let e = &mut *self.exec;
        let style = self
            .blob
            .field(candidate.record, interp::ARGV_STYLE)
            .ok()
            .and_then(ArgvStyle::from_code);
        // The descriptor survives exec only when the argv names it.
        let want = e.keep_fd || style.is_some_and(ArgvStyle::passes_execfd);
        if want != e.inherited {
            rt::set_cloexec(e.fd, !want);
            e.inherited = want;
        }
        // The process's envp is passed as it is when nothing in it changes:
        // build then copies none of it, and needs no envp buffer.
        let keep_env = launch::keeps_environment(self.blob, candidate, e.guest).unwrap_or(false);
        let failure = if keep_env {
            build_and_exec::<KEPT_ENV_ARGS, 1, KEPT_ENV_ARENA>(
                self.blob,
                candidate,
                e.guest,
                &CStrList::EMPTY,
                Some(e.p.envp),
            )
        } else {
            build_and_exec::<STACK_ARGS, STACK_ARGS, STACK_ARENA>(
                self.blob, candidate, e.guest, &e.p.env, None,
            )
        };
        let path = candidate.muvm.unwrap_or(candidate.path);
        match failure {
            Failure::NotExecutable(errno)
                if matches!(
                    Errno::from_raw_os_error(errno),
                    Errno::NOENT | Errno::NOTDIR
                ) && !CStr::from_bytes_with_nul(path).is_ok_and(rt::exists) =>
            {
                Err(Failure::Missing)
            }
            failure => Err(failure),
        }
    }

    fn failed(&mut self, candidate: &Candidate<'_>, failure: Failure<'_>) {
        let e = &mut *self.exec;
        let stored = match failure {
            Failure::RequiredPathMissing(_) => Failure::RequiredPathMissing(b""),
            Failure::Missing => Failure::Missing,
            Failure::NotExecutable(n) => Failure::NotExecutable(n),
            Failure::NoSafeName => Failure::NoSafeName,
        };
        if let Some(slot) = e.failures.get_mut(e.count) {
            *slot = Some((candidate.index, stored, candidate.muvm.is_some()));
            e.count += 1;
        }
        if e.log.level >= LogLevel::Debug {
            let what: &[u8] = match failure {
                Failure::Missing => b"not found",
                Failure::RequiredPathMissing(path) => path,
                Failure::NotExecutable(n) => describe(Errno::from_raw_os_error(n)),
                Failure::NoSafeName => NO_SAFE_NAME,
            };
            e.log.say(
                LogLevel::Debug,
                &[
                    b"skipping ",
                    &candidate.path[..candidate.path.len() - 1],
                    b": ",
                    what,
                ],
            );
        }
    }
}

/// Builds the argv (and the envp, unless `process_envp` goes as it is) in
/// stack buffers of these sizes, or in one mapping when they are too small,
/// and executes it; returns why it did not run. Out of line, one copy per
/// size: the exec path's stack holds only the buffers it uses.
#[inline(never)]
fn build_and_exec<const ARGS: usize, const ENVS: usize, const ARENA: usize>(
    blob: &Blob<'_>,
    candidate: &Candidate<'_>,
    guest: &Guest<'_, CStrList>,
    env: &CStrList,
    process_envp: Option<&[*const u8]>,
) -> Failure<'static> {
    let mut argv = [core::ptr::null(); ARGS];
    let mut envp = [core::ptr::null(); ENVS];
    let mut arena = [0u8; ARENA];
    let mut out = Buffers {
        argv: &mut argv,
        envp: &mut envp,
        arena: &mut arena,
    };
    let errno = match launch::build(blob, candidate, guest, env, &mut out) {
        Ok(sizes) => exec(candidate, &out, sizes, process_envp),
        Err(BuildError::TooSmall(sizes)) => {
            match rt::alloc_exec_buffers(sizes.argv, sizes.envp, sizes.arena) {
                Ok((argv, envp, arena)) => {
                    let mut big = Buffers { argv, envp, arena };
                    match launch::build(blob, candidate, guest, env, &mut big) {
                        Ok(sizes) => exec(candidate, &big, sizes, process_envp),
                        Err(_) => Errno::NOMEM,
                    }
                }
                Err(_) => Errno::NOMEM,
            }
        }
        Err(BuildError::Blob(_)) => Errno::INVAL,
        Err(BuildError::NoSafeName) => return Failure::NoSafeName,
    };
    Failure::NotExecutable(errno.raw_os_error())
}

/// Executes the built argv with the built envp, or `process_envp`;
/// returns the error when the exec failed.
fn exec(
    candidate: &Candidate<'_>,
    out: &Buffers<'_>,
    sizes: Sizes,
    process_envp: Option<&[*const u8]>,
) -> Errno {
    let path = candidate.muvm.unwrap_or(candidate.path);
    let envp = process_envp.unwrap_or(&out.envp[..sizes.envp]);
    rt::execve(path, &out.argv[..sizes.argv], envp)
}

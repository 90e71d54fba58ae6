//! When the chain's interpreters run or fail: the info line naming the one
//! executed, the single error line saying why none ran, and the helper
//! that offers an install or shows the failure in a dialog.

use rustix::io::Errno;

use super::exec::{Exec, Failed};
use super::log::{describe, kind, put};
use super::{ExecCall, Host};
use crate::blob::{self, Blob};
use crate::decide::{Candidate, Failure, LogLevel, Plan, Reason};
use crate::launch::{self, Strings};
use crate::probe::Facts;

/// Why an interpreter whose template needs the binary's directory or stem
/// was passed over (`Failure::NoSafeName`).
pub(super) const NO_SAFE_NAME: &[u8] = b"cannot be given the binary's name safely";

/// Environment variables the helper is told the details in: the
/// chain's interpreters not installed (by ID, space-separated), the chosen one's install
/// hint, the binary's kind, the failure line and the exit status. The
/// first's value is composed; the others are copied.
const HELPER_VARIABLES: [&[u8]; 5] = [
    b"BINFMT_DISPATCHER_MISSING=",
    b"BINFMT_DISPATCHER_HINT=",
    b"BINFMT_DISPATCHER_KIND=",
    b"BINFMT_DISPATCHER_FAILURE=",
    b"BINFMT_DISPATCHER_STATUS=",
];

/// The identifier of interpreter `index`.
fn id<'b>(blob: &Blob<'b>, index: u32) -> blob::Result<&'b [u8]> {
    Ok(blob.interpreter(index)?.id()?.as_bytes())
}

/// Says which interpreter is about to be executed and why (log level
/// info): `NAME: ID (PATH), by REASON`, and the one decided when this is a
/// fallback from it.
#[cold]
#[inline(never)]
pub(super) fn log_running<H: Host, S: Strings>(
    exec: &mut Exec<'_, H, S>,
    blob: &Blob<'_>,
    name: &[u8],
    plan: &Plan<'_>,
    candidate: &Candidate<'_>,
) {
    let candidate_id = candidate
        .interpreter
        .id()
        .map_or(&b"?"[..], blob::Str::as_bytes);
    let mut digits = [0u8; 10];
    let why: [&[u8]; 2] = match plan.reason {
        Reason::Environment => [b"BINFMT_DISPATCHER_INTERPRETER", b""],
        Reason::Binary(path) => [b"[binaries] entry for ", path],
        Reason::Rule(n) => [b"rule #", launch::decimal(n + 1, &mut digits)],
        Reason::Default => [b"[defaults] interpreter", b""],
    };
    let (fallback, decided): (&[u8], &[u8]) =
        match candidate.interpreter.index() == plan.interpreter {
            true => (b"", b""),
            false => (
                b", falling back from ",
                id(blob, plan.interpreter).unwrap_or(b"?"),
            ),
        };
    let path = candidate.muvm.unwrap_or(candidate.path);
    let parts: [&[u8]; 10] = [
        name,
        b": ",
        candidate_id,
        b" (",
        &path[..path.len() - 1],
        b"), by ",
        why[0],
        why[1],
        fallback,
        decided,
    ];
    exec.say(LogLevel::Info, &parts);
}

/// Ends an exec in which nothing ran: says the single line why, then
/// executes the helper when it has something to do (see [`run_helper`]).
/// `plan` is `None` when no interpreter is configured for the binary.
#[cold]
#[inline(never)]
pub(super) fn fail<H: Host, S: Strings>(
    exec: &mut Exec<'_, H, S>,
    blob: &Blob<'_>,
    name: &[u8],
    plan: Option<&Plan<'_>>,
    facts: &Facts<'_>,
    status: i32,
) -> blob::Result<()> {
    let mut line = [0u8; 2048];
    let len = match plan {
        Some(plan) => failure_line(exec, blob, name, plan, &mut line)?,
        None => unconfigured_line(name, facts, &mut line),
    };
    let line = &line[..len];
    exec.say(LogLevel::Error, &[line]);
    let helper = blob.missing_helper()?;
    // The helper offers an install when the decided interpreter, whose
    // hint it installs, is missing itself (not its muvm nor a required
    // path, which that does not mend); any failure it shows in a dialog to
    // a person at a display who started the program without a terminal.
    // Asked only here, on the failure path: the exec path pays nothing.
    let offers_install = plan.is_some_and(|plan| {
        let decided = |f: &&Failed| f.0 == plan.interpreter;
        exec.failed().find(decided).is_some_and(missing_itself)
    });
    if helper.is_empty() || exec.p.secure {
        return Ok(());
    }
    if offers_install || (has_display(&exec.p.env) && !exec.host.stdin_is_terminal()) {
        let failure = Report {
            plan,
            facts,
            line,
            status,
            offers_install,
        };
        run_helper(exec, blob, helper.with_nul(), &failure)?;
    }
    Ok(())
}

/// Whether a failure is an interpreter that is not installed, as opposed
/// to one whose muvm, required path or exec failed: what an install of
/// its package mends.
fn missing_itself(failed: &Failed) -> bool {
    matches!(failed, (_, Failure::Missing, false))
}

/// Whether the environment names a display (X11 or Wayland): a
/// non-empty `DISPLAY` or `WAYLAND_DISPLAY`.
fn has_display<S: Strings>(env: &S) -> bool {
    (0..env.count()).any(|i| {
        [&b"DISPLAY="[..], b"WAYLAND_DISPLAY="]
            .iter()
            .any(|key| env.starts_with(i, key) && env.with_nul(i).len() > key.len() + 1)
    })
}

/// The line for a binary no interpreter is configured for, into `line`;
/// its length.
fn unconfigured_line(name: &[u8], facts: &Facts<'_>, line: &mut [u8]) -> usize {
    let parts: [&[u8]; 4] = [
        name,
        b": no interpreter is configured for this kind of binary (",
        kind(facts),
        b")",
    ];
    put(line, 0, &parts)
}

/// The line that names each interpreter tried and why it did not run,
/// then the install hint, into `line`; its length.
#[inline(never)]
fn failure_line<H: Host, S: Strings>(
    exec: &Exec<'_, H, S>,
    blob: &Blob<'_>,
    name: &[u8],
    plan: &Plan<'_>,
    line: &mut [u8],
) -> blob::Result<usize> {
    let mut at = put(line, 0, &[name, b": cannot run it:"]);
    for (i, &(index, failure, muvm)) in exec.failed().enumerate() {
        let interpreter = blob.interpreter(index)?;
        let separator: &[u8] = if i == 0 { b" " } else { b"; " };
        let parts: [&[u8]; 6] = [
            separator,
            interpreter.id()?.as_bytes(),
            b" (",
            interpreter.path()?.as_bytes(),
            b"): ",
            if muvm { b"muvm " } else { b"" },
        ];
        at = put(line, at, &parts);
        let why: [&[u8]; 2] = match failure {
            Failure::Missing => [b"not found", b""],
            Failure::RequiredPathMissing(_) => [b"a required path is missing", b""],
            Failure::NotExecutable(errno) => [
                b"cannot execute: ",
                describe(Errno::from_raw_os_error(errno)),
            ],
            Failure::NoSafeName => [NO_SAFE_NAME, b""],
            Failure::Java(why) => [why, b""],
        };
        at = put(line, at, &why);
    }
    // A class file java cannot be given is no matter of installing one.
    let binary_at_fault = exec.failed().any(|f| matches!(f.1, Failure::Java(_)));
    let hint = blob.interpreter(plan.interpreter)?.install_hint()?;
    if !hint.is_empty() && !binary_at_fault {
        at = put(line, at, &[b". ", hint.as_bytes()]);
    }
    Ok(at)
}

/// What the helper is told of a failure.
struct Report<'f> {
    plan: Option<&'f Plan<'f>>,
    facts: &'f Facts<'f>,
    /// The line said on stderr, without the program's name before it.
    line: &'f [u8],
    /// The dispatcher's exit status: 127 or 126.
    status: i32,
    /// Whether installing the decided interpreter's package would mend it:
    /// else `BINFMT_DISPATCHER_MISSING` is empty.
    offers_install: bool,
}

/// Executes the helper (`[defaults] missing_helper`): `HELPER BINARY ARGV0
/// ARGS...`, with the [`HELPER_VARIABLES`] in the environment. It offers
/// to install a missing interpreter and reruns the program, or shows the
/// failure in a dialog, and exits with `BINFMT_DISPATCHER_STATUS`; the
/// trampoline thus needs no fork to show one. Returns when it cannot be
/// executed. Never in secure mode: it would run with the privileges of the
/// set-id binary.
#[inline(never)]
fn run_helper<H: Host, S: Strings>(
    exec: &mut Exec<'_, H, S>,
    blob: &Blob<'_>,
    helper: &[u8],
    report: &Report<'_>,
) -> blob::Result<()> {
    let hint = match report.plan {
        Some(plan) => blob
            .interpreter(plan.interpreter)?
            .install_hint()?
            .as_bytes(),
        None => b"",
    };
    let mut digits = [0u8; 10];
    let status = launch::decimal(report.status.unsigned_abs(), &mut digits);
    let values = [b"", hint, kind(report.facts), report.line, status];
    // The IDs of the interpreters to install, looked up once.
    let mut ids: [&[u8]; 8] = [b""; 8];
    let mut tried = 0;
    let missing = exec
        .failed()
        .filter(|f| report.offers_install && missing_itself(f));
    for (slot, &(index, _, _)) in ids.iter_mut().zip(missing) {
        *slot = id(blob, index)?;
        tried += 1;
    }
    let ids = &ids[..tried];
    let ids_len: usize = ids.iter().map(|i| i.len() + 1).sum();
    let arena_len = HELPER_VARIABLES
        .iter()
        .zip(values)
        .map(|(k, v)| k.len() + v.len() + 1)
        .sum::<usize>()
        + ids_len;
    let g = exec.guest;
    let argc = 3 + g.args.count().saturating_sub(g.first_arg) + 1;
    let envc = exec.p.env.count() + HELPER_VARIABLES.len() + 1;
    let Ok((argv, envp, arena)) = exec.host.alloc_exec_buffers(argc, envc, arena_len) else {
        return Ok(());
    };
    let starts = helper_variables(arena, ids, values);
    let arena = &*arena;
    argv[0] = helper.as_ptr();
    argv[1] = g.binary.as_ptr();
    argv[2] = g.argv0.as_ptr();
    for (slot, i) in argv[3..].iter_mut().zip(g.first_arg..g.args.count()) {
        *slot = g.args.ptr(i);
    }
    let n = helper_environment(&exec.p.env, envp);
    let ours = HELPER_VARIABLES.len();
    for (slot, start) in envp[n..n + ours].iter_mut().zip(starts) {
        *slot = arena[start..].as_ptr();
    }
    // The helper is handed the binary by path: the descriptor stays open
    // only when the path is the descriptor.
    exec.inherit_fd(exec.keep_fd);
    let call = ExecCall {
        path: helper,
        argv: &argv[..argc],
        envp: &envp[..n + ours + 1],
        arena,
        binary: g.binary,
    };
    if let Err(errno) = exec.host.execve(&call) {
        warn_helper_failed(exec, helper, errno);
    }
    Ok(())
}

/// The process's environment less the helper's own variables, into
/// `envp`; how many.
fn helper_environment<S: Strings>(env: &S, envp: &mut [*const u8]) -> usize {
    let mut n = 0;
    for i in 0..env.count() {
        let ours = HELPER_VARIABLES
            .iter()
            .any(|k| env.has_key(i, &k[..k.len() - 1]));
        if !ours {
            envp[n] = env.ptr(i);
            n += 1;
        }
    }
    n
}

/// Says that the helper exists but could not be executed (a missing one
/// is the usual case, and silent).
fn warn_helper_failed<H: Host, S: Strings>(exec: &mut Exec<'_, H, S>, helper: &[u8], errno: Errno) {
    if errno == Errno::NOENT {
        return;
    }
    let shown = &helper[..helper.len() - 1];
    let parts: [&[u8]; 4] = [
        b"cannot run the missing-interpreter helper ",
        shown,
        b": ",
        describe(errno),
    ];
    exec.say(LogLevel::Warn, &parts);
}

/// Writes the [`HELPER_VARIABLES`] into `arena`: the IDs of the
/// chain's interpreters not installed (`ids`, none when no install is
/// offered), space-separated, then `values[1..]`; returns where each
/// starts.
fn helper_variables(arena: &mut [u8], ids: &[&[u8]], values: [&[u8]; 5]) -> [usize; 5] {
    let mut at = put(arena, 0, &[HELPER_VARIABLES[0]]);
    for (i, id) in ids.iter().enumerate() {
        let separator: &[u8] = if i > 0 { b" " } else { b"" };
        at = put(arena, at, &[separator, id]);
    }
    at = put(arena, at, &[b"\0"]);
    let mut starts = [0; 5];
    for i in 1..starts.len() {
        starts[i] = at;
        at = put(arena, at, &[HELPER_VARIABLES[i], values[i], b"\0"]);
    }
    starts
}

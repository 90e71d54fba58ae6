//! When the chain's interpreters run or fail: the info line naming the one
//! executed, the single error line saying why none ran, and the
//! missing-interpreter helper.

use rustix::io::Errno;

use super::exec::Exec;
use super::log::{describe, kind};
use super::{ExecCall, Host};
use crate::blob::{self, Blob};
use crate::decide::{Candidate, Failure, LogLevel, Plan, Reason};
use crate::launch::{self, Strings};
use crate::probe::Facts;

/// Why an interpreter whose template needs the binary's directory or stem
/// was passed over (`Failure::NoSafeName`).
pub(super) const NO_SAFE_NAME: &[u8] = b"cannot be given the binary's name safely";

/// Environment variables the missing-interpreter helper is told the
/// details in.
const HELPER_MISSING: &[u8] = b"BINFMT_DISPATCHER_MISSING=";
const HELPER_HINT: &[u8] = b"BINFMT_DISPATCHER_HINT=";
const HELPER_KIND: &[u8] = b"BINFMT_DISPATCHER_KIND=";

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

/// The single line that says why nothing ran.
#[inline(never)]
pub(super) fn report<H: Host, S: Strings>(
    exec: &mut Exec<'_, H, S>,
    blob: &Blob<'_>,
    name: &[u8],
    plan: &Plan<'_>,
) -> blob::Result<()> {
    let mut line = [0u8; 2048];
    let mut at = 0;
    let mut put = |part: &[u8]| {
        let n = part.len().min(line.len() - at);
        line[at..at + n].copy_from_slice(&part[..n]);
        at += n;
    };
    put(name);
    put(b": cannot run it:");
    for (i, &(index, failure, muvm)) in exec.failed().enumerate() {
        put(if i == 0 { b" " } else { b"; " });
        let interpreter = blob.interpreter(index)?;
        put(interpreter.id()?.as_bytes());
        put(b" (");
        put(interpreter.path()?.as_bytes());
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
            Failure::Java(why) => put(why),
        }
    }
    // A class file java cannot be given is no matter of installing one.
    let binary_at_fault = exec.failed().any(|f| matches!(f.1, Failure::Java(_)));
    let hint = blob.interpreter(plan.interpreter)?.install_hint()?;
    if !hint.is_empty() && !binary_at_fault {
        put(b". ");
        put(hint.as_bytes());
    }
    exec.say(LogLevel::Error, &[&line[..at]]);
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
pub(super) fn run_helper<H: Host, S: Strings>(
    exec: &mut Exec<'_, H, S>,
    blob: &Blob<'_>,
    plan: &Plan<'_>,
    facts: &Facts<'_>,
) -> blob::Result<()> {
    let helper = blob.missing_helper()?;
    if helper.is_empty() || exec.p.secure {
        return Ok(());
    }
    let helper = helper.with_nul();
    let hint = blob
        .interpreter(plan.interpreter)?
        .install_hint()?
        .as_bytes();
    let mut ids_len = 0;
    for &(index, _, _) in exec.failed() {
        ids_len += id(blob, index)?.len() + 1;
    }
    let values = [&b""[..], hint, kind(facts)];
    let arena_len = [HELPER_MISSING, HELPER_HINT, HELPER_KIND]
        .iter()
        .zip(values)
        .map(|(k, v)| k.len() + v.len() + 1)
        .sum::<usize>()
        + ids_len;
    let g = exec.guest;
    let argc = 3 + g.args.count().saturating_sub(g.first_arg) + 1;
    let envc = exec.p.env.count() + 3 + 1;
    let Ok((argv, envp, arena)) = exec.host.alloc_exec_buffers(argc, envc, arena_len) else {
        return Ok(());
    };
    let starts = helper_variables(exec, blob, arena, values)?;
    let arena = &*arena;
    argv[0] = helper.as_ptr();
    argv[1] = g.binary.as_ptr();
    argv[2] = g.argv0.as_ptr();
    for (slot, i) in argv[3..].iter_mut().zip(g.first_arg..g.args.count()) {
        *slot = g.args.ptr(i);
    }
    let n = helper_environment(&exec.p.env, envp);
    for (slot, start) in envp[n..n + 3].iter_mut().zip(starts) {
        *slot = arena[start..].as_ptr();
    }
    // The helper is handed the binary by path: the descriptor stays open
    // only when the path is the descriptor.
    exec.inherit_fd(exec.keep_fd);
    let call = ExecCall {
        path: helper,
        argv: &argv[..argc],
        envp: &envp[..n + 4],
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
        let ours = [HELPER_MISSING, HELPER_HINT, HELPER_KIND]
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

/// Writes the helper's three variables into `arena`: the IDs of the
/// interpreters tried, then `values[1]` and `values[2]`; returns where each
/// starts.
fn helper_variables<H: Host, S: Strings>(
    exec: &Exec<'_, H, S>,
    blob: &Blob<'_>,
    arena: &mut [u8],
    values: [&[u8]; 3],
) -> blob::Result<[usize; 3]> {
    let mut at = 0;
    let mut put = |at: &mut usize, bytes: &[u8]| {
        arena[*at..*at + bytes.len()].copy_from_slice(bytes);
        *at += bytes.len();
    };
    put(&mut at, HELPER_MISSING);
    for (i, &(index, _, _)) in exec.failed().enumerate() {
        if i > 0 {
            put(&mut at, b" ");
        }
        put(&mut at, id(blob, index)?);
    }
    put(&mut at, b"\0");
    let hint_at = at;
    for (key, value) in [(HELPER_HINT, values[1]), (HELPER_KIND, values[2])] {
        put(&mut at, key);
        put(&mut at, value);
        put(&mut at, b"\0");
    }
    let kind_at = hint_at + HELPER_HINT.len() + values[1].len() + 1;
    Ok([0, hint_at, kind_at])
}

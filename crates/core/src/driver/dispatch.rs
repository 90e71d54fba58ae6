//! The decision: which facts and paths it sees, then the walk of its chain.

use core::ffi::CStr;
use core::mem::MaybeUninit;

use super::exec::{Exec, ExecSystem};
use super::log::refuse;
use super::report;
use super::{Event, Host};
use crate::blob::{self, Blob, Flags};
use crate::decide::{self, Partial, Plan, Subject};
use crate::launch::Strings;
use crate::probe::{self, Facts, HEADER_LEN_MAX};

/// The result of a decision and its walk: `Ok(Ok(()))` an exec was made
/// (recorded), `Ok(Err(status))` nothing ran; `Err` the blob is corrupt.
pub(super) type Outcome = blob::Result<Result<(), i32>>;

/// What the decision needs besides the blob.
#[derive(Clone, Copy)]
pub(super) struct Inputs<'a> {
    pub facts: Facts<'a>,
    /// The bytes the facts come from.
    pub header: &'a [u8],
    pub name: &'a [u8],
    /// `/proc/self/fd/N` for the binary's descriptor, NUL-terminated.
    pub fd_link: &'a [u8],
    pub env_interpreter: Option<&'a [u8]>,
}

/// Decides and walks the chain.
pub(super) fn dispatch<H: Host, S: Strings>(
    blob: &Blob<'_>,
    inputs: &Inputs<'_>,
    exec: &mut Exec<'_, H, S>,
) -> Outcome {
    let want_interp = blob.flags() & Flags::INTERP_MATCHERS != 0;
    if probe::needs_more(inputs.header, &inputs.facts, want_interp) {
        dispatch_with_more_header(blob, inputs, exec)
    } else {
        dispatch_facts(blob, inputs, exec)
    }
}

/// [`dispatch`] with the built-in configuration, after a cache turned out
/// corrupt; `None` when that one is corrupt too. Out of line, so that the
/// exec path's frame holds one blob reader, not two.
#[cold]
#[inline(never)]
pub(super) fn dispatch_built_in<H: Host, S: Strings>(
    baked: &[u8],
    inputs: &Inputs<'_>,
    exec: &mut Exec<'_, H, S>,
) -> Option<Result<(), i32>> {
    Blob::open(baked)
        .and_then(|b| dispatch(&b, inputs, exec))
        .ok()
}

/// [`dispatch`] when the first read was too short ([`probe::needs_more`]:
/// a `PT_INTERP` some rule looks at, or a PE header, past it): read more,
/// in a frame of its own so the usual path does not pay for the buffer.
#[inline(never)]
fn dispatch_with_more_header<H: Host, S: Strings>(
    blob: &Blob<'_>,
    inputs: &Inputs<'_>,
    exec: &mut Exec<'_, H, S>,
) -> Outcome {
    let mut buf = [MaybeUninit::uninit(); HEADER_LEN_MAX];
    let more = match exec.host.pread(exec.fd, 0, &mut buf[..]) {
        Ok(header) => Inputs {
            facts: probe::probe(header),
            header,
            ..*inputs
        },
        Err(_) => *inputs,
    };
    dispatch_facts(blob, &more, exec)
}

/// [`dispatch`] with the facts settled.
fn dispatch_facts<H: Host, S: Strings>(
    blob: &Blob<'_>,
    inputs: &Inputs<'_>,
    exec: &mut Exec<'_, H, S>,
) -> Outcome {
    exec.host.note(Event::Facts(&inputs.facts));
    let env = inputs.env_interpreter;
    // Under AT_SECURE the caller's name decides nothing: only the path of
    // the file the kernel opened, which is also checked to be readable
    // (the interpreter is told /proc/self/fd/N).
    if exec.p.secure {
        return dispatch_with_canonical(blob, inputs, exec);
    }
    if blob.flags() & Flags::PATH_MATCHERS == 0 {
        let subject = Subject {
            facts: inputs.facts,
            paths: &[],
        };
        exec.host.note(Event::Paths(subject.paths));
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
        Partial::Decided(plan) => {
            exec.host.note(Event::Paths(subject.paths));
            walk_plan(blob, inputs, plan, exec)
        }
        Partial::NeedsCanonicalPath => dispatch_with_canonical(blob, inputs, exec),
    }
}

/// [`dispatch`] when the canonical path of the open binary may decide:
/// decides with it and the filename when that is absolute (under
/// AT_SECURE with it alone, and not at all when it cannot be read). Its
/// own function so that the path buffer costs stack pages only when it is
/// needed.
#[inline(never)]
fn dispatch_with_canonical<H: Host, S: Strings>(
    blob: &Blob<'_>,
    inputs: &Inputs<'_>,
    exec: &mut Exec<'_, H, S>,
) -> Outcome {
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
    let canonical = exec.host.read_link(exec.fd, link, &mut canonical_buf[..]);
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
    exec.host.note(Event::Paths(subject.paths));
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
fn refuse_insecure_path<H: Host, S: Strings>(
    blob: &Blob<'_>,
    inputs: &Inputs<'_>,
    exec: &mut Exec<'_, H, S>,
    readable: bool,
) -> Option<i32> {
    let link = &inputs.fd_link[..inputs.fd_link.len() - 1];
    let why: &[u8] = if !readable {
        b"unreadable, or its target too long (is /proc mounted?)"
    } else if blob.flags() & Flags::PATH_MATCHERS != 0
        && !exec.host.fstat(exec.fd).is_ok_and(|st| st.links > 0)
    {
        b"deleted since it was opened, so its path cannot choose"
    } else {
        return None;
    };
    Some(refuse(exec.host, exec.log, inputs.name, [link, b""], why))
}

/// Walks the chain of the decision `plan` (`None`: nothing is configured).
fn walk_plan<H: Host, S: Strings>(
    blob: &Blob<'_>,
    inputs: &Inputs<'_>,
    plan: Option<Plan<'_>>,
    exec: &mut Exec<'_, H, S>,
) -> Outcome {
    let Some(plan) = plan else {
        report::fail(exec, blob, inputs.name, None, &inputs.facts, 127)?;
        return Ok(Err(127));
    };
    exec.host.note(Event::Decided(blob, &plan));
    let page_size = exec.p.page_size;
    let mut system = ExecSystem::new(exec, blob, &plan, inputs.name);
    match decide::walk(blob, &plan, page_size, &mut system)? {
        Ok(()) => Ok(Ok(())),
        Err(nothing) => {
            let status = nothing.exit_code();
            report::fail(exec, blob, inputs.name, Some(&plan), &inputs.facts, status)?;
            Ok(Err(status))
        }
    }
}

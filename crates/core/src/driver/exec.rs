//! The walk's side of the exec path: each interpreter of the chain built
//! into an argv and envp and executed, and what failed remembered for the
//! report.

use core::ffi::CStr;

use rustix::io::Errno;

use super::java;
use super::log::{describe, Log};
use super::report::{self, NO_SAFE_NAME};
use super::{Event, ExecCall, Host, Process};
use crate::blob::Blob;
use crate::decide::{Candidate, Failure, LogLevel, Plan, System};
use crate::launch::{self, ArgvStyle, Buffers, BuildError, Guest, Sizes, Strings};

/// Argv and envp entries, and arena bytes, built on the stack; more are mapped.
const STACK_ARGS: usize = 64;
const STACK_ARENA: usize = 512;
/// The same when the process's envp goes as it is (qemu, plain): argv
/// only, for a smaller frame, since every stack page the exec path
/// touches is a page fault.
const KEPT_ENV_ARGS: usize = 32;
const KEPT_ENV_ARENA: usize = 256;

/// An interpreter passed over: its index, why, and whether under muvm.
pub(super) type Failed = (u32, Failure<'static>, bool);

/// The state of the walk: the host, the guest, the descriptor, what
/// failed so far.
pub(super) struct Exec<'x, H: Host, S: Strings> {
    pub host: &'x mut H,
    pub p: &'x Process<'x, S>,
    pub log: Log,
    pub guest: &'x Guest<'x, S>,
    pub fd: u32,
    /// Whether the descriptor currently survives exec.
    pub inherited: bool,
    /// Whether the guest's binary is named by the descriptor.
    pub keep_fd: bool,
    pub failures: [Option<Failed>; 8],
    pub count: usize,
}

impl<'x, H: Host, S: Strings> Exec<'x, H, S> {
    pub fn new(
        host: &'x mut H,
        p: &'x Process<'x, S>,
        log: Log,
        guest: &'x Guest<'x, S>,
        fd: u32,
    ) -> Self {
        Exec {
            host,
            p,
            log,
            guest,
            fd,
            inherited: p.execfd.is_some(),
            keep_fd: guest.by_descriptor,
            failures: [None; 8],
            count: 0,
        }
    }

    /// One line on stderr at `level`.
    pub fn say(&mut self, level: LogLevel, parts: &[&[u8]]) {
        self.log.say(self.host, level, parts);
    }

    /// Sets the descriptor to survive exec or not, when that changes.
    pub fn inherit_fd(&mut self, want: bool) {
        if want != self.inherited {
            self.host.set_cloexec(self.fd, !want);
            self.inherited = want;
        }
    }

    /// Forgets the failures of a walk over a configuration found corrupt.
    pub fn forget_failures(&mut self) {
        self.failures = [None; 8];
        self.count = 0;
    }

    /// The failures so far, in order.
    pub fn failed(&self) -> impl Iterator<Item = &Failed> {
        self.failures.iter().flatten()
    }
}

/// `decide::System` over the host: the walk's existence checks and execs.
pub(super) struct ExecSystem<'e, 'x, 'b, H: Host, S: Strings> {
    pub exec: &'e mut Exec<'x, H, S>,
    blob: &'e Blob<'b>,
    plan: &'e Plan<'e>,
    name: &'e [u8],
}

impl<'e, 'x, 'b, H: Host, S: Strings> ExecSystem<'e, 'x, 'b, H, S> {
    pub fn new(
        exec: &'e mut Exec<'x, H, S>,
        blob: &'e Blob<'b>,
        plan: &'e Plan<'e>,
        name: &'e [u8],
    ) -> Self {
        ExecSystem {
            exec,
            blob,
            plan,
            name,
        }
    }
}

impl<H: Host, S: Strings> System for ExecSystem<'_, '_, '_, H, S> {
    fn exists(&mut self, path: &[u8]) -> bool {
        CStr::from_bytes_with_nul(path).is_ok_and(|p| self.exec.host.exists(p))
    }

    // Inlined into the walk: its own frame would take the stack deeper.
    #[inline(always)]
    fn run(&mut self, candidate: &Candidate<'_>) -> Result<(), Failure<'static>> {
        let style = candidate.interpreter.argv_style().ok();
        if style == Some(ArgvStyle::Java) {
            return java::run(self, candidate);
        }
        let guest = self.exec.guest;
        self.run_as(candidate, style, guest)
    }

    fn failed(&mut self, candidate: &Candidate<'_>, failure: Failure<'_>) {
        let e = &mut *self.exec;
        e.host.note(Event::Skipped(candidate, failure));
        let stored = match failure {
            Failure::RequiredPathMissing(_) => Failure::RequiredPathMissing(b""),
            Failure::Missing => Failure::Missing,
            Failure::NotExecutable(n) => Failure::NotExecutable(n),
            Failure::NoSafeName => Failure::NoSafeName,
            Failure::Java(why) => Failure::Java(why),
        };
        if let Some(slot) = e.failures.get_mut(e.count) {
            *slot = Some((
                candidate.interpreter.index(),
                stored,
                candidate.muvm.is_some(),
            ));
            e.count += 1;
        }
        if e.log.level >= LogLevel::Debug {
            let what: &[u8] = match failure {
                Failure::Missing => b"not found",
                Failure::RequiredPathMissing(path) => path,
                Failure::NotExecutable(n) => describe(Errno::from_raw_os_error(n)),
                Failure::NoSafeName => NO_SAFE_NAME,
                Failure::Java(why) => why,
            };
            let shown = &candidate.path[..candidate.path.len() - 1];
            e.say(LogLevel::Debug, &[b"skipping ", shown, b": ", what]);
        }
    }
}

impl<H: Host, S: Strings> ExecSystem<'_, '_, '_, H, S> {
    /// Runs `candidate`, of argv style `style`, for `guest`.
    #[inline(always)]
    pub(super) fn run_as(
        &mut self,
        candidate: &Candidate<'_>,
        style: Option<ArgvStyle>,
        guest: &Guest<'_, S>,
    ) -> Result<(), Failure<'static>> {
        let e = &mut *self.exec;
        e.host.note(Event::Running(candidate));
        // The descriptor survives exec only when the argv names it.
        e.inherit_fd(e.keep_fd || style.is_some_and(ArgvStyle::passes_execfd));
        if e.log.level >= LogLevel::Info {
            report::log_running(e, self.blob, self.name, self.plan, candidate);
        }
        let Some(failure) = build_and_run(e, candidate, guest) else {
            return Ok(()); // the host recorded the exec as made
        };
        let path = candidate.muvm.unwrap_or(candidate.path);
        match failure {
            Failure::NotExecutable(errno)
                if matches!(
                    Errno::from_raw_os_error(errno),
                    Errno::NOENT | Errno::NOTDIR
                ) && !self.exists(path) =>
            {
                run_bundled(self.exec, candidate, guest)
            }
            failure => Err(failure),
        }
    }
}

/// Builds the argv and envp of `candidate` for `guest` and executes them;
/// why it did not run (`None`: the host recorded the exec as made).
#[inline(always)]
fn build_and_run<H: Host, S: Strings>(
    e: &mut Exec<'_, H, S>,
    candidate: &Candidate<'_>,
    guest: &Guest<'_, S>,
) -> Option<Failure<'static>> {
    // The process's envp is passed as it is when nothing in it changes:
    // build then copies none of it, and needs no envp buffer.
    if launch::keeps_environment(candidate, guest).unwrap_or(false) {
        let envp = Some(e.p.envp);
        build_and_exec::<H, S, KEPT_ENV_ARGS, 1, KEPT_ENV_ARENA>(
            e.host, candidate, guest, None, envp,
        )
    } else {
        build_and_exec::<H, S, STACK_ARGS, STACK_ARGS, STACK_ARENA>(
            e.host,
            candidate,
            guest,
            Some(&e.p.env),
            None,
        )
    }
}

/// An interpreter the root lacks, run from the copy bundled into the
/// trampoline when there is one (as a direct F registration of it would
/// run in a foreign container), with the argv and envp its file would
/// have had; `Missing` when there is none. Not under muvm, which is not
/// bundled. Out of line: only an exec that found nothing comes here.
#[cold]
#[inline(never)]
fn run_bundled<H: Host, S: Strings>(
    e: &mut Exec<'_, H, S>,
    candidate: &Candidate<'_>,
    guest: &Guest<'_, S>,
) -> Result<(), Failure<'static>> {
    if candidate.muvm.is_some() || !e.host.use_bundled(candidate.path) {
        return Err(Failure::Missing);
    }
    if e.log.level >= LogLevel::Info {
        let shown = &candidate.path[..candidate.path.len() - 1];
        e.say(LogLevel::Info, &[b"running the bundled copy of ", shown]);
    }
    match build_and_run(e, candidate, guest) {
        None => Ok(()),
        Some(failure) => Err(failure),
    }
}

/// Builds the argv (and the envp, unless `process_envp` goes as it is) in
/// stack buffers of these sizes, or in one mapping when they are too small,
/// and executes it; returns why it did not run (`None`: the host recorded
/// the exec as made). Out of line, one copy per size: the exec
/// path's stack holds only the buffers it uses.
#[inline(never)]
fn build_and_exec<H: Host, S: Strings, const ARGS: usize, const ENVS: usize, const ARENA: usize>(
    host: &mut H,
    candidate: &Candidate<'_>,
    guest: &Guest<'_, S>,
    env: Option<&S>,
    process_envp: Option<&[*const u8]>,
) -> Option<Failure<'static>> {
    let mut argv = [core::ptr::null(); ARGS];
    let mut envp = [core::ptr::null(); ENVS];
    let mut arena = [0u8; ARENA];
    let mut out = Buffers {
        argv: &mut argv,
        envp: &mut envp,
        arena: &mut arena,
    };
    let errno = match launch::build(candidate, guest, env, &mut out) {
        Ok(sizes) => exec(host, candidate, guest, &out, sizes, process_envp),
        Err(BuildError::TooSmall(sizes)) => {
            build_and_exec_mapped(host, candidate, guest, env, process_envp, sizes)
        }
        Err(BuildError::Blob(_)) => Err(Errno::INVAL),
        Err(BuildError::NoSafeName) => return Some(Failure::NoSafeName),
    };
    errno
        .err()
        .map(|errno| Failure::NotExecutable(errno.raw_os_error()))
}

/// [`build_and_exec`] in one mapping of `sizes`, for an argv or envp its
/// stack buffers cannot hold. Out of line: one copy serves both sizes.
#[inline(never)]
fn build_and_exec_mapped<H: Host, S: Strings>(
    host: &mut H,
    candidate: &Candidate<'_>,
    guest: &Guest<'_, S>,
    env: Option<&S>,
    process_envp: Option<&[*const u8]>,
    sizes: Sizes,
) -> Result<(), Errno> {
    let Ok((argv, envp, arena)) = host.alloc_exec_buffers(sizes.argv, sizes.envp, sizes.arena)
    else {
        return Err(Errno::NOMEM);
    };
    let mut big = Buffers { argv, envp, arena };
    match launch::build(candidate, guest, env, &mut big) {
        Ok(sizes) => exec(host, candidate, guest, &big, sizes, process_envp),
        Err(_) => Err(Errno::NOMEM),
    }
}

/// Executes the built argv with the built envp, or `process_envp`. Out of
/// line: one copy serves both sizes of [`build_and_exec`].
#[inline(never)]
fn exec<H: Host, S: Strings>(
    host: &mut H,
    candidate: &Candidate<'_>,
    guest: &Guest<'_, S>,
    out: &Buffers<'_>,
    sizes: Sizes,
    process_envp: Option<&[*const u8]>,
) -> Result<(), Errno> {
    host.execve(&ExecCall {
        path: candidate.muvm.unwrap_or(candidate.path),
        argv: &out.argv[..sizes.argv],
        envp: process_envp.unwrap_or(&out.envp[..sizes.envp]),
        arena: out.arena,
        binary: guest.binary,
    })
}

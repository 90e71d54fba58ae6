//! What the exec path asks of the system ([`Host`]), and what it tells an
//! observer of its steps ([`Event`]).

use core::ffi::CStr;
use core::mem::MaybeUninit;

use rustix::io::Errno;

use crate::blob::Blob;
use crate::decide::{Candidate, Failure, Plan};
use crate::probe::Facts;

/// An open file's owner, permission bits, size and link count.
#[derive(Clone, Copy, Debug)]
pub struct FileStat {
    /// The owner's uid.
    pub owner: u32,
    /// `st_mode`.
    pub mode: u32,
    /// Bytes.
    pub size: u64,
    /// Hard links: 0 once the file has been deleted.
    pub links: u64,
}

/// The path `readlink` read into a buffer, if it fit: a full buffer may
/// hold a truncated path, which is then no path at all.
pub fn whole_link<'b>(
    read: Result<(&'b mut [u8], &'b mut [MaybeUninit<u8>]), Errno>,
) -> Option<&'b [u8]> {
    read.ok()
        .filter(|(_, rest)| !rest.is_empty())
        .map(|(path, _)| &*path)
}

/// An argv, an envp and a byte arena that live until the process execs or
/// exits.
pub type ExecBuffers = (
    &'static mut [*const u8],
    &'static mut [*const u8],
    &'static mut [u8],
);

/// One `execve`: `path` NUL-terminated, `argv` and `envp` NULL-terminated
/// arrays of pointers to NUL-terminated strings. Every pointer points into
/// `arena`, `binary`, the blob, the process's argv or envp, or one of
/// [`crate::launch`]'s statics: a host that records the call finds each
/// string there by address.
pub struct ExecCall<'c> {
    /// The file executed.
    pub path: &'c [u8],
    /// The argument vector.
    pub argv: &'c [*const u8],
    /// The environment.
    pub envp: &'c [*const u8],
    /// The bytes composed for this exec.
    pub arena: &'c [u8],
    /// The name the binary is handed over by, NUL-terminated: its path, or
    /// `/proc/self/fd/N`.
    pub binary: &'c [u8],
}

/// Where the configuration in use came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// The file `BINFMT_DISPATCHER_CACHE` names.
    Environment,
    /// The user's cache.
    User,
    /// The system cache.
    System,
    /// The configuration built into (or embedded in) the trampoline.
    BuiltIn,
}

/// A step of the exec path, for a host that explains it.
pub enum Event<'e> {
    /// The binary's facts, as the decision saw them (after any wider read).
    Facts(&'e Facts<'e>),
    /// The configuration the decision reads: its source and path (empty
    /// for the built-in one). Said again when a cache turns out corrupt and
    /// the built-in configuration replaces it.
    Configuration(ConfigSource, &'e [u8]),
    /// The paths `[binaries]` entries and path rules were matched against.
    Paths(&'e [&'e [u8]]),
    /// The decision.
    Decided(&'e Blob<'e>, &'e Plan<'e>),
    /// An interpreter of the chain about to be executed.
    Running(&'e Candidate<'e>),
    /// An interpreter of the chain passed over, and why.
    Skipped(&'e Candidate<'e>, Failure<'e>),
}

/// The system as the exec path sees it: the trampoline's raw syscalls, or
/// a host that answers from the file system and records each exec instead
/// of making it (`binfmtctl explain`, the tests). Descriptors are numbers;
/// the exec path never closes one (they are all close-on-exec).
pub trait Host {
    /// Opens `path` read-only, close-on-exec.
    fn open(&mut self, path: &CStr) -> Result<u32, Errno>;
    /// Opens the directory `path` read-only, close-on-exec.
    fn open_dir(&mut self, path: &CStr) -> Result<u32, Errno>;
    /// Opens `name` in the directory `dir`, not following a symbolic link.
    fn open_at(&mut self, dir: u32, name: &CStr) -> Result<u32, Errno>;
    /// Reads from `fd` at `offset` into `buf`; the bytes read (fewer at
    /// the end of the file).
    fn pread<'b>(
        &mut self,
        fd: u32,
        offset: u64,
        buf: &'b mut [MaybeUninit<u8>],
    ) -> Result<&'b [u8], Errno>;
    /// `fstat`.
    fn fstat(&mut self, fd: u32) -> Result<FileStat, Errno>;
    /// Maps `len` bytes of `fd` read-only, for the rest of the process.
    fn map(&mut self, fd: u32, len: usize) -> Result<&'static [u8], Errno>;
    /// The path of the file open on `fd`, read from `link`
    /// (`/proc/self/fd/N`); `None` when it cannot be read or does not fit.
    fn read_link<'b>(
        &mut self,
        fd: u32,
        link: &CStr,
        buf: &'b mut [MaybeUninit<u8>],
    ) -> Option<&'b [u8]>;
    /// Whether `path` exists for the effective ids (`stat`).
    fn exists(&mut self, path: &CStr) -> bool;
    /// Sets or clears close-on-exec on `fd`.
    fn set_cloexec(&mut self, fd: u32, cloexec: bool);
    /// Buffers for an exec too large for the stack.
    fn alloc_exec_buffers(
        &mut self,
        argv: usize,
        envp: usize,
        arena: usize,
    ) -> Result<ExecBuffers, Errno>;
    /// Executes `call`. A real exec returns only its error; `Ok` means the
    /// host recorded the exec as made, and the exec path ends there.
    fn execve(&mut self, call: &ExecCall<'_>) -> Result<(), Errno>;
    /// Writes one message to stderr.
    fn write_stderr(&mut self, bytes: &[u8]);
    /// Writes to stdout (`--help`, `--version`).
    fn write_stdout(&mut self, bytes: &[u8]);
    /// Whether stdin is a terminal: asked only once an exec has failed,
    /// to show the failure in a dialog to a person who started the program
    /// from a desktop.
    fn stdin_is_terminal(&mut self) -> bool;
    /// Whether the dispatcher's own file is set-user-id or set-group-id.
    fn dispatcher_is_set_id(&mut self) -> bool;
    /// Whether `path` leads to the dispatcher's own file.
    fn is_dispatcher(&mut self, path: &CStr) -> bool;
    /// Whether an interpreter is bundled into the trampoline for `path`
    /// (NUL-terminated), which the root the exec runs in lacks (a foreign
    /// container or chroot); if so, the next [`Host::execve`] runs that
    /// copy in place of the file at its path. The trampoline's answers from
    /// its own file; the default has no bundle.
    fn use_bundled(&mut self, _path: &[u8]) -> bool {
        false
    }
    /// Observes a step; the trampoline's does nothing.
    #[inline(always)]
    fn note(&mut self, _event: Event<'_>) {}
}

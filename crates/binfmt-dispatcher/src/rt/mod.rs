//! The trampoline's no-libc runtime. All of the project's `unsafe` lives
//! here, each block with the reason it is sound:
//!
//! - `x86_64.rs`, `aarch64.rs`, `riscv64.rs`, one per architecture (the
//!   target's is compiled, as `arch`): the process entry point `_start`,
//!   the raw syscall, and the `mem*`/`strlen` symbols the compiler emits
//!   calls to;
//! - `start.rs`: the initial stack (argv, envp, auxv) read into a
//!   [`Process`];
//! - `config.rs`: the configuration embedded in the trampoline;
//! - `load.rs`: running an interpreter bundled into the trampoline;
//! - here: the initial stack's strings and the syscalls the exec path
//!   makes, safe to call.
//!
//! Syscalls go through rustix's raw Linux backend; `execve` and
//! `exit_group` are the two rustix keeps out of its public API, so they are
//! issued directly (`arch::syscall5`) with numbers from linux-raw-sys, and
//! so is `prlimit64` in `load.rs`: rustix's `getrlimit` takes its failure
//! (a seccomp filter's, say) for impossible and reads what was not written.

#![allow(unsafe_code)]

// The `mem*` functions are written in assembly so that the compiler cannot
// turn their loops back into calls to themselves. They favour size over
// speed: the trampoline copies a few hundred bytes per exec.
#[cfg_attr(target_arch = "x86_64", path = "x86_64.rs")]
#[cfg_attr(target_arch = "aarch64", path = "aarch64.rs")]
#[cfg_attr(target_arch = "riscv64", path = "riscv64.rs")]
mod arch;
mod config;
mod load;
mod start;

#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
)))]
compile_error!("the trampoline's runtime is written for x86_64, aarch64 and riscv64");

pub use config::embedded_config;
pub use load::{image_for as bundled_image, run as run_bundled, Image as BundledImage};
pub use start::Process;

use core::ffi::CStr;

use linux_raw_sys::general as sys;
use rustix::fd::{BorrowedFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use binfmt_dispatcher_core::driver::FileStat;
use binfmt_dispatcher_core::launch::Strings;

/// A list of NUL-terminated strings from the initial stack.
#[derive(Clone, Copy)]
pub struct CStrList {
    ptrs: &'static [*const u8],
}

impl CStrList {
    /// String `i` as a `CStr`.
    pub fn c_str(&self, i: usize) -> &'static CStr {
        // SAFETY: the kernel put NUL-terminated strings behind every pointer
        // of argv and envp, and the initial stack lives as long as the process.
        unsafe { CStr::from_ptr(self.ptrs[i].cast()) }
    }

    /// String `i` with its NUL.
    pub fn with_nul(&self, i: usize) -> &'static [u8] {
        self.c_str(i).to_bytes_with_nul()
    }

    /// Whether string `i` starts with `prefix`, reading no further than the
    /// first difference (no `strlen` over every environment entry).
    /// Inlined into the one pass over the environment of each caller.
    #[inline(always)]
    pub fn starts_with(&self, i: usize, prefix: &[u8]) -> bool {
        let p = self.ptrs[i];
        prefix.iter().enumerate().all(|(at, &want)| {
            // SAFETY: the string behind `p` is NUL-terminated; `all` stops
            // at the first mismatch and `want` is never NUL, so the
            // terminator is a mismatch and no read passes it.
            want != 0 && unsafe { *p.add(at) } == want
        })
    }
}

impl Strings for CStrList {
    fn count(&self) -> usize {
        self.ptrs.len()
    }
    #[inline(always)]
    fn starts_with(&self, i: usize, prefix: &[u8]) -> bool {
        CStrList::starts_with(self, i, prefix)
    }
    fn ptr(&self, i: usize) -> *const u8 {
        self.ptrs[i]
    }
    fn bytes(&self, i: usize) -> &[u8] {
        self.c_str(i).to_bytes()
    }
    fn with_nul(&self, i: usize) -> &[u8] {
        CStrList::with_nul(self, i)
    }
    fn c_str(&self, i: usize) -> &CStr {
        CStrList::c_str(self, i)
    }
    fn first_byte(&self, i: usize) -> u8 {
        // SAFETY: every entry is NUL-terminated, so it has a first byte.
        unsafe { *self.ptrs[i] }
    }
    fn has_key(&self, i: usize, key: &[u8]) -> bool {
        // `KEY=`: the key, then `=`, compared without measuring the string.
        self.starts_with(i, key) && {
            let p = self.ptrs[i];
            // SAFETY: the first `key.len()` bytes matched non-NUL bytes, so
            // the string is at least that long and the byte after is in it
            // or its terminator.
            unsafe { *p.add(key.len()) == b'=' }
        }
    }
}

/// Ends the process.
pub fn exit(code: i32) -> ! {
    // SAFETY: exit_group takes one integer and does not return.
    unsafe {
        arch::syscall5(sys::__NR_exit_group, code as usize, 0, 0, 0, 0);
    }
    #[allow(clippy::empty_loop)]
    loop {}
}

/// Writes `bytes` to stderr, best effort.
pub fn write_stderr(bytes: &[u8]) {
    let _ = rustix::io::write(borrowed(2), bytes);
}

/// Writes `bytes` to stdout, best effort.
pub fn write_stdout(bytes: &[u8]) {
    let _ = rustix::io::write(borrowed(1), bytes);
}

/// A descriptor the process did not open itself, by number.
pub fn borrowed(fd: u32) -> BorrowedFd<'static> {
    // SAFETY: used only for descriptors the kernel handed over (AT_EXECFD)
    // and never closed by this process; a stale number only makes the
    // syscalls on it fail with EBADF.
    unsafe { BorrowedFd::borrow_raw(fd as i32) }
}

/// Opens `path` read-only and close-on-exec.
pub fn open(path: &CStr) -> Result<OwnedFd, Errno> {
    rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
}

/// Opens the directory `path`, read-only and close-on-exec.
pub fn open_dir(path: &CStr) -> Result<OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    rustix::fs::open(path, flags, Mode::empty())
}

/// Opens `name` in the directory `dir` read-only and close-on-exec, and
/// not if it is a symbolic link.
pub fn open_at(dir: BorrowedFd<'_>, name: &CStr) -> Result<OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    rustix::fs::openat(dir, name, flags, Mode::empty())
}

/// The owner uid, mode, size and link count of an open file.
pub fn stat(fd: BorrowedFd<'_>) -> Result<FileStat, Errno> {
    let st = rustix::fs::fstat(fd)?;
    Ok(FileStat {
        owner: st.st_uid,
        mode: st.st_mode as u32,
        size: st.st_size as u64,
        links: st.st_nlink as u64,
    })
}

/// Maps `len` bytes of `fd` read-only for the rest of the process's life.
pub fn map_file(fd: BorrowedFd<'_>, len: usize) -> Result<&'static [u8], Errno> {
    // SAFETY: a fresh private read-only mapping aliases nothing; it is never
    // unmapped, so the slice lives as long as the process. The caller takes
    // `len` from fstat; a file truncated after that is the blob writer's
    // contract to prevent (it replaces files by rename, never in place).
    unsafe {
        let p = rustix::mm::mmap(
            core::ptr::null_mut(),
            len,
            rustix::mm::ProtFlags::READ,
            rustix::mm::MapFlags::PRIVATE,
            fd,
            0,
        )?;
        Ok(core::slice::from_raw_parts(p.cast::<u8>(), len))
    }
}

/// An argv, an envp (null pointers) and a byte arena, zeroed, of the given
/// lengths, in one fresh mapping (one syscall), never freed: the process
/// execs or exits right after using them.
#[allow(clippy::type_complexity)]
pub fn alloc_exec_buffers(
    argv: usize,
    envp: usize,
    arena: usize,
) -> Result<
    (
        &'static mut [*const u8],
        &'static mut [*const u8],
        &'static mut [u8],
    ),
    Errno,
> {
    let pointers = argv.checked_add(envp).ok_or(Errno::NOMEM)?;
    let pointer_bytes = pointers
        .checked_mul(core::mem::size_of::<*const u8>())
        .ok_or(Errno::NOMEM)?;
    let bytes = pointer_bytes.checked_add(arena).ok_or(Errno::NOMEM)?;
    // SAFETY: an anonymous private mapping of `bytes` is zero-filled,
    // page-aligned (so aligned for pointers) and aliased by nothing. It is
    // cut into three disjoint slices: `pointers` null pointers (all-zero
    // bytes are a valid null pointer), then `arena` bytes; it is never
    // unmapped, so the slices live as long as the process.
    unsafe {
        let p = rustix::mm::mmap_anonymous(
            core::ptr::null_mut(),
            bytes.max(1),
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
            rustix::mm::MapFlags::PRIVATE,
        )?;
        let ptrs = p.cast::<*const u8>();
        Ok((
            core::slice::from_raw_parts_mut(ptrs, argv),
            core::slice::from_raw_parts_mut(ptrs.add(argv), envp),
            core::slice::from_raw_parts_mut(p.cast::<u8>().add(pointer_bytes), arena),
        ))
    }
}

/// Whether `path` exists, as the process will find it: `stat` resolves
/// the path with the effective ids, where `access` would use the real ones
/// (the caller's, in a set-id exec).
pub fn exists(path: &CStr) -> bool {
    rustix::fs::stat(path).is_ok()
}

/// Whether stdin is a terminal: rustix's `isatty`, one `ioctl`
/// (`TIOCGWINSZ`), which fails on anything but a terminal.
pub fn stdin_is_terminal() -> bool {
    // SAFETY: descriptor 0 is only asked about, never closed; when the
    // caller left it closed the ioctl fails with EBADF: not a terminal.
    let stdin = unsafe { BorrowedFd::borrow_raw(0) };
    rustix::termios::isatty(stdin)
}

/// Whether the file at `path` is set-user-id or set-group-id.
pub fn is_set_id(path: &CStr) -> bool {
    rustix::fs::stat(path).is_ok_and(|st| st.st_mode & 0o6000 != 0)
}

/// Whether the paths `a` and `b` lead to the same file.
pub fn same_file(a: &CStr, b: &CStr) -> bool {
    match (rustix::fs::stat(a), rustix::fs::stat(b)) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    }
}

/// Sets or clears close-on-exec on a descriptor.
pub fn set_cloexec(fd: BorrowedFd<'_>, cloexec: bool) {
    let flags = if cloexec {
        rustix::io::FdFlags::CLOEXEC
    } else {
        rustix::io::FdFlags::empty()
    };
    let _ = rustix::io::fcntl_setfd(fd, flags);
}

/// Executes `path` with `argv` and `envp`; returns only on failure.
///
/// `path` must be NUL-terminated and `argv`/`envp` NULL-terminated arrays of
/// pointers to NUL-terminated strings that outlive the call; `launch::build`
/// produces exactly that.
pub fn execve(path: &[u8], argv: &[*const u8], envp: &[*const u8]) -> Errno {
    let terminated = |list: &[*const u8]| list.last().is_some_and(|p| p.is_null());
    if path.last() != Some(&0) || !terminated(argv) || !terminated(envp) {
        return Errno::INVAL;
    }
    // SAFETY: checked above that the path is NUL-terminated and both arrays
    // NULL-terminated. The kernel copies the strings in with fault-checked
    // user-memory reads, so even a bad pointer yields EFAULT, not UB; the
    // pointers launch::build makes point into the initial stack, the blob
    // and the caller's live buffers.
    // Plain execve, not execveat(AT_FDCWD, .., 0): the kernel runs the same
    // code for both, and qemu-user before 8.0 lacks execveat (ENOSYS), which
    // would break the trampoline run by hand under qemu-aarch64.
    let ret = unsafe {
        arch::syscall5(
            sys::__NR_execve,
            path.as_ptr() as usize,
            argv.as_ptr() as usize,
            envp.as_ptr() as usize,
            0,
            0,
        )
    };
    Errno::from_raw_os_error(-ret as i32)
}

/// The number of a descriptor the process keeps open until it execs or
/// exits: it is close-on-exec, and closing it would only cost a syscall.
pub fn keep(fd: OwnedFd) -> u32 {
    use rustix::fd::IntoRawFd;
    fd.into_raw_fd() as u32
}

/// The unwinding personality the precompiled `core` refers to from its
/// unwind tables. With `panic = "abort"` nothing unwinds, so it is never
/// called; it only has to exist for unoptimised builds to link.
#[no_mangle]
extern "C" fn rust_eh_personality() {}

//! The exec path's host in the trampoline: each request is the syscall.

use core::ffi::CStr;
use core::mem::MaybeUninit;

use binfmt_dispatcher_core::driver::{whole_link, ExecBuffers, ExecCall, FileStat, Host};
use rustix::io::Errno;

use crate::rt;

/// The trampoline's host: every call a syscall (or none). It remembers
/// only what running a bundled interpreter needs: the process, the image
/// chosen, and the highest descriptor it has opened.
pub struct Syscalls<'p> {
    process: &'p rt::Process,
    bundled: Option<rt::BundledImage>,
    highest_fd: u32,
}

impl<'p> Syscalls<'p> {
    /// The host of `process`.
    pub fn new(process: &'p rt::Process) -> Self {
        Syscalls {
            process,
            bundled: None,
            highest_fd: process.facts.execfd.unwrap_or(0),
        }
    }

    /// `fd`, kept open (rt::keep) and remembered as opened.
    fn keep(&mut self, fd: rustix::fd::OwnedFd) -> u32 {
        let fd = rt::keep(fd);
        self.highest_fd = self.highest_fd.max(fd);
        fd
    }
}

impl Host for Syscalls<'_> {
    fn open(&mut self, path: &CStr) -> Result<u32, Errno> {
        rt::open(path).map(|fd| self.keep(fd))
    }

    fn open_dir(&mut self, path: &CStr) -> Result<u32, Errno> {
        rt::open_dir(path).map(|fd| self.keep(fd))
    }

    fn open_at(&mut self, dir: u32, name: &CStr) -> Result<u32, Errno> {
        rt::open_at(rt::borrowed(dir), name).map(|fd| self.keep(fd))
    }

    fn pread<'b>(
        &mut self,
        fd: u32,
        offset: u64,
        buf: &'b mut [MaybeUninit<u8>],
    ) -> Result<&'b [u8], Errno> {
        rustix::io::pread(rt::borrowed(fd), buf, offset).map(|(read, _)| &*read)
    }

    fn fstat(&mut self, fd: u32) -> Result<FileStat, Errno> {
        rt::stat(rt::borrowed(fd))
    }

    fn map(&mut self, fd: u32, len: usize) -> Result<&'static [u8], Errno> {
        rt::map_file(rt::borrowed(fd), len)
    }

    #[inline(always)]
    fn read_link<'b>(
        &mut self,
        _fd: u32,
        link: &CStr,
        buf: &'b mut [MaybeUninit<u8>],
    ) -> Option<&'b [u8]> {
        whole_link(rustix::fs::readlinkat_raw(rustix::fs::CWD, link, buf))
    }

    fn exists(&mut self, path: &CStr) -> bool {
        rt::exists(path)
    }

    fn set_cloexec(&mut self, fd: u32, cloexec: bool) {
        rt::set_cloexec(rt::borrowed(fd), cloexec)
    }

    fn alloc_exec_buffers(
        &mut self,
        argv: usize,
        envp: usize,
        arena: usize,
    ) -> Result<ExecBuffers, Errno> {
        rt::alloc_exec_buffers(argv, envp, arena)
    }

    fn execve(&mut self, call: &ExecCall<'_>) -> Result<(), Errno> {
        match self.bundled.take() {
            None => Err(rt::execve(call.path, call.argv, call.envp)),
            Some(image) => Err(rt::run_bundled(self.process, image, call, self.highest_fd)),
        }
    }

    fn use_bundled(&mut self, path: &[u8]) -> bool {
        self.bundled = rt::bundled_image(self.process, path);
        self.bundled.is_some()
    }

    fn write_stderr(&mut self, bytes: &[u8]) {
        rt::write_stderr(bytes)
    }

    fn write_stdout(&mut self, bytes: &[u8]) {
        rt::write_stdout(bytes)
    }

    fn stdin_is_terminal(&mut self) -> bool {
        rt::stdin_is_terminal()
    }

    fn dispatcher_is_set_id(&mut self) -> bool {
        rt::is_set_id(c"/proc/self/exe")
    }

    fn is_dispatcher(&mut self, path: &CStr) -> bool {
        rt::same_file(path, c"/proc/self/exe")
    }
}

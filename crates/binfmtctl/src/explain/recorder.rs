//! The host `explain` runs the exec path over: it answers from the file
//! system as the trampoline's syscalls would, and records each exec instead
//! of making it.

use std::ffi::{CStr, CString};
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use binfmt_dispatcher_core::driver::{
    whole_link, ConfigSource, Event, ExecBuffers, ExecCall, FileStat, Host,
};
use binfmt_dispatcher_core::launch;
use binfmt_dispatcher_core::paths;
use rustix::fd::{AsRawFd, OwnedFd};
use rustix::fs::{Access, FileType, Mode, OFlags, CWD};
use rustix::io::Errno;

use super::report::{Decision, Running, Tried};
use super::OwnedStrings;

/// The kernel's limit on one argument or environment string, with its NUL
/// (`MAX_ARG_STRLEN`).
const MAX_ARG_STRLEN: usize = 32 * 4096;

/// One exec the exec path made.
pub struct Recorded {
    /// The file executed.
    pub path: Vec<u8>,
    pub argv: Vec<Vec<u8>>,
    pub envp: Vec<Vec<u8>>,
    /// Whether the binary's descriptor stays open in the new program.
    pub keeps_fd: bool,
    /// `None`: it would run; else the error `execve` would return.
    pub error: Option<Errno>,
    /// Whether the copy bundled into the dispatcher runs, the file being
    /// missing from the root.
    pub bundled: bool,
}

/// What the exec path did and said, in order.
#[derive(Default)]
pub struct Seen {
    pub facts: Option<(serde_json::Value, Vec<String>)>,
    /// Each configuration used: the source and path.
    pub configurations: Vec<(ConfigSource, Vec<u8>)>,
    pub paths: Vec<Vec<u8>>,
    pub decision: Option<Decision>,
    /// The interpreter last executed (or about to be).
    pub running: Option<Running>,
    pub tried: Vec<Tried>,
    pub execs: Vec<Recorded>,
    pub stderr: Vec<String>,
    pub stdout: Vec<u8>,
}

/// The recording host.
pub struct Recorder {
    /// Descriptors by the number the exec path is told: the binary's first
    /// (binfmt_misc's, or the first free one), then each the dispatcher
    /// opens, as numbers are handed out by a process with only 0, 1 and 2
    /// open.
    fds: Vec<(u32, OwnedFd)>,
    next_fd: u32,
    /// Which descriptors survive exec.
    inherited: Vec<u32>,
    /// The binary's descriptor, once known.
    binary_fd: Option<u32>,
    /// The system cache's path (below `--root`).
    system_cache: PathBuf,
    /// The dispatcher named by `--dispatcher`, for its set-id bits.
    dispatcher: Option<PathBuf>,
    /// Where `build`'s pointers may point, besides the exec's own arena.
    regions: Vec<&'static [u8]>,
    /// The interpreters bundled into the dispatcher, by path.
    bundled: Vec<Vec<u8>>,
    /// Whether the next exec runs a bundled copy.
    runs_bundled: bool,
    pub seen: Seen,
}

impl Recorder {
    /// A recorder for a process started with `binary`, binfmt_misc's
    /// descriptor (O flag), open as `first_fd`; without it the exec path
    /// opens the binary itself and gets `first_fd`. `strings` are the
    /// process's argv and envp.
    pub fn new(
        (first_fd, binary): (u32, Option<OwnedFd>),
        system_cache: PathBuf,
        dispatcher: Option<PathBuf>,
        strings: [&'static OwnedStrings; 2],
        baked: &'static [u8],
    ) -> Recorder {
        let given = binary.is_some().then_some(first_fd);
        Recorder {
            fds: binary.map(|fd| (first_fd, fd)).into_iter().collect(),
            next_fd: first_fd + u32::from(given.is_some()),
            inherited: given.into_iter().collect(),
            binary_fd: given,
            system_cache,
            dispatcher,
            regions: vec![strings[0].as_bytes(), strings[1].as_bytes(), baked],
            bundled: Vec::new(),
            runs_bundled: false,
            seen: Seen::default(),
        }
    }

    /// The recorder of a dispatcher that bundles the interpreters at
    /// `paths` (`binfmtctl bundle`).
    pub fn with_bundled(mut self, paths: Vec<Vec<u8>>) -> Recorder {
        self.bundled = paths;
        self
    }

    /// The binary's descriptor, as the exec path numbered it.
    pub fn binary_fd(&self) -> Option<u32> {
        self.binary_fd
    }

    fn fd(&self, n: u32) -> Result<&OwnedFd, Errno> {
        self.fds
            .iter()
            .find(|(k, _)| *k == n)
            .map(|(_, fd)| fd)
            .ok_or(Errno::BADF)
    }

    /// Keeps `fd` under the next number; the first is the binary's when
    /// the exec path opens it itself (no O flag).
    fn keep(&mut self, fd: OwnedFd) -> u32 {
        let n = self.next_fd;
        self.next_fd += 1;
        self.fds.push((n, fd));
        self.binary_fd.get_or_insert(n);
        n
    }

    /// The file the exec path means by `path`: the system cache's below
    /// `--root`, others as they are.
    fn real_path(&self, path: &CStr) -> CString {
        let real = if path == paths::SYSTEM_CACHE {
            self.system_cache.as_path()
        } else if path == paths::SYSTEM_CACHE_DIR {
            self.system_cache.parent().unwrap_or(Path::new("/"))
        } else {
            return path.to_owned();
        };
        CString::new(real.as_os_str().as_bytes()).unwrap_or_default()
    }

    fn open_flags(&mut self, path: &CStr, flags: OFlags) -> Result<u32, Errno> {
        let real = self.real_path(path);
        let fd = rustix::fs::open(real.as_c_str(), flags | OFlags::CLOEXEC, Mode::empty())?;
        Ok(self.keep(fd))
    }

    /// The C string at `p`, found by address: pointers from `launch::build`
    /// point into the exec's arena and binary name, the blob, the process's
    /// strings, or launch's statics.
    fn string_at(&self, p: *const u8, call: &ExecCall<'_>) -> Vec<u8> {
        let statics: [&[u8]; 4] = [
            launch::MUVM_SEPARATOR.to_bytes_with_nul(),
            launch::QEMU_ARGV0_OPTION.to_bytes_with_nul(),
            launch::JAVA_CLASS_PATH_OPTION.to_bytes_with_nul(),
            launch::JAVA_JAR_OPTION.to_bytes_with_nul(),
        ];
        let own = [call.arena, call.binary, call.path];
        let addr = p as usize;
        let regions = statics.iter().chain(&own).chain(&self.regions);
        for region in regions {
            let start = region.as_ptr() as usize;
            if (start..start + region.len()).contains(&addr) {
                let rest = &region[addr - start..];
                let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
                return rest[..end].to_vec();
            }
        }
        b"(unknown)".to_vec()
    }

    fn strings(&self, ptrs: &[*const u8], call: &ExecCall<'_>) -> Vec<Vec<u8>> {
        let live = ptrs.iter().take_while(|p| !p.is_null());
        live.map(|&p| self.string_at(p, call)).collect()
    }
}

/// What `execve` would say of running `path` with these strings: the
/// kernel's checks that a file system can answer.
fn exec_error(path: &[u8], argv: &[Vec<u8>], envp: &[Vec<u8>]) -> Option<Errno> {
    let Ok(path) = CString::new(path) else {
        return Some(Errno::INVAL);
    };
    match rustix::fs::stat(path.as_c_str()) {
        Err(e) => return Some(e),
        Ok(st) if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile => {
            return Some(Errno::ACCESS)
        }
        Ok(_) => {}
    }
    if let Err(e) = rustix::fs::access(path.as_c_str(), Access::EXEC_OK) {
        return Some(e);
    }
    let strings = argv.iter().chain(envp);
    if strings.clone().any(|s| s.len() + 1 > MAX_ARG_STRLEN) {
        return Some(Errno::TOOBIG);
    }
    let total: usize = strings.map(|s| s.len() + 1 + size_of::<usize>()).sum();
    let limit = rustix::process::getrlimit(rustix::process::Resource::Stack)
        .current
        .map_or(usize::MAX, |c| (c / 4) as usize);
    (total > limit.max(MAX_ARG_STRLEN)).then_some(Errno::TOOBIG)
}

impl Host for Recorder {
    fn open(&mut self, path: &CStr) -> Result<u32, Errno> {
        self.open_flags(path, OFlags::RDONLY)
    }

    fn open_dir(&mut self, path: &CStr) -> Result<u32, Errno> {
        self.open_flags(path, OFlags::RDONLY | OFlags::DIRECTORY)
    }

    fn open_at(&mut self, dir: u32, name: &CStr) -> Result<u32, Errno> {
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        let fd = rustix::fs::openat(self.fd(dir)?, name, flags, Mode::empty())?;
        Ok(self.keep(fd))
    }

    fn pread<'b>(
        &mut self,
        fd: u32,
        offset: u64,
        buf: &'b mut [MaybeUninit<u8>],
    ) -> Result<&'b [u8], Errno> {
        rustix::io::pread(self.fd(fd)?, buf, offset).map(|(read, _)| &*read)
    }

    fn fstat(&mut self, fd: u32) -> Result<FileStat, Errno> {
        let st = rustix::fs::fstat(self.fd(fd)?)?;
        Ok(FileStat {
            owner: st.st_uid,
            mode: st.st_mode,
            size: st.st_size as u64,
            links: st.st_nlink as u64,
        })
    }

    /// A copy, never freed: explain runs the exec path once.
    fn map(&mut self, fd: u32, len: usize) -> Result<&'static [u8], Errno> {
        let mut bytes = vec![0; len];
        let mut at = 0;
        while at < len {
            match rustix::io::pread(self.fd(fd)?, &mut bytes[at..], at as u64)? {
                0 => return Err(Errno::IO), // truncated since fstat
                n => at += n,
            }
        }
        let bytes: &'static [u8] = Vec::leak(bytes);
        self.regions.push(bytes);
        Ok(bytes)
    }

    fn read_link<'b>(
        &mut self,
        fd: u32,
        _link: &CStr,
        buf: &'b mut [MaybeUninit<u8>],
    ) -> Option<&'b [u8]> {
        let real = format!("/proc/self/fd/{}", self.fd(fd).ok()?.as_raw_fd());
        whole_link(rustix::fs::readlinkat_raw(CWD, real.as_str(), buf))
    }

    fn exists(&mut self, path: &CStr) -> bool {
        rustix::fs::stat(path).is_ok()
    }

    fn set_cloexec(&mut self, fd: u32, cloexec: bool) {
        self.inherited.retain(|&n| n != fd);
        if !cloexec {
            self.inherited.push(fd);
        }
    }

    /// Buffers never freed: explain runs the exec path once.
    fn alloc_exec_buffers(
        &mut self,
        argv: usize,
        envp: usize,
        arena: usize,
    ) -> Result<ExecBuffers, Errno> {
        let pointers = |n| Vec::leak(vec![std::ptr::null(); n]);
        Ok((pointers(argv), pointers(envp), Vec::leak(vec![0; arena])))
    }

    fn execve(&mut self, call: &ExecCall<'_>) -> Result<(), Errno> {
        let argv = self.strings(call.argv, call);
        let envp = self.strings(call.envp, call);
        let path = call.path.strip_suffix(b"\0").unwrap_or(call.path).to_vec();
        // A bundled copy is loaded, not executed: its file is not needed.
        let bundled = std::mem::take(&mut self.runs_bundled);
        let error = if bundled {
            None
        } else {
            exec_error(&path, &argv, &envp)
        };
        let keeps_fd = self
            .binary_fd
            .is_some_and(|fd| self.inherited.contains(&fd));
        self.seen.execs.push(Recorded {
            path,
            argv,
            envp,
            keeps_fd,
            error,
            bundled,
        });
        error.map_or(Ok(()), Err)
    }

    fn use_bundled(&mut self, path: &[u8]) -> bool {
        let path = path.strip_suffix(b"\0").unwrap_or(path);
        self.runs_bundled = self.bundled.iter().any(|p| p == path);
        self.runs_bundled
    }

    fn write_stderr(&mut self, bytes: &[u8]) {
        let line = String::from_utf8_lossy(bytes);
        self.seen
            .stderr
            .push(line.trim_end_matches('\n').to_string());
    }

    fn write_stdout(&mut self, bytes: &[u8]) {
        self.seen.stdout.extend_from_slice(bytes);
    }

    /// explain's own stdin stands for the program's: run as the program
    /// would be, explain sees what the dispatcher would.
    fn stdin_is_terminal(&mut self) -> bool {
        std::io::IsTerminal::is_terminal(&std::io::stdin())
    }

    fn dispatcher_is_set_id(&mut self) -> bool {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &PathBuf| std::fs::metadata(p).map_or(0, |m| m.permissions().mode());
        self.dispatcher
            .as_ref()
            .is_some_and(|p| mode(p) & 0o6000 != 0)
    }

    fn is_dispatcher(&mut self, _path: &CStr) -> bool {
        false
    }

    fn note(&mut self, event: Event<'_>) {
        super::report::note(&mut self.seen, event);
    }
}

/// `path` opened as binfmt_misc opens the binary: read-only.
pub fn open_binary(path: &[u8]) -> Result<OwnedFd, Errno> {
    let path = CString::new(path).map_err(|_| Errno::INVAL)?;
    rustix::fs::open(
        path.as_c_str(),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

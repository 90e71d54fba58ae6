//! Writing files atomically, as no other user can open them until they
//! are complete, and never through a directory another user controls.
//!
//! Every path is walked from `/` one component at a time through
//! descriptors (`openat` with `O_NOFOLLOW`, `mkdirat`, `renameat`), never
//! resolved again by name: a directory or link swapped during the walk
//! makes it fail, not write elsewhere. As root, every directory on the way
//! must be root's and not writable by all (unless sticky), and a symbolic
//! link is followed only when it is root's: root run with a user's
//! environment (`sudo -E binfmtctl compile --user`) would otherwise follow
//! that user's `~/.cache/binfmt-dispatcher -> /var/cache/binfmt-dispatcher`
//! and write the user's configuration as the system cache.

use std::collections::VecDeque;
use std::ffi::{CStr, CString};
use std::io;
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, CWD};
use rustix::io::Errno;

/// How many symbolic links one walk may follow, as the kernel allows.
const MAX_LINKS: usize = 40;

/// Writes `bytes` to `path` by way of a temporary file in the same
/// directory, fsync and rename, then fsyncs the directory; mode 0644.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    // Readable by all, writable by the owner only: the trampoline rejects
    // a group- or world-writable cache in secure mode.
    write_atomically_mode(path, bytes, 0o644)
}

/// [`write_atomically`], with the file's `mode`.
///
/// The temporary file is created 0600, whatever the umask, and given
/// `mode` only once it is complete: no other user can open it while it is
/// written, and a descriptor opened on it then would survive the rename
/// into a file the dispatcher trusts. Directories on the way that do not
/// exist yet are created 0755.
pub fn write_atomically_mode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let (dir, name) = split(path)?;
    let dir = open_dir(dir, true)?;
    let tmp = c_string(&[b".", name, format!(".tmp{}", std::process::id()).as_bytes()].concat())?;
    let name = c_string(name)?;
    let result = write_new(&dir, &tmp, bytes, mode).and_then(|()| {
        rustix::fs::renameat(&dir, tmp.as_c_str(), &dir, name.as_c_str()).map_err(io_error)
    });
    if result.is_err() {
        let _ = rustix::fs::unlinkat(&dir, tmp.as_c_str(), AtFlags::empty());
    }
    result?;
    rustix::fs::fsync(&dir).map_err(io_error)
}

/// Removes the file `path`, reached as [`write_atomically`] reaches it.
pub fn remove(path: &Path) -> io::Result<()> {
    let (dir, name) = split(path)?;
    let dir = open_dir(dir, false)?;
    rustix::fs::unlinkat(&dir, c_string(name)?.as_c_str(), AtFlags::empty()).map_err(io_error)
}

/// Creates `dir` and the directories above it that are missing, each with
/// mode 0755 whatever the umask.
pub fn create_dirs(dir: &Path) -> io::Result<()> {
    open_dir(dir, true).map(drop)
}

/// `path`'s directory (`.` for a bare name) and file name.
fn split(path: &Path) -> io::Result<(&Path, &[u8])> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Ok((dir, name.as_bytes()))
}

/// Creates `name` in `dir` 0600, writes `bytes`, fsyncs it and gives it
/// `mode`.
fn write_new(dir: &OwnedFd, name: &CStr, bytes: &[u8], mode: u32) -> io::Result<()> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let file =
        rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(0o600)).map_err(io_error)?;
    let mut rest = bytes;
    while !rest.is_empty() {
        match rustix::io::write(&file, rest) {
            Ok(n) => rest = &rest[n..],
            Err(Errno::INTR) => {}
            Err(e) => return Err(io_error(e)),
        }
    }
    rustix::fs::fsync(&file).map_err(io_error)?;
    rustix::fs::fchmod(&file, Mode::from_raw_mode(mode)).map_err(io_error)
}

/// One walk: the directories opened so far, what is left of the path, and
/// the path as resolved, for messages.
struct Walk {
    opened: Vec<OwnedFd>,
    todo: VecDeque<Vec<u8>>,
    shown: PathBuf,
    links: usize,
    /// As root: the owners trusted, uid 0 and the owner of `/` (in a user
    /// namespace the real root's files show as the overflow uid, and root
    /// there is its creator, no one more).
    trusted: Option<[u32; 2]>,
    create: bool,
}

/// Opens the directory `dir`, walking from `/` (a relative `dir` from the
/// current directory's path): each component by `openat(O_NOFOLLOW)`, a
/// symbolic link read and its target walked in turn, `..` back to the
/// directory opened before, missing directories created when `create` (and
/// only where no `..` follows, as the kernel would not resolve one).
fn open_dir(dir: &Path, create: bool) -> io::Result<OwnedFd> {
    let root = rustix::process::geteuid().is_root();
    let trusted = match root {
        true => Some([0, rustix::fs::stat(c"/").map_err(io_error)?.st_uid]),
        false => None,
    };
    let path = std::env::current_dir()?.join(dir);
    let mut walk = Walk {
        opened: Vec::new(),
        todo: VecDeque::new(),
        shown: PathBuf::new(),
        links: 0,
        trusted,
        create,
    };
    walk.push_front(path.as_os_str().as_bytes());
    while let Some(part) = walk.todo.pop_front() {
        walk.step(&part)?;
    }
    walk.opened
        .pop()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no directory"))
}

impl Walk {
    /// Puts the components of `path` before what is left; an absolute one
    /// starts again from `/`.
    fn push_front(&mut self, path: &[u8]) {
        let parts = path.split(|&b| b == b'/').filter(|p| !p.is_empty());
        for part in parts.rev() {
            self.todo.push_front(part.to_vec());
        }
        if path.starts_with(b"/") {
            self.todo.push_front(b"/".to_vec());
        }
    }

    /// Takes one component.
    fn step(&mut self, part: &[u8]) -> io::Result<()> {
        match part {
            b"/" => {
                self.opened.clear();
                self.shown = PathBuf::from("/");
                let fd = open_in(CWD, c"/")?;
                self.check(&fd)?;
                self.opened.push(fd);
                Ok(())
            }
            b"." => Ok(()),
            b".." => {
                if self.opened.len() > 1 {
                    self.opened.pop();
                    self.shown.pop();
                }
                Ok(())
            }
            name => self.enter(name),
        }
    }

    /// Enters `name` in the current directory: a directory, a link to
    /// follow, or one to create.
    fn enter(&mut self, name: &[u8]) -> io::Result<()> {
        let here = self.opened.last().ok_or_else(|| io_error(Errno::NOENT))?;
        let c_name = c_string(name)?;
        self.shown.push(std::ffi::OsStr::from_bytes(name));
        let created = match rustix::fs::statat(here, c_name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                return self.follow(&c_name, st.st_uid);
            }
            Ok(_) => false,
            Err(Errno::NOENT) if self.create && !self.todo.iter().any(|p| p == b"..") => {
                // Someone else's since the statat (EEXIST) is only entered.
                match rustix::fs::mkdirat(here, c_name.as_c_str(), Mode::from_raw_mode(0o755)) {
                    Ok(()) => true,
                    Err(Errno::EXIST) => false,
                    Err(e) => return Err(self.error(e)),
                }
            }
            Err(e) => return Err(self.error(e)),
        };
        let fd = open_in(here, &c_name).map_err(|e| self.relabel(e))?;
        if created {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o755)).map_err(|e| self.error(e))?;
        }
        self.check(&fd)?;
        self.opened.push(fd);
        Ok(())
    }

    /// Follows the symbolic link `name`, owned by `owner`, of the current
    /// directory: as root only a trusted owner's.
    fn follow(&mut self, name: &CStr, owner: u32) -> io::Result<()> {
        if self.trusted.is_some_and(|t| !t.contains(&owner)) {
            return Err(self.refusal(&format!("a symbolic link owned by uid {owner}")));
        }
        self.links += 1;
        if self.links > MAX_LINKS {
            return Err(self.error(Errno::LOOP));
        }
        let here = self.opened.last().ok_or_else(|| io_error(Errno::NOENT))?;
        let mut buf = [MaybeUninit::uninit(); 4096];
        let (target, rest) =
            rustix::fs::readlinkat_raw(here, name, &mut buf).map_err(|e| self.error(e))?;
        if rest.is_empty() {
            return Err(self.error(Errno::NAMETOOLONG));
        }
        let target = target.to_vec();
        self.shown.pop();
        self.push_front(&target);
        Ok(())
    }

    /// As root, refuses a directory someone else could change.
    fn check(&self, fd: &OwnedFd) -> io::Result<()> {
        let Some(trusted) = self.trusted else {
            return Ok(());
        };
        let st = rustix::fs::fstat(fd).map_err(|e| self.error(e))?;
        if !trusted.contains(&st.st_uid) {
            return Err(self.refusal(&format!("owned by uid {}", st.st_uid)));
        }
        if st.st_mode & 0o1002 == 0o002 {
            return Err(self.refusal("writable by all"));
        }
        Ok(())
    }

    /// Why root does not go on, naming the directory.
    fn refusal(&self, why: &str) -> io::Error {
        let message = format!(
            "{}: {why}: root does not write below it",
            self.shown.display()
        );
        io::Error::new(io::ErrorKind::PermissionDenied, message)
    }

    /// `e`, naming the directory.
    fn error(&self, e: Errno) -> io::Error {
        self.relabel(io_error(e))
    }

    /// `e`, an error met at the directory, naming it.
    fn relabel(&self, e: io::Error) -> io::Error {
        io::Error::new(e.kind(), format!("{}: {e}", self.shown.display()))
    }
}

/// Opens the directory `name` in `dir`, not through a symbolic link.
fn open_in(dir: impl AsFd, name: &CStr) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(dir, name, flags, Mode::empty()).map_err(io_error)
}

fn c_string(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in a path"))
}

fn io_error(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

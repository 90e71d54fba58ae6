//! The `java` argv style's side of the walk: a class file is run by its
//! class's name on a class path whose root is the file's real location
//! less the class's package, as the kernel's Java wrapper
//! (Documentation/admin-guide/java.rst) runs it; any other file as a JAR.
//! Only this style pays for it: one read of the class file, one
//! `readlink`.

use core::ffi::CStr;
use core::mem::MaybeUninit;

use super::exec::ExecSystem;
use super::{proc_fd_path, Host};
use crate::class::{self, ClassError, ReadAt, NAME_MAX, WINDOW};
use crate::decide::{Candidate, Failure, System};
use crate::launch::{bare, ArgvStyle, Guest, JavaClass, Strings};

/// Why a Java program is not run when the exec raised privileges.
const SECURE: &[u8] = b"not run set-id: java takes its options and classes from the \
caller's environment (JAVA_TOOL_OPTIONS, CLASSPATH)";
/// Why a class file is not where its class's name says.
const MISPLACED: &[u8] = b"the class is not in a file its package and name call for \
(com.x.Main in .../com/x/Main.class)";
/// Why a class path root with a `:` cannot be given.
const COLON: &[u8] = b"its class path root holds a ':', which splits java's class path";

/// The binary's descriptor, read through the host.
struct Descriptor<'h, H: Host> {
    host: &'h mut H,
    fd: u32,
}

impl<H: Host> ReadAt for Descriptor<'_, H> {
    fn read_at(&mut self, offset: u64, buf: &mut [u8; WINDOW]) -> Option<usize> {
        let mut raw = [MaybeUninit::uninit(); WINDOW];
        let read = self.host.pread(self.fd, offset, &mut raw).ok()?;
        buf[..read.len()].copy_from_slice(read);
        Some(read.len())
    }
}

/// Runs a `java` candidate: a class file by its class, anything else with
/// `-jar`. A class that cannot be located is this candidate's failure
/// (when the interpreter exists: a missing one is reported as missing).
#[cold]
#[inline(never)]
pub(super) fn run<H: Host, S: Strings>(
    sys: &mut ExecSystem<'_, '_, '_, H, S>,
    candidate: &Candidate<'_>,
) -> Result<(), Failure<'static>> {
    let guest = sys.exec.guest;
    if guest.secure {
        return Err(Failure::Java(SECURE));
    }
    let mut name_buf = [0u8; NAME_MAX];
    let mut path_buf = [MaybeUninit::uninit(); 1024];
    let java_class = match locate_class(sys, &mut name_buf, &mut path_buf) {
        Ok(class) => class,
        Err(Failure::Java(why)) => return Err(unless_missing(sys, candidate, Failure::Java(why))),
        Err(failure) => return Err(failure),
    };
    let guest = Guest {
        java_class,
        ..*guest
    };
    sys.run_as(candidate, Some(ArgvStyle::Java), &guest)
}

/// The class a class file holds and where `java` finds it, with the
/// caller's `CLASSPATH` after its root; `None` for any other file (a JAR).
fn locate_class<'b, 'x: 'b, H: Host, S: Strings>(
    sys: &mut ExecSystem<'_, 'x, '_, H, S>,
    name_buf: &'b mut [u8; NAME_MAX],
    path_buf: &'b mut [MaybeUninit<u8>],
) -> Result<Option<JavaClass<'b>>, Failure<'static>> {
    let (guest, process) = (sys.exec.guest, sys.exec.p);
    let mut file = Descriptor {
        host: &mut *sys.exec.host,
        fd: sys.exec.fd,
    };
    let len = match class::this_class(&mut file, name_buf) {
        Ok(name) => name.len(),
        Err(ClassError::NotAClass) => return Ok(None),
        Err(e) => return Err(Failure::Java(e.describe())),
    };
    if guest.by_descriptor {
        return Err(Failure::NoSafeName);
    }
    let path = real_path(sys, path_buf).unwrap_or(bare(guest.binary));
    let root = match class::class_path_root(path, &name_buf[..len]) {
        Some(root) if has_colon(root) => return Err(Failure::Java(COLON)),
        Some(root) => root,
        None => return Err(Failure::Java(MISPLACED)),
    };
    let [class_path] = process.env.vars(["CLASSPATH"]);
    let dotted = &mut name_buf[..len];
    dotted
        .iter_mut()
        .filter(|b| **b == b'/')
        .for_each(|b| *b = b'.');
    Ok(Some(JavaClass {
        root,
        class_path: class_path.map_or(&b""[..], CStr::to_bytes),
        name: dotted,
    }))
}

/// Whether `bytes` hold a `:`. Not `contains`: that is `memchr`, which
/// `launch::build` inlines while it has one caller, and this would make
/// two (201 bytes out of line).
#[allow(clippy::manual_contains)]
fn has_colon(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| b == b':')
}

/// The path of the file open on the binary's descriptor, symlinks
/// resolved; `None` when it cannot be read (no `/proc`) or is too long.
fn real_path<'b, H: Host, S: Strings>(
    sys: &mut ExecSystem<'_, '_, '_, H, S>,
    buf: &'b mut [MaybeUninit<u8>],
) -> Option<&'b [u8]> {
    let mut link = [0u8; 32];
    let link = proc_fd_path(sys.exec.fd, &mut link);
    let link = CStr::from_bytes_with_nul(link).ok()?;
    sys.exec.host.read_link(sys.exec.fd, link, buf)
}

/// `failure`, or [`Failure::Missing`] when the interpreter is not there:
/// then that is what to say, and to offer to install.
fn unless_missing<H: Host, S: Strings>(
    sys: &mut ExecSystem<'_, '_, '_, H, S>,
    candidate: &Candidate<'_>,
    failure: Failure<'static>,
) -> Failure<'static> {
    match sys.exists(candidate.path) {
        true => failure,
        false => Failure::Missing,
    }
}

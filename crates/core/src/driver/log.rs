//! The exec path's messages: one line on stderr each.

use rustix::io::Errno;

use super::Host;
use crate::decide::LogLevel;
use crate::probe::{self, Facts};

/// The level in force; messages above it are not written.
#[derive(Clone, Copy)]
pub(super) struct Log {
    pub level: LogLevel,
}

impl Log {
    /// Writes `binfmt-dispatcher: PARTS...` at `level`. Out of line: its
    /// line buffer must not take stack pages from the exec path, which logs
    /// nothing at the default level.
    #[inline(never)]
    pub fn say<H: Host>(&self, host: &mut H, level: LogLevel, parts: &[&[u8]]) {
        if level > self.level || self.level == LogLevel::Off {
            return;
        }
        let mut line = [0u8; 2048];
        let prefix = b"binfmt-dispatcher: ";
        line[..prefix.len()].copy_from_slice(prefix);
        // The text is cut one byte short of the buffer: the newline's.
        let at = put(&mut line[..2047], prefix.len(), parts);
        line[at] = b'\n';
        host.write_stderr(&line[..at + 1]);
    }
}

/// Appends `parts` to `line` from `at` on, cut at its end; the new end.
pub(super) fn put(line: &mut [u8], mut at: usize, parts: &[&[u8]]) -> usize {
    for part in parts {
        let n = part.len().min(line.len() - at);
        line[at..at + n].copy_from_slice(&part[..n]);
        at += n;
    }
    at
}

/// A short description of an errno. Out of line: called from several
/// places, each a failure's, it would be copied into each.
#[inline(never)]
pub(super) fn describe(e: Errno) -> &'static [u8] {
    match e {
        Errno::NOENT => b"not found",
        Errno::ACCESS => b"permission denied",
        Errno::NOEXEC => b"exec format error",
        Errno::ISDIR => b"is a directory",
        Errno::NOTDIR => b"a path component is not a directory",
        Errno::LOOP => b"too many symbolic links",
        Errno::TXTBSY => b"text file busy",
        Errno::NOMEM => b"out of memory",
        Errno::TOOBIG => b"argument list too long",
        Errno::PERM => b"operation not permitted",
        Errno::IO => b"input/output error",
        Errno::MFILE => b"too many open files",
        Errno::NFILE => b"too many open files in the system",
        Errno::AGAIN => b"resource temporarily unavailable",
        Errno::LIBBAD => b"bad ELF interpreter",
        _ => b"system error",
    }
}

/// Ends a set-id exec that cannot go on safely: one line, `NAME: not run:
/// WHAT: WHY`, and exit status 126.
#[cold]
#[inline(never)]
pub(super) fn refuse<H: Host>(
    host: &mut H,
    log: Log,
    name: &[u8],
    what: [&[u8]; 2],
    why: &[u8],
) -> i32 {
    let parts: [&[u8]; 6] = [name, b": not run: ", what[0], what[1], b": ", why];
    log.say(host, LogLevel::Error, &parts);
    126
}

/// Says that the built-in configuration is corrupt; the exit status.
#[cold]
#[inline(never)]
pub(super) fn built_in_corrupt<H: Host>(host: &mut H, log: Log, secure: bool) -> i32 {
    log.say(
        host,
        LogLevel::Error,
        &[b"the built-in configuration is corrupt"],
    );
    if secure {
        126
    } else {
        127
    }
}

/// A short description of the binary's kind for messages.
#[inline(never)]
pub(super) fn kind(facts: &Facts<'_>) -> &'static [u8] {
    match facts.format {
        probe::Format::Elf => {}
        probe::Format::Pe if facts.dotnet => return b".NET assembly",
        probe::Format::Pe => return b"Windows program (PE)",
        probe::Format::JavaClass => return b"Java class file",
        probe::Format::Jar => return b"Java archive (JAR)",
        probe::Format::MachO => return b"macOS program (Mach-O)",
        probe::Format::Unknown => return b"not a recognised format",
    }
    match probe::arch_name_of(facts) {
        Some(name) => name,
        None => b"ELF of an unknown machine",
    }
}

//! Which compiled configuration the exec path reads: the first usable of
//! `BINFMT_DISPATCHER_CACHE`'s file, the user's cache, the system cache,
//! else the built-in one.

use core::ffi::CStr;

use rustix::io::Errno;

use super::log::{describe, refuse, Log};
use super::{ConfigSource, Event, Host, Vars};
use crate::blob::{header, Blob, BlobError};
use crate::decide::LogLevel;
use crate::paths;

/// The longest user cache path the exec path composes.
const USER_CACHE_PATH_MAX: usize = 512;

/// Which file the configuration came from, for messages.
#[derive(Clone, Copy)]
pub(super) enum Source<'p> {
    /// `BINFMT_DISPATCHER_CACHE`'s or the system's: a path that lives on.
    File(ConfigSource, &'p CStr),
    /// The user's cache, whose path is composed again when it is named.
    User,
    /// None: the configuration built into the trampoline.
    BuiltIn,
}

impl Source<'_> {
    /// Which of the sources it is.
    pub fn kind(self) -> ConfigSource {
        match self {
            Source::File(kind, _) => kind,
            Source::User => ConfigSource::User,
            Source::BuiltIn => ConfigSource::BuiltIn,
        }
    }
}

/// Why a cache file cannot be used.
#[derive(Clone, Copy)]
enum CacheError {
    /// It does not exist.
    Missing,
    /// A syscall on it failed.
    Sys(Errno),
    /// Secure mode, and someone other than root could have written it.
    Unsafe,
    /// Secure mode, and someone other than root could have put another
    /// file in its place.
    UnsafeDir,
    /// Its contents are not a valid blob.
    Blob(BlobError),
}

impl CacheError {
    /// What a failed `open` means: absence, or an error.
    fn from_open(e: Errno) -> CacheError {
        match e {
            Errno::NOENT => CacheError::Missing,
            e => CacheError::Sys(e),
        }
    }

    /// Why, in a few words.
    fn describe(self) -> &'static [u8] {
        match self {
            CacheError::Missing => describe(Errno::NOENT),
            CacheError::Sys(errno) => describe(errno),
            CacheError::Unsafe => b"not owned by root, or writable by others",
            CacheError::UnsafeDir => b"its directory is not owned by root, or writable by others",
            CacheError::Blob(e) => e.describe().as_bytes(),
        }
    }
}

/// The first usable compiled cache, mapped: `BINFMT_DISPATCHER_CACHE`, the
/// user's, the system's (unless the `embedded` configuration is the
/// system's). A missing one is skipped silently (but for the one the
/// environment names); one that cannot be used is skipped with a one-line
/// warning, except under AT_SECURE, where only absence moves on: a cache
/// the process cannot open, map or trust ends the exec (`Err`, the exit
/// status), so that no limit or error the caller can cause swaps the
/// administrator's configuration for the built-in one. `Ok(None)`: use the
/// built-in configuration. Out of line: the buffer the user cache's path
/// is composed in is off the stack by the time the exec path goes deeper.
///
/// Mapping rather than reading keeps the cost flat in the size of the
/// cache: only the pages a lookup touches are faulted in, from the page
/// cache, and no stack pages are spent on a copy.
#[inline(never)]
pub(super) fn load<'p, H: Host>(
    host: &mut H,
    secure: bool,
    vars: &Vars<'p>,
    (log, name): (Log, &[u8]),
    embedded: &[u8],
) -> Result<Option<(Source<'p>, &'static [u8])>, i32> {
    let mut user_buf = [0u8; USER_CACHE_PATH_MAX];
    let candidates: [Option<&CStr>; 3] = match secure {
        true => [None, None, Some(paths::SYSTEM_CACHE)],
        false => [
            vars.cache,
            user_cache_path(vars, &mut user_buf),
            Some(paths::SYSTEM_CACHE),
        ],
    };
    for (i, path) in candidates.iter().enumerate() {
        let Some(path) = *path else { continue };
        // A trampoline with the system's configuration embedded (`binfmtctl
        // compile --embed`) looks for no system cache: it carries it. Asked
        // only here, so that a cache found first leaves it untouched.
        if i == 2 && Blob::open(embedded).is_ok_and(|b| b.is_embedded()) {
            return Ok(None);
        }
        let why = match map_cache(host, secure, path) {
            Ok(bytes) => {
                let source = match i {
                    0 => vars.cache.map_or(Source::BuiltIn, |path| {
                        Source::File(ConfigSource::Environment, path)
                    }),
                    1 => Source::User,
                    _ => Source::File(ConfigSource::System, paths::SYSTEM_CACHE),
                };
                host.note(Event::Configuration(source.kind(), path.to_bytes()));
                return Ok(Some((source, bytes)));
            }
            Err(CacheError::Missing) if i != 0 => continue,
            Err(e) => e.describe(),
        };
        let path = path.to_bytes();
        if secure {
            return Err(refuse(host, log, name, [b"cache ", path], why));
        }
        log.say(
            host,
            LogLevel::Warn,
            &[b"ignoring cache ", path, b": ", why],
        );
    }
    Ok(None)
}

/// The system cache, opened through its directory after checking that no
/// one but root can change what the directory holds: the file's own owner
/// and mode would not show that someone put another root-owned file (an
/// older cache) in its place. The directories above it are the system's.
#[cold]
#[inline(never)]
fn open_system_cache<H: Host>(host: &mut H) -> Result<u32, CacheError> {
    let dir = host
        .open_dir(paths::SYSTEM_CACHE_DIR)
        .map_err(CacheError::from_open)?;
    let st = host.fstat(dir).map_err(CacheError::Sys)?;
    if st.owner != 0 || st.mode & 0o022 != 0 {
        return Err(CacheError::UnsafeDir);
    }
    host.open_at(dir, paths::SYSTEM_CACHE_NAME)
        .map_err(CacheError::from_open)
}

/// Opens, checks and maps one cache file (under AT_SECURE, the system's).
fn map_cache<H: Host>(
    host: &mut H,
    secure: bool,
    path: &CStr,
) -> Result<&'static [u8], CacheError> {
    let fd = match secure {
        true => open_system_cache(host),
        false => host.open(path).map_err(CacheError::from_open),
    }?;
    let st = host.fstat(fd).map_err(CacheError::Sys)?;
    // A setuid exec must not be steered by a file its caller could write.
    if secure && (st.owner != 0 || st.mode & 0o022 != 0) {
        return Err(CacheError::Unsafe);
    }
    if (st.size as usize) < header::LEN {
        return Err(CacheError::Blob(BlobError::Truncated));
    }
    // The mapping outlives the descriptor, which is close-on-exec: closing
    // it would only cost a syscall.
    let bytes = host.map(fd, st.size as usize).map_err(CacheError::Sys)?;
    Blob::open(bytes).map_err(CacheError::Blob)?;
    Ok(bytes)
}

/// `$XDG_CACHE_HOME/…` or `$HOME/.cache/…`, composed in `buf`.
fn user_cache_path<'b>(vars: &Vars<'_>, buf: &'b mut [u8]) -> Option<&'b CStr> {
    let (base, middle): (&[u8], &[u8]) = match vars.xdg_cache_home.map(CStr::to_bytes) {
        Some(xdg) if xdg.starts_with(b"/") => (xdg, b"/"),
        _ => (vars.home?.to_bytes(), b"/.cache/"),
    };
    let tail = paths::USER_CACHE.as_bytes();
    let len = base.len() + middle.len() + tail.len();
    if len >= buf.len() || base.is_empty() {
        return None;
    }
    buf[..base.len()].copy_from_slice(base);
    buf[base.len()..base.len() + middle.len()].copy_from_slice(middle);
    buf[base.len() + middle.len()..len].copy_from_slice(tail);
    buf[len] = 0;
    CStr::from_bytes_with_nul(&buf[..=len]).ok()
}

/// Says that the cache `source` turned out corrupt and is set aside.
#[cold]
#[inline(never)]
pub(super) fn warn_ignoring<H: Host>(
    host: &mut H,
    log: Log,
    vars: &Vars<'_>,
    source: Source<'_>,
    e: BlobError,
) {
    let mut buf = [0u8; USER_CACHE_PATH_MAX];
    let path: &[u8] = match source {
        Source::File(_, path) => path.to_bytes(),
        Source::User => user_cache_path(vars, &mut buf).map_or(b"", CStr::to_bytes),
        Source::BuiltIn => b"",
    };
    let parts: [&[u8]; 5] = [
        b"ignoring cache ",
        path,
        b": ",
        e.describe().as_bytes(),
        b"; using the built-in configuration",
    ];
    log.say(host, LogLevel::Warn, &parts);
    host.note(Event::Configuration(ConfigSource::BuiltIn, b""));
}

/// How a cache is named in a refusal: `cache PATH`, or the built-in
/// configuration.
pub(super) fn refusal_subject(source: Source<'_>) -> [&[u8]; 2] {
    match source {
        Source::File(_, path) => [&b"cache "[..], path.to_bytes()],
        Source::User | Source::BuiltIn => [&b"the built-in configuration"[..], b""],
    }
}

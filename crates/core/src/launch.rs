//! From a chosen interpreter to the exact argv and envp it is executed with.
//!
//! Each interpreter family has its own way of being told the guest's
//! `argv[0]`; [`ArgvStyle`] names them and [`build`] applies one. Output goes
//! into caller-provided buffers: arrays of pointers and a byte arena for the
//! few strings that must be composed. When they are too small, [`build`]
//! says how large they must be and writes nothing usable, so the caller can
//! retry with bigger ones.

use core::ffi::CStr;

use crate::blob;
use crate::decide::Candidate;

/// How an interpreter expects to be told the guest's argv.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgvStyle {
    /// `INTERPRETER BINARY ARGS...`: the guest sees `BINARY` as `argv[0]`.
    Plain = 0,
    /// qemu-user: `INTERPRETER -0 ARGV0 BINARY ARGS...`.
    Qemu = 1,
    /// box64: `BOX64_ARG0=ARGV0` in the environment, `INTERPRETER BINARY ARGS...`.
    Box64 = 2,
    /// box86: `BOX86_ARG0=ARGV0` in the environment, `INTERPRETER BINARY ARGS...`.
    Box86 = 3,
    /// FEX: `FEX_EXECVEFD=FD` in the environment, `INTERPRETER BINARY ARGV0
    /// ARGS...`: FEX then loads the binary from the descriptor and, as for a
    /// binfmt_misc launch with P, takes the argument after it as `argv[0]`.
    Fex = 4,
    /// The interpreter's `template`, with placeholders expanded.
    Custom = 5,
    /// A Java launcher: a class file as `INTERPRETER -cp ROOT[:CLASSPATH]
    /// CLASS ARGS...` ([`JavaClass`]), anything else (an executable JAR)
    /// as `INTERPRETER -jar BINARY ARGS...`.
    Java = 6,
}

impl ArgvStyle {
    /// Every style with its configuration name.
    pub const NAMES: &'static [(&'static str, ArgvStyle)] = &[
        ("plain", ArgvStyle::Plain),
        ("qemu", ArgvStyle::Qemu),
        ("box64", ArgvStyle::Box64),
        ("box86", ArgvStyle::Box86),
        ("fex", ArgvStyle::Fex),
        ("custom", ArgvStyle::Custom),
        ("java", ArgvStyle::Java),
    ];

    /// The style with the given blob code.
    pub fn from_code(code: u32) -> Option<ArgvStyle> {
        Self::NAMES
            .iter()
            .map(|&(_, s)| s)
            .find(|&s| s as u32 == code)
    }

    /// The style named `name`.
    pub fn from_name(name: &str) -> Option<ArgvStyle> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, s)| s)
    }

    /// Whether the interpreter is handed the binary's descriptor, which must
    /// then survive the exec.
    pub fn passes_execfd(self) -> bool {
        matches!(self, ArgvStyle::Fex | ArgvStyle::Custom)
    }

    /// The style's configuration name.
    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|&&(_, s)| s == self)
            .map_or("plain", |&(n, _)| n)
    }

    /// The style an interpreter gets when its config names none, guessed
    /// from the executable's file name.
    pub fn guess(path: &[u8]) -> ArgvStyle {
        let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
        if name.starts_with(b"qemu-") {
            ArgvStyle::Qemu
        } else if name.starts_with(b"box64") {
            ArgvStyle::Box64
        } else if name.starts_with(b"box86") {
            ArgvStyle::Box86
        } else if name.starts_with(b"FEX") {
            ArgvStyle::Fex
        } else if name == b"java" {
            ArgvStyle::Java
        } else {
            ArgvStyle::Plain
        }
    }
}

/// The argument between muvm's options and the command it runs. A static,
/// so that every argv [`build`] makes points at this one copy (explain maps
/// argv pointers back to strings by address).
pub static MUVM_SEPARATOR: &core::ffi::CStr = c"--";
/// qemu-user's option that sets the guest's `argv[0]` (static for the same
/// reason as [`MUVM_SEPARATOR`]).
pub static QEMU_ARGV0_OPTION: &core::ffi::CStr = c"-0";

/// The Java launcher's class path option (static for the same reason as
/// [`MUVM_SEPARATOR`]).
pub static JAVA_CLASS_PATH_OPTION: &core::ffi::CStr = c"-cp";
/// The Java launcher's option that runs an executable JAR.
pub static JAVA_JAR_OPTION: &core::ffi::CStr = c"-jar";

/// Placeholders of custom templates.
pub const PLACEHOLDERS: &[&str] = &[
    "{interpreter}",
    "{binary}",
    "{binary_dir}",
    "{binary_stem}",
    "{argv0}",
    "{execfd}",
    "{args}",
];

/// The directory part of a path, as `dirname` gives it: `.` for a bare
/// name, `/` for a file in the root.
pub fn dir_of(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        None => b".",
        Some(0) => b"/",
        Some(at) => &path[..at],
    }
}

/// The file name of a path without its extension (`.class`, `.exe`...):
/// what a Java launcher takes as the class name.
pub fn stem_of(path: &[u8]) -> &[u8] {
    let name = &path[path.iter().rposition(|&b| b == b'/').map_or(0, |at| at + 1)..];
    match name.iter().rposition(|&b| b == b'.') {
        Some(at) if at > 0 => &name[..at],
        _ => name,
    }
}

/// A list of C strings owned elsewhere (the process's argv or envp).
pub trait Strings {
    /// How many there are.
    fn count(&self) -> usize;
    /// Pointer to string `i`'s first byte (it is NUL-terminated).
    fn ptr(&self, i: usize) -> *const u8;
    /// String `i` without its NUL.
    fn bytes(&self, i: usize) -> &[u8];
    /// String `i` with its NUL.
    fn with_nul(&self, i: usize) -> &[u8];
    /// String `i` as a C string.
    fn c_str(&self, i: usize) -> &CStr {
        CStr::from_bytes_with_nul(self.with_nul(i)).unwrap_or(c"")
    }
    /// String `i`'s first byte (0 for an empty one).
    fn first_byte(&self, i: usize) -> u8 {
        self.with_nul(i)[0]
    }
    /// Whether string `i` begins with `prefix`.
    fn starts_with(&self, i: usize, prefix: &[u8]) -> bool {
        self.bytes(i).starts_with(prefix)
    }
    /// Whether string `i` is the environment entry `KEY=...` for `key`.
    fn has_key(&self, i: usize, key: &[u8]) -> bool {
        let entry = self.bytes(i);
        entry.len() > key.len() && entry.starts_with(key) && entry[key.len()] == b'='
    }
    /// The values of the environment variables `names`, found in one pass
    /// (this must be an envp); each entry is looked at no further than
    /// its first difference from a name.
    fn vars<const N: usize>(&self, names: [&str; N]) -> [Option<&CStr>; N] {
        let mut found = [None; N];
        for i in 0..self.count() {
            let first = self.first_byte(i);
            if !names.iter().any(|n| n.as_bytes().first() == Some(&first)) {
                continue;
            }
            for (slot, name) in found.iter_mut().zip(names) {
                let key = name.as_bytes();
                if slot.is_none() && self.starts_with(i, key) {
                    if let Some(value) = self.with_nul(i)[key.len()..].strip_prefix(b"=") {
                        *slot = CStr::from_bytes_with_nul(value).ok();
                    }
                }
            }
        }
        found
    }
}

/// A borrowed list is the list.
impl<T: Strings + ?Sized> Strings for &T {
    fn count(&self) -> usize {
        (**self).count()
    }
    fn ptr(&self, i: usize) -> *const u8 {
        (**self).ptr(i)
    }
    fn bytes(&self, i: usize) -> &[u8] {
        (**self).bytes(i)
    }
    fn with_nul(&self, i: usize) -> &[u8] {
        (**self).with_nul(i)
    }
    fn c_str(&self, i: usize) -> &CStr {
        (**self).c_str(i)
    }
    fn first_byte(&self, i: usize) -> u8 {
        (**self).first_byte(i)
    }
    fn starts_with(&self, i: usize, prefix: &[u8]) -> bool {
        (**self).starts_with(i, prefix)
    }
    fn has_key(&self, i: usize, key: &[u8]) -> bool {
        (**self).has_key(i, key)
    }
}

/// The guest program as the kernel described it.
pub struct Guest<'a, A: Strings> {
    /// The path to hand the interpreter, NUL-terminated.
    pub binary: &'a [u8],
    /// The guest's `argv[0]`, NUL-terminated.
    pub argv0: &'a [u8],
    /// The process's arguments; the guest's own start at `first_arg`.
    pub args: &'a A,
    /// Index in `args` of the guest's `argv[1]`.
    pub first_arg: usize,
    /// The descriptor open on the binary, if any.
    pub execfd: Option<u32>,
    /// Whether `binary` names the descriptor (`/proc/self/fd/N`) rather
    /// than the file: then it has no directory or stem of its own.
    pub by_descriptor: bool,
    /// Whether the exec raised privileges (AT_SECURE): the interpreter's
    /// own variables are then dropped ([`own_variables`]).
    pub secure: bool,
    /// For the `java` style, the class a class file holds and where `java`
    /// finds it; `None` for any other file, which is run as a JAR.
    pub java_class: Option<JavaClass<'a>>,
}

/// Where a Java launcher finds a class file's class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JavaClass<'a> {
    /// The class path root: the directory that holds the class's top
    /// package (no `:`, which would split it).
    pub root: &'a [u8],
    /// The caller's `CLASSPATH`, searched after the root; empty for none.
    pub class_path: &'a [u8],
    /// The class's binary name, dotted (`com.x.Main`).
    pub name: &'a [u8],
}

/// Buffers [`build`] writes into.
pub struct Buffers<'b> {
    /// Receives the NULL-terminated argv.
    pub argv: &'b mut [*const u8],
    /// Receives the NULL-terminated envp.
    pub envp: &'b mut [*const u8],
    /// Receives composed strings.
    pub arena: &'b mut [u8],
}

/// How large [`Buffers`] must be.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sizes {
    /// Entries of `argv`, the NULL included.
    pub argv: usize,
    /// Entries of `envp`, the NULL included.
    pub envp: usize,
    /// Bytes of `arena`.
    pub arena: usize,
}

/// What [`build`] could not do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// The buffers are too small; these sizes are enough.
    TooSmall(Sizes),
    /// The blob is inconsistent.
    Blob(blob::BlobError),
    /// The interpreter's template needs the binary's directory or stem,
    /// and the binary has none that is safe to pass: it is named by its
    /// descriptor, or its stem begins with `-` and would be read as an
    /// option.
    NoSafeName,
}

impl From<blob::BlobError> for BuildError {
    fn from(e: blob::BlobError) -> Self {
        BuildError::Blob(e)
    }
}

/// Writes into `Buffers`, counting what does not fit instead of failing at
/// the first overflow, so one pass yields the sizes needed.
struct Writer<'b, 'x> {
    out: &'x mut Buffers<'b>,
    argc: usize,
    envc: usize,
    used: usize,
}

impl Writer<'_, '_> {
    fn arg(&mut self, p: *const u8) {
        if let Some(slot) = self.out.argv.get_mut(self.argc) {
            *slot = p;
        }
        self.argc += 1;
    }

    fn env(&mut self, p: *const u8) {
        if let Some(slot) = self.out.envp.get_mut(self.envc) {
            *slot = p;
        }
        self.envc += 1;
    }

    /// Appends the concatenation of `parts` and a NUL to the arena; returns a
    /// pointer to it (null when it does not fit, which `build` reports).
    fn compose(&mut self, parts: &[&[u8]]) -> *const u8 {
        let len: usize = parts.iter().map(|p| p.len()).sum::<usize>() + 1;
        let start = self.used;
        self.used += len;
        let Some(dest) = self.out.arena.get_mut(start..start + len) else {
            return core::ptr::null();
        };
        let mut at = 0;
        for p in parts {
            dest[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        dest[at] = 0;
        dest.as_ptr()
    }
}

/// Formats `n` in decimal into `buf`, returning the digits.
pub fn decimal(mut n: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// Without its trailing NUL.
pub(crate) fn bare(c: &[u8]) -> &[u8] {
    c.strip_suffix(&[0]).unwrap_or(c)
}

/// What goes before a path (without its NUL) so that no interpreter's
/// option parser can take it for an option: `./` before a relative name
/// that begins with `-` (the same file), nothing otherwise.
fn option_guard(path: &[u8]) -> &'static [u8] {
    if path.starts_with(b"-") {
        b"./"
    } else {
        b""
    }
}

/// The variable an argv convention sets for the interpreter, if any:
/// box64's and box86's guest `argv[0]`, FEX's descriptor on the binary.
fn convention_var(style: ArgvStyle, execfd: Option<u32>) -> Option<&'static [u8]> {
    match (style, execfd) {
        (ArgvStyle::Box64, _) => Some(b"BOX64_ARG0"),
        (ArgvStyle::Box86, _) => Some(b"BOX86_ARG0"),
        (ArgvStyle::Fex, Some(_)) => Some(b"FEX_EXECVEFD"),
        _ => None,
    }
}

/// The prefix of the environment variables that configure the emulator of
/// `style` itself (qemu's `QEMU_LD_PREFIX`, which picks the guest's dynamic
/// loader, `QEMU_STRACE`, `QEMU_LOG_FILENAME`; box64's and box86's library
/// paths; FEX's `FEX_ROOTFS`...). Under AT_SECURE they are the caller's
/// way to steer an emulator that runs as root, which does not check
/// AT_SECURE itself, so they are dropped. Other interpreters' variables
/// (Wine's, Mono's, the JVM's) are theirs to handle: see docs/SECURITY.md.
pub fn own_variables(style: ArgvStyle) -> Option<&'static [u8]> {
    match style {
        ArgvStyle::Qemu => Some(b"QEMU_"),
        ArgvStyle::Box64 => Some(b"BOX64_"),
        ArgvStyle::Box86 => Some(b"BOX86_"),
        ArgvStyle::Fex => Some(b"FEX_"),
        ArgvStyle::Plain | ArgvStyle::Custom | ArgvStyle::Java => None,
    }
}

/// The prefix of the variables dropped from `candidate`'s environment: none
/// unless the exec raised privileges; then [`own_variables`] of its style,
/// or, for a `plain` or `custom` entry, of the emulator its file name names
/// (`qemu-*`, `box64`, `FEX`...), since a template does not make qemu read
/// its variables any less.
fn dropped_variables<A: Strings>(
    style: ArgvStyle,
    candidate: &Candidate<'_>,
    guest: &Guest<'_, A>,
) -> Option<&'static [u8]> {
    if !guest.secure {
        return None;
    }
    own_variables(style).or_else(|| own_variables(ArgvStyle::guess(bare(candidate.path))))
}

/// Whether `candidate` runs with the process's environment exactly as it
/// is: the interpreter has no `env` of its own and its convention sets no
/// variable. The caller may then hand the process's own envp to `execve`
/// instead of [`build`]'s copy, which costs stack (or a mapping) in
/// proportion to the environment's size. Inlined: the exec path calls it
/// for every exec, the `java` style's path for its own.
#[inline(always)]
pub fn keeps_environment<A: Strings>(
    candidate: &Candidate<'_>,
    guest: &Guest<'_, A>,
) -> blob::Result<bool> {
    let style = candidate.interpreter.argv_style()?;
    Ok(candidate.interpreter.env().is_empty()
        && convention_var(style, guest.execfd).is_none()
        && dropped_variables(style, candidate, guest).is_none())
}

/// Builds the argv and envp that run `guest` under `candidate`, with the
/// process environment `env`; returns how much of each buffer it used.
/// With `env` `None` the envp holds only what the interpreter sets: none
/// when [`keeps_environment`], whose caller passes the process's own.
pub fn build<A: Strings, E: Strings>(
    candidate: &Candidate<'_>,
    guest: &Guest<'_, A>,
    env: Option<&E>,
    out: &mut Buffers<'_>,
) -> Result<Sizes, BuildError> {
    let style = candidate.interpreter.argv_style()?;
    // muvm runs the command in a microVM, where this process's
    // /proc/self/fd/N does not exist.
    if guest.by_descriptor && candidate.muvm.is_some() {
        return Err(BuildError::NoSafeName);
    }
    let mut w = Writer {
        out,
        argc: 0,
        envc: 0,
        used: 0,
    };
    if let Some(muvm) = candidate.muvm {
        w.arg(muvm.as_ptr());
        w.arg(MUVM_SEPARATOR.as_ptr().cast());
    }
    match style {
        ArgvStyle::Custom => write_template(&mut w, candidate, guest)?,
        ArgvStyle::Java => write_java(&mut w, candidate.path, guest),
        _ => write_convention(&mut w, style, candidate.path, guest),
    }
    w.arg(core::ptr::null());
    write_environment(&mut w, style, candidate, guest, env)?;
    w.env(core::ptr::null());
    let sizes = Sizes {
        argv: w.argc,
        envp: w.envc,
        arena: w.used,
    };
    if sizes.argv > w.out.argv.len()
        || sizes.envp > w.out.envp.len()
        || sizes.arena > w.out.arena.len()
    {
        return Err(BuildError::TooSmall(sizes));
    }
    Ok(sizes)
}

/// The argv of a `custom` interpreter: its template, expanded.
#[inline(always)]
fn write_template<A: Strings>(
    w: &mut Writer<'_, '_>,
    candidate: &Candidate<'_>,
    guest: &Guest<'_, A>,
) -> Result<(), BuildError> {
    let mut fd_digits = [0u8; 10];
    let fd = guest
        .execfd
        .map_or(&b""[..], |fd| decimal(fd, &mut fd_digits));
    for token in candidate.interpreter.template().iter() {
        let token = token?.with_nul();
        if token == b"{args}\0" {
            write_args(w, guest);
        } else if !bare(token).contains(&b'{') {
            w.arg(token.as_ptr());
        } else {
            let p = expand(w, bare(token), candidate.path, guest, fd)?;
            w.arg(p);
        }
    }
    Ok(())
}

/// The argv of a `qemu`, `box64`, `box86`, `fex` or `plain` interpreter.
#[inline(always)]
fn write_convention<A: Strings>(
    w: &mut Writer<'_, '_>,
    style: ArgvStyle,
    interpreter: &[u8],
    guest: &Guest<'_, A>,
) {
    w.arg(interpreter.as_ptr());
    if style == ArgvStyle::Qemu {
        w.arg(QEMU_ARGV0_OPTION.as_ptr().cast());
        w.arg(guest.argv0.as_ptr());
    }
    write_binary(w, guest);
    if style == ArgvStyle::Fex && guest.execfd.is_some() {
        w.arg(guest.argv0.as_ptr());
    }
    write_args(w, guest);
}

/// The guest's arguments after its name, as they are.
#[inline(always)]
fn write_args<A: Strings>(w: &mut Writer<'_, '_>, guest: &Guest<'_, A>) {
    (guest.first_arg..guest.args.count()).for_each(|i| w.arg(guest.args.ptr(i)));
}

/// The binary's name as one argument, never an option ([`option_guard`]).
#[inline(always)]
fn write_binary<A: Strings>(w: &mut Writer<'_, '_>, guest: &Guest<'_, A>) {
    match option_guard(guest.binary) {
        b"" => w.arg(guest.binary.as_ptr()),
        guard => {
            let p = w.compose(&[guard, bare(guest.binary)]);
            w.arg(p);
        }
    }
}

/// The argv of a `java` interpreter: the class by its name on a class
/// path, or the file as a JAR.
fn write_java<A: Strings>(w: &mut Writer<'_, '_>, interpreter: &[u8], guest: &Guest<'_, A>) {
    w.arg(interpreter.as_ptr());
    match guest.java_class {
        Some(class) => {
            w.arg(JAVA_CLASS_PATH_OPTION.as_ptr().cast());
            let separator: &[u8] = if class.class_path.is_empty() {
                b""
            } else {
                b":"
            };
            let p = w.compose(&[class.root, separator, class.class_path]);
            w.arg(p);
            let p = w.compose(&[class.name]);
            w.arg(p);
        }
        None => {
            w.arg(JAVA_JAR_OPTION.as_ptr().cast());
            write_binary(w, guest);
        }
    }
    write_args(w, guest);
}

/// The envp: the process's (`env`), less the variables the interpreter
/// sets or must not see, then the interpreter's own and its convention's.
#[inline(always)]
fn write_environment<A: Strings, E: Strings>(
    w: &mut Writer<'_, '_>,
    style: ArgvStyle,
    candidate: &Candidate<'_>,
    guest: &Guest<'_, A>,
    env: Option<&E>,
) -> Result<(), BuildError> {
    let extra = candidate.interpreter.env();
    let mut fd_digits = [0u8; 10];
    let arg0_key = convention_var(style, guest.execfd);
    let arg0_value = match (style, guest.execfd) {
        (ArgvStyle::Fex, Some(fd)) => decimal(fd, &mut fd_digits),
        _ => bare(guest.argv0),
    };
    if let Some(env) = env {
        let dropped = dropped_variables(style, candidate, guest);
        let replaced = |i: usize| -> blob::Result<bool> {
            if dropped.is_some_and(|prefix| env.starts_with(i, prefix))
                || arg0_key.is_some_and(|key| env.has_key(i, key))
            {
                return Ok(true);
            }
            for set in extra.iter() {
                let set = set?.as_bytes();
                let key = set.split(|&b| b == b'=').next().unwrap_or(set);
                if env.has_key(i, key) {
                    return Ok(true);
                }
            }
            Ok(false)
        };
        let checks = arg0_key.is_some() || !extra.is_empty() || dropped.is_some();
        for i in 0..env.count() {
            if !(checks && replaced(i)?) {
                w.env(env.ptr(i));
            }
        }
    }
    for set in extra.iter() {
        w.env(set?.with_nul().as_ptr());
    }
    if let Some(key) = arg0_key {
        let p = w.compose(&[key, b"=", arg0_value]);
        w.env(p);
    }
    Ok(())
}

/// Indexes of [`PLACEHOLDERS`], as [`placeholder`] gives them.
const INTERPRETER: usize = 0;
const BINARY: usize = 1;
const BINARY_DIR: usize = 2;
const BINARY_STEM: usize = 3;
const ARGV0: usize = 4;
const EXECFD: usize = 5;

/// Which of [`PLACEHOLDERS`] `name` is. A loop over the table: a `match`
/// on the names compared them byte by byte, name after name (about 1 KB
/// of code on a path only custom templates take).
#[inline(never)]
fn placeholder(name: &[u8]) -> Option<usize> {
    PLACEHOLDERS.iter().position(|p| p.as_bytes() == name)
}

/// Expands the placeholders of one template token into the arena. A
/// token that begins with `{binary}` or `{binary_dir}` is guarded against
/// option parsers ([`option_guard`]); a directory or stem that cannot be
/// given safely is [`BuildError::NoSafeName`].
fn expand<A: Strings>(
    w: &mut Writer<'_, '_>,
    token: &[u8],
    interpreter: &[u8],
    guest: &Guest<'_, A>,
    fd: &[u8],
) -> Result<*const u8, BuildError> {
    // At most a few placeholders per token: split around each `{name}`.
    let mut parts: [&[u8]; 16] = [b""; 16];
    let mut n = 0;
    let mut rest = token;
    let binary = bare(guest.binary);
    while n + 2 < parts.len() {
        let Some(open) = rest.iter().position(|&b| b == b'{') else {
            break;
        };
        let Some(close) = rest[open..].iter().position(|&b| b == b'}') else {
            break;
        };
        let name = &rest[open..open + close + 1];
        let which = placeholder(name);
        let value: &[u8] = match which {
            Some(INTERPRETER) => bare(interpreter),
            Some(BINARY) => binary,
            Some(BINARY_DIR | BINARY_STEM) if guest.by_descriptor => {
                return Err(BuildError::NoSafeName)
            }
            Some(BINARY_DIR) => dir_of(binary),
            Some(BINARY_STEM) if stem_of(binary).starts_with(b"-") => {
                return Err(BuildError::NoSafeName)
            }
            Some(BINARY_STEM) => stem_of(binary),
            Some(ARGV0) => bare(guest.argv0),
            Some(EXECFD) => fd,
            _ => name,
        };
        let starts_token = n == 0 && open == 0 && matches!(which, Some(BINARY | BINARY_DIR));
        parts[n] = if starts_token {
            option_guard(value)
        } else {
            &rest[..open]
        };
        parts[n + 1] = value;
        n += 2;
        rest = &rest[open + close + 1..];
    }
    parts[n] = rest;
    Ok(w.compose(&parts[..n + 1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn styles_round_trip_and_guess() {
        for &(name, s) in ArgvStyle::NAMES {
            assert_eq!(ArgvStyle::from_name(name), Some(s));
            assert_eq!(ArgvStyle::from_code(s as u32), Some(s));
            assert_eq!(s.name(), name);
        }
        assert_eq!(
            ArgvStyle::guess(b"/usr/bin/qemu-aarch64-static"),
            ArgvStyle::Qemu
        );
        assert_eq!(ArgvStyle::guess(b"/usr/local/bin/box64"), ArgvStyle::Box64);
        assert_eq!(ArgvStyle::guess(b"/usr/bin/box86"), ArgvStyle::Box86);
        assert_eq!(ArgvStyle::guess(b"/usr/bin/FEXInterpreter"), ArgvStyle::Fex);
        assert_eq!(ArgvStyle::guess(b"/usr/bin/wine"), ArgvStyle::Plain);
    }

    #[test]
    fn dirs_and_stems() {
        assert_eq!(dir_of(b"/home/ann/Hello.class"), b"/home/ann");
        assert_eq!(dir_of(b"Hello.class"), b".");
        assert_eq!(dir_of(b"/Hello.class"), b"/");
        assert_eq!(dir_of(b"./x/Hello.class"), b"./x");
        assert_eq!(stem_of(b"/home/ann/Hello.class"), b"Hello");
        assert_eq!(stem_of(b"a.b/Hello"), b"Hello");
        assert_eq!(stem_of(b"/x/.hidden"), b".hidden");
        assert_eq!(stem_of(b"/x/My.App.class"), b"My.App");
    }

    #[test]
    fn decimals() {
        let mut b = [0u8; 10];
        assert_eq!(decimal(0, &mut b), b"0");
        assert_eq!(decimal(42, &mut b), b"42");
        assert_eq!(decimal(u32::MAX, &mut b), b"4294967295");
    }
}

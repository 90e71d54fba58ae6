//! The decision: header facts, the binary's path and the blob in, the
//! interpreters to try out.
//!
//! Pure functions over a [`Blob`]: the trampoline and `binfmtctl explain`
//! call the same code, so what explain prints is what will happen. The only
//! contact with the outside world is the [`System`] trait, through which
//! [`walk`] asks whether paths exist and tries to run a candidate.

use crate::blob::{self, Blob, Interpreter, Rule};
use crate::probe::{Facts, Format};
use linux_raw_sys::errno as e;

/// A condition a rule can have: one table for the writer (`config::compile`
/// sets a rule's bits by it), the reader ([`Condition::holds`]) and
/// `binfmtctl dump` (which prints each by its [`key`](Condition::key)).
/// Each compares a field of the rule record (`crate::blob::Rule`) with a
/// fact of the binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// The file format must equal the rule's `format`.
    Format,
    /// ELF `e_machine` must equal `machine`.
    Machine,
    /// The class (ELF, PE or thin Mach-O) must equal `class`.
    Class,
    /// ELF data encoding must equal `endian`.
    Endian,
    /// ELF OS ABI must equal `osabi`.
    Osabi,
    /// `e_flags & flags_mask` must equal `flags`.
    Flags,
    /// The `PT_INTERP` path must match `interp_glob`.
    Interp,
    /// The binary's path must match `path_glob`.
    Path,
    /// PE `Machine` must equal `pe_machine`.
    PeMachine,
    /// Being a .NET assembly must equal `dotnet`.
    Dotnet,
}

impl Condition {
    /// Every condition; the nth's bit is `1 << n`.
    pub const ALL: [Condition; 10] = [
        Condition::Format,
        Condition::Machine,
        Condition::Class,
        Condition::Endian,
        Condition::Osabi,
        Condition::Flags,
        Condition::Interp,
        Condition::Path,
        Condition::PeMachine,
        Condition::Dotnet,
    ];

    /// The order [`decide`] checks a rule's conditions in, the path glob
    /// aside: comparisons first, the glob on `PT_INTERP` last, as it costs
    /// most.
    const FACTS_ORDER: [Condition; 9] = [
        Condition::Format,
        Condition::Machine,
        Condition::Class,
        Condition::Endian,
        Condition::Osabi,
        Condition::Flags,
        Condition::PeMachine,
        Condition::Dotnet,
        Condition::Interp,
    ];

    /// Every condition's bit: a rule with bits outside it is corrupt.
    pub const ALL_BITS: u32 = (1 << Condition::ALL.len()) - 1;

    /// Its bit in a rule's `conditions` field.
    #[inline]
    pub const fn bit(self) -> u32 {
        1 << self as u32
    }

    /// Its key in a `[[rules]]` table (`flags` comes with `flags_mask`).
    pub const fn key(self) -> &'static str {
        match self {
            Condition::Format => "format",
            Condition::Machine => "machine",
            Condition::Class => "class",
            Condition::Endian => "endian",
            Condition::Osabi => "osabi",
            Condition::Flags => "flags",
            Condition::Interp => "interp",
            Condition::Path => "path",
            Condition::PeMachine => "pe_machine",
            Condition::Dotnet => "dotnet",
        }
    }

    /// The one format it can hold for, if it is not about any format: the
    /// ELF header's fields and `PT_INTERP` hold only for ELF, the PE
    /// machine and .NET only for PE; class holds for every format that has
    /// one.
    pub const fn only_for(self) -> Option<Format> {
        match self {
            Condition::Machine
            | Condition::Endian
            | Condition::Osabi
            | Condition::Flags
            | Condition::Interp => Some(Format::Elf),
            Condition::PeMachine | Condition::Dotnet => Some(Format::Pe),
            Condition::Format | Condition::Class | Condition::Path => None,
        }
    }

    /// The conditions whose bits are set in `bits`; bits of no condition
    /// are no condition.
    pub fn of(bits: u32) -> impl Iterator<Item = Condition> {
        Condition::ALL
            .into_iter()
            .filter(move |c| bits & c.bit() != 0)
    }

    /// Whether this condition of `rule` holds for `subject`, whether or not
    /// the rule has it.
    pub fn holds(self, rule: &Rule<'_, '_>, subject: &Subject<'_>) -> blob::Result<bool> {
        let f = &subject.facts;
        if self.only_for().is_some_and(|format| format != f.format) {
            return Ok(false);
        }
        Ok(match self {
            Condition::Format => rule.format() == f.format as u32,
            Condition::Machine => rule.machine() == u32::from(f.machine),
            Condition::Class => rule.class() == u32::from(f.class),
            Condition::Endian => rule.endian() == u32::from(f.endian),
            Condition::Osabi => rule.osabi() == u32::from(f.osabi),
            Condition::Flags => f.flags & rule.flags_mask() == rule.flags(),
            Condition::Interp => {
                let pattern = rule.interp_glob()?.as_bytes();
                f.interp.is_some_and(|i| glob_match(pattern, i))
            }
            Condition::Path => {
                let pattern = rule.path_glob()?.as_bytes();
                subject.paths.iter().any(|p| glob_match(pattern, p))
            }
            Condition::PeMachine => rule.pe_machine() == u32::from(f.pe_machine),
            Condition::Dotnet => rule.dotnet() == u32::from(f.dotnet),
        })
    }
}

/// How much the dispatcher says on stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Nothing, not even errors.
    Off = 0,
    /// Only the failure to run anything.
    Error = 1,
    /// Also skipped caches and unusable interpreters (the default).
    Warn = 2,
    /// Also the decision taken for each binary.
    Info = 3,
    /// Also every step.
    Debug = 4,
}

impl LogLevel {
    /// Every level with its configuration name; `trace` is accepted as the
    /// original binfmt-dispatcher's most verbose level.
    pub const NAMES: &'static [(&'static str, LogLevel)] = &[
        ("off", LogLevel::Off),
        ("error", LogLevel::Error),
        ("warn", LogLevel::Warn),
        ("warning", LogLevel::Warn),
        ("info", LogLevel::Info),
        ("debug", LogLevel::Debug),
        ("trace", LogLevel::Debug),
    ];

    /// The level named `name` (case-insensitive), if any.
    pub fn from_name(name: &[u8]) -> Option<LogLevel> {
        Self::NAMES
            .iter()
            .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))
            .map(|&(_, l)| l)
    }

    /// The level with the given blob code, if any.
    pub fn from_code(code: u32) -> Option<LogLevel> {
        Self::NAMES
            .iter()
            .map(|&(_, l)| l)
            .find(|&l| l as u32 == code)
    }

    /// The level's canonical name.
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Off => "off",
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }
}

/// What chose the interpreter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason<'a> {
    /// `BINFMT_DISPATCHER_INTERPRETER` named it.
    Environment,
    /// A `[binaries.*]` entry for this path.
    Binary(&'a [u8]),
    /// Rule number N (0-based, in priority order).
    Rule(u32),
    /// `[defaults] interpreter`.
    Default,
}

/// The decision: why, and which interpreter's chain to walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan<'a> {
    /// What chose the first interpreter.
    pub reason: Reason<'a>,
    /// Index of the chosen interpreter.
    pub interpreter: u32,
}

/// What the dispatcher knows about the binary being run.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    /// Facts from its header.
    pub facts: Facts<'a>,
    /// The paths it is known by, most specific first: the filename the
    /// kernel passed when it is absolute, and its canonical path. Overrides
    /// and path globs match any of them.
    pub paths: &'a [&'a [u8]],
}

/// Chooses the interpreter for `subject`: the environment override, then a
/// binary override, then the first matching rule, then the default.
/// `Ok(None)` means the config has nothing for it.
pub fn decide<'a>(
    blob: &Blob<'a>,
    subject: &Subject<'_>,
    env_interpreter: Option<&[u8]>,
) -> blob::Result<Option<Plan<'a>>> {
    match decide_paths(blob, subject, env_interpreter, true)? {
        Partial::Decided(plan) => Ok(plan),
        // Only a decision over incomplete paths asks for more.
        Partial::NeedsCanonicalPath => Ok(None),
    }
}

/// A decision taken before the binary's canonical path is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Partial<'a> {
    /// The decision, which the canonical path cannot change.
    Decided(Option<Plan<'a>>),
    /// An override or a path rule might match the canonical path: look it
    /// up and call [`decide`] with it.
    NeedsCanonicalPath,
}

/// [`decide`] when `subject.paths` holds at most the filename and the
/// canonical path has not been looked up (in a fresh process, reading
/// `/proc/self/fd/N` costs about as much as the rest of the exec path):
/// decides when the canonical path cannot change the outcome, because an
/// override or a rule matched the known paths first, or nothing that looks
/// at paths comes before the outcome.
pub fn decide_without_canonical<'a>(
    blob: &Blob<'a>,
    subject: &Subject<'_>,
    env_interpreter: Option<&[u8]>,
) -> blob::Result<Partial<'a>> {
    decide_paths(blob, subject, env_interpreter, false)
}

/// [`decide`], with `complete` saying whether `subject.paths` holds every
/// path of the binary.
fn decide_paths<'a>(
    blob: &Blob<'a>,
    subject: &Subject<'_>,
    env_interpreter: Option<&[u8]>,
    complete: bool,
) -> blob::Result<Partial<'a>> {
    let decided = |plan| Ok(Partial::Decided(Some(plan)));
    if let Some(id) = env_interpreter {
        if let Some(index) = interpreter_by_id(blob, id)? {
            return decided(Plan {
                reason: Reason::Environment,
                interpreter: index,
            });
        }
    }
    for path in subject.paths {
        if let Some(bucket) = blob.find_override(path)? {
            return decided(Plan {
                reason: Reason::Binary(bucket.path()?.as_bytes()),
                interpreter: bucket.interpreter(),
            });
        }
    }
    if !complete && !blob.overrides().is_empty() {
        return Ok(Partial::NeedsCanonicalPath);
    }
    let rules = blob.rules();
    let dirs = Dirs::of(subject.paths);
    for candidate in blob.rule_candidates(candidate_rules(blob, &subject.facts)?)? {
        // Its path glob cannot match any known path.
        let outside =
            candidate.dir_len != 0 && !dirs.contains(candidate.dir_len, candidate.dir_hash);
        if outside && complete {
            continue;
        }
        let rule = rules.get(candidate.rule)?;
        if !facts_match(&rule, subject)? {
            continue;
        }
        // (A candidate outside the known paths has a path glob; were the
        // blob to say otherwise, it is still left to the canonical path,
        // as the complete decision skips it unread.)
        if !outside && (!rule.has(Condition::Path) || Condition::Path.holds(&rule, subject)?) {
            return decided(Plan {
                reason: Reason::Rule(candidate.rule),
                interpreter: rule.interpreter(),
            });
        }
        if !complete {
            return Ok(Partial::NeedsCanonicalPath);
        }
    }
    match blob.default_interpreter() {
        None => Ok(Partial::Decided(None)),
        Some(index) => decided(Plan {
            reason: Reason::Default,
            interpreter: index,
        }),
    }
}

/// The directories the binary's paths lie in (and the paths themselves),
/// as `(length, path_hash)` of each prefix that ends before a `/` or at the
/// end: what rule candidates' `dir_len` and `dir_hash` are compared with.
struct Dirs {
    prefixes: [(u32, u32); 64],
    count: usize,
    /// More prefixes than fit: every candidate must be read.
    overflow: bool,
}

impl Dirs {
    fn of(paths: &[&[u8]]) -> Dirs {
        let mut dirs = Dirs {
            prefixes: [(0, 0); 64],
            count: 0,
            overflow: false,
        };
        for path in paths {
            let mut h = blob::PATH_HASH_SEED;
            for (i, &b) in path.iter().enumerate() {
                if b == b'/' && i > 0 {
                    dirs.push(i, h);
                }
                h = blob::path_hash_step(h, b);
            }
            dirs.push(path.len(), h);
        }
        dirs
    }

    fn push(&mut self, len: usize, hash: u32) {
        match self.prefixes.get_mut(self.count) {
            Some(slot) => {
                *slot = (len as u32, hash.max(1));
                self.count += 1;
            }
            None => self.overflow = true,
        }
    }

    fn contains(&self, len: u32, hash: u32) -> bool {
        self.overflow || self.prefixes[..self.count].contains(&(len, hash))
    }
}

/// The index of the interpreter whose identifier is `id`.
pub fn interpreter_by_id(blob: &Blob<'_>, id: &[u8]) -> blob::Result<Option<u32>> {
    for interpreter in blob.interpreters().iter() {
        let interpreter = interpreter?;
        if interpreter.id()?.as_bytes() == id {
            return Ok(Some(interpreter.index()));
        }
    }
    Ok(None)
}

/// The rule candidates a binary with these facts is checked against, in
/// priority order.
fn candidate_rules(blob: &Blob<'_>, facts: &Facts<'_>) -> blob::Result<blob::Array> {
    match facts.format {
        Format::Elf => blob.rules_for_machine(facts.machine),
        _ => Ok(blob.rules_any_machine()),
    }
}

/// Whether a rule's conditions other than its path glob hold.
fn facts_match(rule: &Rule<'_, '_>, subject: &Subject<'_>) -> blob::Result<bool> {
    for c in Condition::FACTS_ORDER {
        if rule.has(c) && !c.holds(rule, subject)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Shell-style glob over paths: `?` is one byte and `*` any run of bytes
/// within one path component, `**` as a whole component any number of
/// components, `[...]` is not special. Runs in O(pattern x path).
pub fn glob_match(pattern: &[u8], path: &[u8]) -> bool {
    // Most patterns start with literal directories: a byte that differs
    // before the first wildcard rejects the path at once. (A path that ends
    // there is left to the full match: `/a/**` also matches `/a`.)
    for (&p, &s) in pattern.iter().zip(path) {
        if p == b'*' || p == b'?' {
            break;
        }
        if p != s {
            return false;
        }
    }
    let mut pats = pattern.split(|&b| b == b'/');
    let mut parts = path.split(|&b| b == b'/');
    // Backtracking point for the last `**`: the pattern after it and the
    // path components it has not swallowed yet.
    let mut retry: Option<(core::slice::Split<'_, u8, _>, core::slice::Split<'_, u8, _>)> = None;
    loop {
        let part_rest = parts.clone();
        match (pats.next(), parts.next()) {
            (Some(b"**"), _) => {
                // Let `**` match nothing first; on failure, one more component.
                parts = part_rest;
                retry = Some((pats.clone(), parts.clone()));
                continue;
            }
            (Some(p), Some(s)) if component_match(p, s) => continue,
            (None, None) => return true,
            _ => {}
        }
        let Some((p, s)) = retry.as_mut() else {
            return false;
        };
        if s.next().is_none() {
            return false;
        }
        pats = p.clone();
        parts = s.clone();
    }
}

/// Glob within one path component: `*` any run, `?` any one byte.
fn component_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p + 1, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// An interpreter about to be tried.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    /// Its record.
    pub interpreter: Interpreter<'a, 'a>,
    /// Its path, NUL-terminated.
    pub path: &'a [u8],
    /// The muvm executable (NUL-terminated) to wrap it in, when that applies.
    pub muvm: Option<&'a [u8]>,
}

/// Why a candidate could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure<'a> {
    /// The interpreter (or muvm) does not exist: `ENOENT` and kin.
    Missing,
    /// A `required_paths` entry does not exist.
    RequiredPathMissing(&'a [u8]),
    /// It exists but could not be executed; the errno. The walk goes on
    /// past it only when [`falls_back`] says so.
    NotExecutable(i32),
    /// Its template needs the binary's directory or stem, which cannot be
    /// given safely (`launch::BuildError::NoSafeName`).
    NoSafeName,
    /// A `java` interpreter cannot be given this class file; why.
    Java(&'static [u8]),
}

/// The outside world as the walk sees it.
pub trait System {
    /// Whether `path` (NUL-terminated) exists.
    fn exists(&mut self, path: &[u8]) -> bool;
    /// Runs `candidate`. The trampoline's version returns only on failure;
    /// explain's returns `Ok` for the one that would run.
    fn run(&mut self, candidate: &Candidate<'_>) -> Result<(), Failure<'static>>;
    /// Told of each candidate that failed, in order (for messages).
    fn failed(&mut self, candidate: &Candidate<'_>, failure: Failure<'_>);
}

/// The outcome of a walk that ran nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NothingRan {
    /// No interpreter of the chain exists: exit 127.
    NotFound,
    /// One exists but could not be executed: exit 126.
    CannotExecute,
}

impl NothingRan {
    /// The exit status a shell would use.
    pub fn exit_code(self) -> i32 {
        match self {
            NothingRan::NotFound => 127,
            NothingRan::CannotExecute => 126,
        }
    }
}

/// Tries the chosen interpreter and its fallbacks in order until one runs.
/// `page_size` decides whether `use_muvm` interpreters are wrapped.
pub fn walk<S: System>(
    blob: &Blob<'_>,
    plan: &Plan<'_>,
    page_size: usize,
    sys: &mut S,
) -> blob::Result<core::result::Result<(), NothingRan>> {
    let chain = blob.interpreter(plan.interpreter)?.chain();
    let mut outcome = NothingRan::NotFound;
    'candidates: for index in chain.iter() {
        let interpreter = blob.interpreter(index?)?;
        let muvm = (interpreter.use_muvm() != 0 && page_size != 4096)
            .then(|| blob.muvm())
            .transpose()?;
        let candidate = Candidate {
            interpreter,
            path: interpreter.path()?.with_nul(),
            muvm: muvm.map(blob::Str::with_nul),
        };
        for path in interpreter.required_paths().iter() {
            let path = path?;
            if !sys.exists(path.with_nul()) {
                sys.failed(&candidate, Failure::RequiredPathMissing(path.as_bytes()));
                continue 'candidates;
            }
        }
        // Under muvm the interpreter runs in a microVM that shares this
        // root: one missing here is missing there, and the next may exist.
        if muvm.is_some() && !sys.exists(candidate.path) {
            let alone = Candidate {
                muvm: None,
                ..candidate
            };
            sys.failed(&alone, Failure::Missing);
            continue;
        }
        match sys.run(&candidate) {
            Ok(()) => return Ok(Ok(())),
            Err(failure) => {
                sys.failed(&candidate, failure);
                match failure {
                    Failure::NotExecutable(errno) if !falls_back(errno) => {
                        return Ok(Err(NothingRan::CannotExecute))
                    }
                    Failure::NotExecutable(_) | Failure::NoSafeName | Failure::Java(_) => {
                        outcome = NothingRan::CannotExecute;
                    }
                    Failure::Missing | Failure::RequiredPathMissing(_) => {}
                }
            }
        }
    }
    Ok(Err(outcome))
}

/// Whether the `execve` error `errno` says that this interpreter is absent
/// or cannot run here, so that the next one of the chain may. Any other
/// error (`E2BIG`, `ENOMEM`, `EAGAIN`, `EFAULT`, `EMFILE`, ...) comes from
/// the caller's arguments, environment or limits, or is unknown: every
/// interpreter would meet it, and moving on would let the caller choose
/// among the chain, so the walk ends there.
pub fn falls_back(errno: i32) -> bool {
    matches!(
        u32::try_from(errno),
        Ok(e::ENOENT
            | e::ENOTDIR
            | e::EACCES
            | e::ENOEXEC
            | e::ELIBBAD
            | e::EISDIR
            | e::ELOOP
            | e::ENAMETOOLONG
            | e::ETXTBSY)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let yes: &[(&str, &str)] = &[
            ("/usr/bin/foo", "/usr/bin/foo"),
            ("/usr/bin/*", "/usr/bin/foo"),
            ("/usr/bin/f?o", "/usr/bin/foo"),
            ("/home/*/Games/**", "/home/ann/Games/a/b/c.x86_64"),
            ("/home/*/Games/**", "/home/ann/Games"),
            ("/usr/games/**", "/usr/games"),
            ("/usr/games/**", "/usr/games/x/y"),
            ("**/*.exe", "/opt/x/y/setup.exe"),
            ("/a/**/b/*.so", "/a/x/b/y/b/lib.so"),
            ("*", ""),
            ("/lib*/ld-linux-x86-64.so.*", "/lib64/ld-linux-x86-64.so.2"),
        ];
        for (p, s) in yes {
            assert!(glob_match(p.as_bytes(), s.as_bytes()), "{p} ~ {s}");
        }
        let no: &[(&str, &str)] = &[
            ("/usr/bin/*", "/usr/bin/sub/foo"),
            ("/usr/bin/f?o", "/usr/bin/fo"),
            ("/home/*/Games/**", "/home/ann/Music/x"),
            ("/a/**/b/*.so", "/a/x/c/lib.so"),
            ("/usr/bin/foo", "/usr/bin/foobar"),
            ("*.exe", "/x/setup.exe"),
            ("/usr/games/**", "/usr/gamesx/y"),
            ("/usr/games/**", "/usr/game"),
        ];
        for (p, s) in no {
            assert!(!glob_match(p.as_bytes(), s.as_bytes()), "{p} !~ {s}");
        }
    }

    #[test]
    fn conditions_have_one_bit_each_in_order() {
        let mut all = 0;
        for (n, c) in Condition::ALL.into_iter().enumerate() {
            assert_eq!(c.bit(), 1 << n, "{c:?}");
            all |= c.bit();
            let keys = Condition::ALL.iter().filter(|d| d.key() == c.key()).count();
            assert_eq!(keys, 1, "{c:?}");
            // decide checks every condition but the path glob among the
            // facts, once.
            let checked = Condition::FACTS_ORDER.iter().filter(|&&d| d == c).count();
            assert_eq!(checked, usize::from(c != Condition::Path), "{c:?}");
        }
        assert_eq!(all, Condition::ALL_BITS);
        let some = Condition::Machine.bit() | Condition::Path.bit() | (1 << 20);
        let of: std::vec::Vec<Condition> = Condition::of(some).collect();
        assert_eq!(of, [Condition::Machine, Condition::Path]);
    }

    #[test]
    fn the_directories_of_a_path_hold_what_its_globs_require() {
        let cases: &[(&str, &str)] = &[
            ("/opt/games/**", "/opt/games/x/y"),
            ("/opt/games/**", "/opt/games"),
            ("/usr/bin/foo", "/usr/bin/foo"),
            ("/home/*/Games/**", "/home/ann/Games/a"),
        ];
        for (glob, path) in cases {
            // The writer's key of the glob, the reader's of the path.
            let c = blob::RuleCandidate::of(0, glob.as_bytes());
            assert_ne!(c.dir_len, 0, "{glob}");
            let dirs = Dirs::of(&[path.as_bytes()]);
            assert!(dirs.contains(c.dir_len, c.dir_hash), "{glob} {path}");
            let elsewhere = Dirs::of(&[b"/srv/opt/games/usr/bin/home/x"]);
            assert!(!elsewhere.contains(c.dir_len, c.dir_hash), "{glob}");
        }
    }

    #[test]
    fn pathological_globs_end() {
        let pattern = "/**/**/**/**/**/**/**/**/*a*a*a*a*a*a*a*a*b";
        let path = std::format!("/{}", "aaaaaaaaaaaaaaaaaaaa/".repeat(20));
        assert!(!glob_match(pattern.as_bytes(), path.as_bytes()));
    }

    #[test]
    fn log_levels() {
        assert_eq!(LogLevel::from_name(b"DEBUG"), Some(LogLevel::Debug));
        assert_eq!(LogLevel::from_name(b"trace"), Some(LogLevel::Debug));
        assert_eq!(LogLevel::from_name(b"loud"), None);
        for &(_, l) in LogLevel::NAMES {
            assert_eq!(LogLevel::from_code(l as u32), Some(l));
            assert_eq!(LogLevel::from_name(l.name().as_bytes()), Some(l));
        }
    }
}

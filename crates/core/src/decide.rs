//! The decision: header facts, the binary's path and the blob in, the
//! interpreters to try out.
//!
//! Pure functions over a [`Blob`]: the trampoline and `binfmtctl explain`
//! call the same code, so what explain prints is what will happen. The only
//! contact with the outside world is the [`System`] trait, through which
//! [`walk`] asks whether paths exist and tries to run a candidate.

use crate::blob::{
    self, header, interp, override_bucket, rule, rule_bucket, rule_candidate, Array, Blob, NONE,
};
use crate::probe::{Facts, Format};
use linux_raw_sys::errno as e;

/// Bits of a rule's `CONDITIONS` field: which of its conditions apply.
pub struct Cond;
impl Cond {
    /// The file format must equal `FORMAT`.
    pub const FORMAT: u32 = 1 << 0;
    /// ELF `e_machine` must equal `MACHINE`.
    pub const MACHINE: u32 = 1 << 1;
    /// ELF class must equal `CLASS`.
    pub const CLASS: u32 = 1 << 2;
    /// ELF data encoding must equal `ENDIAN`.
    pub const ENDIAN: u32 = 1 << 3;
    /// ELF OS ABI must equal `OSABI`.
    pub const OSABI: u32 = 1 << 4;
    /// `e_flags & FLAGS_MASK` must equal `FLAGS`.
    pub const FLAGS: u32 = 1 << 5;
    /// The `PT_INTERP` path must match `INTERP_GLOB`.
    pub const INTERP: u32 = 1 << 6;
    /// The binary's path must match `PATH_GLOB`.
    pub const PATH: u32 = 1 << 7;
    /// PE `Machine` must equal `PE_MACHINE` (PE images only).
    pub const PE_MACHINE: u32 = 1 << 8;
    /// Being a .NET assembly must equal `DOTNET` (PE images only).
    pub const DOTNET: u32 = 1 << 9;
    /// Every condition bit.
    pub const ALL: u32 = (1 << 10) - 1;
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
        if let Some((bucket, index)) = find_override(blob, path)? {
            return decided(Plan {
                reason: Reason::Binary(blob.str(bucket, override_bucket::PATH)?),
                interpreter: index,
            });
        }
    }
    if !complete && blob.header_array(header::OVERRIDES).count > 0 {
        return Ok(Partial::NeedsCanonicalPath);
    }
    let rules = blob.header_array(header::RULES);
    let dirs = Dirs::of(subject.paths);
    let candidates = candidate_rules(blob, &subject.facts)?;
    let len = candidates.count.checked_mul(rule_candidate::LEN as u32);
    let list = blob.bytes(candidates.off, len.ok_or(blob::BlobError::OutOfBounds)?)?;
    for entry in list.chunks_exact(rule_candidate::LEN) {
        let word = |at: usize| {
            u32::from_le_bytes([entry[at], entry[at + 1], entry[at + 2], entry[at + 3]])
        };
        let dir_len = word(rule_candidate::DIR_LEN);
        // Its path glob cannot match any known path.
        let outside = dir_len != 0 && !dirs.contains(dir_len, word(rule_candidate::DIR_HASH));
        if outside && complete {
            continue;
        }
        let number = word(rule_candidate::RULE);
        let rec = blob.record_bytes(blob.record(rules, number, rule::LEN)?, rule::LEN)?;
        if !facts_match(blob, rec, &subject.facts)? {
            continue;
        }
        // (A candidate outside the known paths has a path glob; were the
        // blob to say otherwise, it is still left to the canonical path,
        // as the complete decision skips it unread.)
        if !outside
            && (rec.u32(rule::CONDITIONS) & Cond::PATH == 0
                || path_matches(blob, rec, subject.paths)?)
        {
            return decided(Plan {
                reason: Reason::Rule(number),
                interpreter: rec.u32(rule::INTERPRETER),
            });
        }
        if !complete {
            return Ok(Partial::NeedsCanonicalPath);
        }
    }
    match blob.header(header::DEFAULT) {
        NONE => Ok(Partial::Decided(None)),
        index => decided(Plan {
            reason: Reason::Default,
            interpreter: index,
        }),
    }
}

/// The directories the binary's paths lie in (and the paths themselves),
/// as `(length, path_hash)` of each prefix that ends before a `/` or at the
/// end: what rule candidates' `DIR_LEN`/`DIR_HASH` are compared with.
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
    let all = blob.header_array(header::INTERPRETERS);
    for index in 0..all.count {
        if blob.str(blob.record(all, index, interp::LEN)?, interp::ID)? == id {
            return Ok(Some(index));
        }
    }
    Ok(None)
}

/// The override bucket and interpreter for `path`, by hash lookup.
pub fn find_override(blob: &Blob<'_>, path: &[u8]) -> blob::Result<Option<(u32, u32)>> {
    let table = blob.header_array(header::OVERRIDES);
    if table.count == 0 {
        return Ok(None);
    }
    if !table.count.is_power_of_two() {
        return Err(blob::BlobError::OutOfBounds);
    }
    let hash = blob::path_hash(path);
    let mask = table.count - 1;
    let mut slot = hash & mask;
    // Linear probing; the table is at most half full, so this ends at an
    // empty bucket, and the bound keeps a corrupt full table from looping.
    for _ in 0..table.count {
        let bucket = blob.record(table, slot, override_bucket::LEN)?;
        match blob.field(bucket, override_bucket::HASH)? {
            0 => return Ok(None),
            h if h == hash && blob.str(bucket, override_bucket::PATH)? == path => {
                return Ok(Some((
                    bucket,
                    blob.field(bucket, override_bucket::INTERPRETER)?,
                )));
            }
            _ => slot = (slot + 1) & mask,
        }
    }
    Ok(None)
}

/// Multiplicative hash of a rule-index key.
pub fn rule_key_slot(key: u32, buckets: u32) -> u32 {
    key.wrapping_mul(0x9e37_79b1) & buckets.wrapping_sub(1)
}

/// The rules that can match a binary with these facts, in priority order.
fn candidate_rules(blob: &Blob<'_>, facts: &Facts<'_>) -> blob::Result<Array> {
    let any = blob.header_array(header::RULES_ANY_MACHINE);
    if facts.format != Format::Elf {
        return Ok(any);
    }
    let table = blob.header_array(header::RULE_INDEX);
    if table.count == 0 {
        return Ok(any);
    }
    if !table.count.is_power_of_two() {
        return Err(blob::BlobError::OutOfBounds);
    }
    let key = u32::from(facts.machine) + 1;
    let mut slot = rule_key_slot(key, table.count);
    for _ in 0..table.count {
        let bucket = blob.record(table, slot, rule_bucket::LEN)?;
        match blob.field(bucket, rule_bucket::KEY)? {
            0 => break,
            k if k == key => return blob.array(bucket, rule_bucket::RULES),
            _ => slot = (slot + 1) & (table.count - 1),
        }
    }
    Ok(any)
}

/// Whether a rule's conditions other than its path glob hold.
fn facts_match(blob: &Blob<'_>, rec: blob::Record<'_>, f: &Facts<'_>) -> blob::Result<bool> {
    let cond = rec.u32(rule::CONDITIONS);
    let field = |name| rec.u32(name);
    let wants = |bit| cond & bit != 0;
    if wants(Cond::FORMAT) && field(rule::FORMAT) != f.format as u32 {
        return Ok(false);
    }
    // Class applies to every format that has one (ELF, PE, thin Mach-O);
    // the other ELF conditions to ELF only, the PE ones to PE only.
    let elf_conds = Cond::MACHINE | Cond::ENDIAN | Cond::OSABI | Cond::FLAGS | Cond::INTERP;
    if cond & elf_conds != 0 && f.format != Format::Elf {
        return Ok(false);
    }
    if cond & (Cond::PE_MACHINE | Cond::DOTNET) != 0
        && (f.format != Format::Pe
            || (wants(Cond::PE_MACHINE) && field(rule::PE_MACHINE) != u32::from(f.pe_machine))
            || (wants(Cond::DOTNET) && field(rule::DOTNET) != u32::from(f.dotnet)))
    {
        return Ok(false);
    }
    if (wants(Cond::MACHINE) && field(rule::MACHINE) != u32::from(f.machine))
        || (wants(Cond::CLASS) && field(rule::CLASS) != u32::from(f.class))
        || (wants(Cond::ENDIAN) && field(rule::ENDIAN) != u32::from(f.endian))
        || (wants(Cond::OSABI) && field(rule::OSABI) != u32::from(f.osabi))
        || (wants(Cond::FLAGS) && f.flags & field(rule::FLAGS_MASK) != field(rule::FLAGS))
    {
        return Ok(false);
    }
    if wants(Cond::INTERP) {
        let pattern = blob.string(rec.array(rule::INTERP_GLOB))?;
        if !f.interp.is_some_and(|i| glob_match(pattern, i)) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether a rule's path glob matches one of `paths`.
fn path_matches(blob: &Blob<'_>, rec: blob::Record<'_>, paths: &[&[u8]]) -> blob::Result<bool> {
    let pattern = blob.string(rec.array(rule::PATH_GLOB))?;
    Ok(paths.iter().any(|p| glob_match(pattern, p)))
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
    /// Its index in the blob.
    pub index: u32,
    /// Offset of its record.
    pub record: u32,
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
    let all = blob.header_array(header::INTERPRETERS);
    let chain = blob.array(
        blob.record(all, plan.interpreter, interp::LEN)?,
        interp::CHAIN,
    )?;
    let mut outcome = NothingRan::NotFound;
    'candidates: for i in 0..chain.count {
        let index = blob.u32(chain.off + i * 4)?;
        let record = blob.record(all, index, interp::LEN)?;
        let muvm = (blob.field(record, interp::USE_MUVM)? != 0 && page_size != 4096)
            .then(|| blob.c_str(0, header::MUVM))
            .transpose()?;
        let candidate = Candidate {
            index,
            record,
            path: blob.c_str(record, interp::PATH)?,
            muvm,
        };
        let required = blob.array(record, interp::REQUIRED_PATHS)?;
        for r in 0..required.count {
            let path = blob.c_str(required.off + r * 8, 0)?;
            if !sys.exists(path) {
                let shown = &path[..path.len() - 1];
                sys.failed(&candidate, Failure::RequiredPathMissing(shown));
                continue 'candidates;
            }
        }
        match sys.run(&candidate) {
            Ok(()) => return Ok(Ok(())),
            Err(failure) => {
                sys.failed(&candidate, failure);
                match failure {
                    Failure::NotExecutable(errno) if !falls_back(errno) => {
                        return Ok(Err(NothingRan::CannotExecute))
                    }
                    Failure::NotExecutable(_) | Failure::NoSafeName => {
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

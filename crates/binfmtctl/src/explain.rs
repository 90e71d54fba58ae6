//! `binfmtctl explain`: what the trampoline would do with a binary,
//! computed by the trampoline's own `decide::decide`, `decide::walk` and
//! `launch::build` over the same cache, with a [`System`] that looks at the
//! file system instead of executing.

use std::ffi::{CStr, OsString};
use std::fs;
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use binfmt_dispatcher_config as config;
use binfmt_dispatcher_core::blob::{self, header, interp, Blob, Flags};
use binfmt_dispatcher_core::decide::{
    self, Candidate, Failure, NothingRan, Reason, Subject, System,
};
use binfmt_dispatcher_core::launch::{self, ArgvStyle, Buffers, BuildError, Guest, Strings};
use binfmt_dispatcher_core::paths;
use binfmt_dispatcher_core::probe::{self, Facts, Format, HEADER_LEN, HEADER_LEN_MAX};

use crate::json::Json;
use crate::locations::{self, Locations, Source};

/// `binfmtctl explain` options.
#[derive(clap::Args)]
pub struct Args {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Simulate a registration with the P flag, the caller passing NAME as
    /// argv[0]. Without it the guest's argv[0] is FILE as given, as without P.
    #[arg(long, value_name = "NAME")]
    argv0: Option<OsString>,
    /// Simulate a host with this page size, which decides whether `use_muvm`
    /// interpreters run under muvm (default: this system's).
    #[arg(long, value_name = "BYTES")]
    page_size: Option<usize>,
    /// The descriptor the dispatcher holds the binary open on (binfmt_misc's
    /// with the O flag, else its own): 3 when the caller has only 0, 1, 2 open.
    #[arg(long, value_name = "FD", default_value_t = 3)]
    execfd: u32,
    /// The trampoline whose built-in configuration applies when no cache
    /// does (one written by `compile --embed` carries the system's and
    /// reads no system cache) [default: the registered one if it carries
    /// the system's configuration, else binfmtctl's copy of the built-in
    /// configuration].
    #[arg(long, value_name = "PATH")]
    dispatcher: Option<PathBuf>,
    /// The binary, as it would be executed; a name without `/` is searched
    /// in PATH as a shell would.
    file: OsString,
    /// Its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

/// NUL-terminated strings in one buffer, as the trampoline sees its argv
/// and envp.
pub struct OwnedStrings {
    buf: Vec<u8>,
    starts: Vec<usize>,
}

impl OwnedStrings {
    fn new<I: IntoIterator<Item = Vec<u8>>>(items: I) -> OwnedStrings {
        let mut s = OwnedStrings {
            buf: Vec::new(),
            starts: Vec::new(),
        };
        for mut item in items {
            // A NUL inside cannot reach execve; cut there, as C would.
            if let Some(n) = item.iter().position(|&b| b == 0) {
                item.truncate(n);
            }
            s.starts.push(s.buf.len());
            s.buf.extend_from_slice(&item);
            s.buf.push(0);
        }
        s
    }

    /// String `i` with its NUL.
    fn with_nul(&self, i: usize) -> &[u8] {
        let end = self.starts.get(i + 1).copied().unwrap_or(self.buf.len());
        &self.buf[self.starts[i]..end]
    }
}

impl Strings for OwnedStrings {
    fn count(&self) -> usize {
        self.starts.len()
    }
    fn ptr(&self, i: usize) -> *const u8 {
        self.with_nul(i).as_ptr()
    }
    fn bytes(&self, i: usize) -> &[u8] {
        let s = self.with_nul(i);
        &s[..s.len() - 1]
    }
}

/// The C string at `p`, found by address in one of `regions` (the blob,
/// the arena, the argv and envp buffers) or the launch module's statics:
/// pointers from `launch::build` point nowhere else.
fn resolve(p: *const u8, regions: &[&[u8]]) -> Option<Vec<u8>> {
    let addr = p as usize;
    for &(s, text) in &[
        (launch::MUVM_SEPARATOR, "--"),
        (launch::QEMU_ARGV0_OPTION, "-0"),
    ] {
        if s.as_ptr() as usize == addr {
            return Some(text.as_bytes().to_vec());
        }
    }
    for r in regions {
        let start = r.as_ptr() as usize;
        if addr >= start && addr < start + r.len() {
            let rest = &r[addr - start..];
            let end = rest.iter().position(|&b| b == 0)?;
            return Some(rest[..end].to_vec());
        }
    }
    None
}

/// An interpreter that was tried and skipped.
struct Tried {
    id: String,
    path: String,
    muvm: Option<String>,
    kind: &'static str,
    why: String,
}

/// The interpreter that would run, and how.
struct Ran {
    id: String,
    name: String,
    path: String,
    muvm: Option<String>,
    exec: Vec<u8>,
    argv: Vec<Vec<u8>>,
    env: Vec<Vec<u8>>,
    keeps_fd: bool,
}

/// `decide::System` for explain: existence and executability from the file
/// system; `run` builds the argv and envp with `launch::build` and stops.
struct ExplainSystem<'x, 'b> {
    blob: &'x Blob<'b>,
    guest: &'x Guest<'x, OwnedStrings>,
    env: &'x OwnedStrings,
    tried: Vec<Tried>,
    ran: Option<Ran>,
    error: Option<String>,
}

fn bare(c: &[u8]) -> &[u8] {
    c.strip_suffix(&[0]).unwrap_or(c)
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(bare(b)).into_owned()
}

fn errno_text(errno: i32) -> String {
    std::io::Error::from_raw_os_error(errno).to_string()
}

impl ExplainSystem<'_, '_> {
    fn ids(&self, candidate: &Candidate<'_>) -> (String, String) {
        let id = self.blob.str(candidate.record, interp::ID).unwrap_or(b"?");
        let name = self
            .blob
            .str(candidate.record, interp::NAME)
            .unwrap_or(b"?");
        (lossy(id), lossy(name))
    }

    /// The exec `candidate` would make; `Ok(None)` when its template
    /// cannot be given the binary's name safely.
    fn build(&mut self, candidate: &Candidate<'_>) -> Result<Option<Ran>, String> {
        let mut argv: Vec<*const u8> = Vec::new();
        let mut envp: Vec<*const u8> = Vec::new();
        let mut arena: Vec<u8> = Vec::new();
        let sizes = loop {
            let mut out = Buffers {
                argv: &mut argv,
                envp: &mut envp,
                arena: &mut arena,
            };
            match launch::build(self.blob, candidate, self.guest, self.env, &mut out) {
                Ok(sizes) => break sizes,
                Err(BuildError::TooSmall(s)) => {
                    argv = vec![std::ptr::null(); s.argv];
                    envp = vec![std::ptr::null(); s.envp];
                    arena = vec![0; s.arena];
                }
                Err(BuildError::Blob(e)) => return Err(e.describe().to_string()),
                Err(BuildError::NoSafeName) => return Ok(None),
            }
        };
        let regions: [&[u8]; 4] = [
            self.blob.as_bytes(),
            &arena,
            &self.guest.args.buf,
            &self.env.buf,
        ];
        let strings = |ptrs: &[*const u8]| -> Result<Vec<Vec<u8>>, String> {
            ptrs.iter()
                .take_while(|p| !p.is_null())
                .map(|&p| {
                    resolve(p, &regions)
                        .ok_or_else(|| "an argv pointer points nowhere known".to_string())
                })
                .collect()
        };
        let argv = strings(&argv[..sizes.argv])?;
        let env = strings(&envp[..sizes.envp])?;
        let style = self
            .blob
            .field(candidate.record, interp::ARGV_STYLE)
            .ok()
            .and_then(ArgvStyle::from_code);
        let (id, name) = self.ids(candidate);
        Ok(Some(Ran {
            id,
            name,
            path: lossy(candidate.path),
            muvm: candidate.muvm.map(lossy),
            exec: bare(candidate.muvm.unwrap_or(candidate.path)).to_vec(),
            argv,
            env,
            keeps_fd: style.is_some_and(ArgvStyle::passes_execfd),
        }))
    }
}

fn c_path(path: &[u8]) -> Option<&CStr> {
    CStr::from_bytes_with_nul(path).ok()
}

impl System for ExplainSystem<'_, '_> {
    fn exists(&mut self, path: &[u8]) -> bool {
        // What the trampoline asks: stat, with the effective ids.
        c_path(path).is_some_and(|p| rustix::fs::stat(p).is_ok())
    }

    fn run(&mut self, candidate: &Candidate<'_>) -> Result<(), Failure<'static>> {
        let target = candidate.muvm.unwrap_or(candidate.path);
        let Some(c) = c_path(target) else {
            return Err(Failure::Missing);
        };
        if rustix::fs::access(c, rustix::fs::Access::EXISTS).is_err() {
            return Err(Failure::Missing);
        }
        // execve refuses what is not a regular file with EACCES.
        let path = Path::new(std::ffi::OsStr::from_bytes(bare(target)));
        match fs::metadata(path) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {}
            Ok(_) => {
                return Err(Failure::NotExecutable(
                    rustix::io::Errno::ACCESS.raw_os_error(),
                ))
            }
            Err(e) => return Err(Failure::NotExecutable(e.raw_os_error().unwrap_or(0))),
        }
        if let Err(e) = rustix::fs::access(c, rustix::fs::Access::EXEC_OK) {
            return Err(Failure::NotExecutable(e.raw_os_error()));
        }
        match self.build(candidate) {
            Ok(Some(ran)) => {
                self.ran = Some(ran);
                Ok(())
            }
            Ok(None) => Err(Failure::NoSafeName),
            Err(e) => {
                self.error = Some(e);
                Err(Failure::NotExecutable(
                    rustix::io::Errno::INVAL.raw_os_error(),
                ))
            }
        }
    }

    fn failed(&mut self, candidate: &Candidate<'_>, failure: Failure<'_>) {
        let (id, _) = self.ids(candidate);
        let (kind, why) = match failure {
            Failure::Missing => (
                "missing",
                match candidate.muvm {
                    Some(m) => format!("muvm ({}) not found", lossy(m)),
                    None => "not found".to_string(),
                },
            ),
            Failure::RequiredPathMissing(p) => (
                "required_path_missing",
                format!("required path {} is missing", lossy(p)),
            ),
            Failure::NotExecutable(errno) => (
                "not_executable",
                format!("cannot execute: {}", errno_text(errno)),
            ),
            Failure::NoSafeName => (
                "no_safe_name",
                "cannot be given the binary's name safely (its template needs \
                 {binary_dir} or {binary_stem})"
                    .to_string(),
            ),
        };
        self.tried.push(Tried {
            id,
            path: lossy(candidate.path),
            muvm: candidate.muvm.map(lossy),
            kind,
            why,
        });
    }
}

/// The system's page size, from the auxiliary vector (AT_PAGESZ).
pub fn page_size() -> usize {
    const AT_PAGESZ: usize = 6;
    let word = std::mem::size_of::<usize>();
    let mut auxv = Vec::new();
    if fs::File::open("/proc/self/auxv")
        .and_then(|mut f| f.read_to_end(&mut auxv))
        .is_ok()
    {
        let words: Vec<usize> = auxv
            .chunks_exact(word)
            .filter_map(|c| <[u8; std::mem::size_of::<usize>()]>::try_from(c).ok())
            .map(usize::from_ne_bytes)
            .collect();
        for pair in words.chunks_exact(2) {
            if pair[0] == AT_PAGESZ && pair[1] != 0 {
                return pair[1];
            }
        }
    }
    4096
}

/// `file` as a shell would execute it: searched in PATH when it has no `/`.
fn resolve_file(file: &OsString) -> Result<Vec<u8>, String> {
    let b = file.as_bytes();
    if b.is_empty() {
        return Err("an empty file name".to_string());
    }
    if b.contains(&b'/') {
        return Ok(b.to_vec());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    for dir in std::env::split_paths(&path) {
        let candidate = if dir.as_os_str().is_empty() {
            PathBuf::from(file)
        } else {
            dir.join(file)
        };
        if candidate.is_file() {
            let mut p = candidate.into_os_string().into_vec();
            if !p.contains(&b'/') {
                p.splice(0..0, *b"./");
            }
            return Ok(p);
        }
    }
    Err(format!("{}: not found in PATH", file.to_string_lossy()))
}

/// Everything explain found out, for either output.
struct Report {
    filename: Vec<u8>,
    facts_json: Json,
    facts_text: Vec<String>,
    paths: Vec<Vec<u8>>,
    source: Source,
    skipped: Vec<(PathBuf, String)>,
    fell_back: Option<String>,
    /// The missing-interpreter helper the dispatcher would run (exit 127).
    helper: Option<String>,
    decision: Option<(String, Json, String)>,
    tried: Vec<Tried>,
    ran: Option<Ran>,
    status: i32,
    execfd: u32,
    page_size: usize,
    env_before: Vec<Vec<u8>>,
}

fn osabi_name(osabi: u8) -> &'static str {
    match osabi {
        0 => "System V",
        1 => "HP-UX",
        2 => "NetBSD",
        3 => "Linux",
        6 => "Solaris",
        9 => "FreeBSD",
        12 => "OpenBSD",
        97 => "ARM",
        255 => "standalone",
        _ => "other",
    }
}

fn kind_name(kind: u16) -> &'static str {
    match kind {
        1 => "relocatable",
        2 => "executable",
        3 => "shared object (PIE or library)",
        4 => "core",
        _ => "other",
    }
}

fn facts_out(facts: &Facts<'_>) -> (Json, Vec<String>) {
    let bits = match facts.class {
        probe::ELFCLASS32 => 32,
        probe::ELFCLASS64 => 64,
        _ => 0,
    };
    match facts.format {
        Format::Elf => {}
        Format::Unknown => {
            return (
                Json::Obj(vec![("format", Json::str("unknown"))]),
                vec!["format: not recognised (not ELF, PE, Java class or Mach-O)".to_string()],
            );
        }
        Format::Pe => {
            let name = probe::pe_machine_name(facts.pe_machine);
            let json = Json::Obj(vec![
                ("format", Json::str("pe")),
                ("class", Json::Num(bits)),
                ("pe_machine", Json::Num(u64::from(facts.pe_machine))),
                ("pe_machine_name", Json::opt(name, Json::str)),
                ("dotnet", Json::Bool(facts.dotnet)),
            ]);
            let kind = match (bits, facts.dotnet) {
                (_, true) => ".NET assembly (CLR header present)".to_string(),
                (0, false) => "no optional header (an object file?)".to_string(),
                (bits, false) => format!("Windows program (Win{bits}, no CLR header)"),
            };
            let class = match bits {
                32 => "PE32",
                64 => "PE32+",
                _ => "PE",
            };
            let text = vec![
                format!("format: {class}, {kind}"),
                format!(
                    "PE machine: {} ({:#x})",
                    name.unwrap_or("unknown"),
                    facts.pe_machine
                ),
            ];
            return (json, text);
        }
        Format::JavaClass => {
            let json = Json::Obj(vec![
                ("format", Json::str("java")),
                ("java_major", Json::Num(u64::from(facts.java_major))),
            ]);
            let java = match facts.java_major {
                45..=48 => format!("Java 1.{}", facts.java_major - 44),
                m => format!("Java {}", m - 44),
            };
            let text = vec![format!(
                "format: Java class file, version {} ({java})",
                facts.java_major
            )];
            return (json, text);
        }
        Format::MachO => {
            let json = Json::Obj(vec![
                ("format", Json::str("macho")),
                ("class", Json::Num(bits)),
                ("macho_cpu", Json::Num(u64::from(facts.macho_cpu))),
                ("macho_arches", Json::Num(u64::from(facts.macho_arches))),
            ]);
            let what = if facts.macho_arches > 0 {
                format!(
                    "universal (fat), {} architectures, the first of CPU type {:#x}",
                    facts.macho_arches, facts.macho_cpu
                )
            } else {
                format!("{bits}-bit, CPU type {:#x}", facts.macho_cpu)
            };
            let text = vec![format!(
                "format: Mach-O (macOS), {what}; Linux cannot run it natively"
            )];
            return (json, text);
        }
    }
    let class = bits;
    let endian = match facts.endian {
        probe::ELFDATA2LSB => "little",
        probe::ELFDATA2MSB => "big",
        _ => "unknown",
    };
    let machine_name = probe::machine_name(facts.machine);
    let arch = probe::arch_of(facts).map(|a| a.name);
    let json = Json::Obj(vec![
        ("format", Json::str("elf")),
        ("class", Json::Num(class)),
        ("endian", Json::str(endian)),
        ("machine", Json::Num(u64::from(facts.machine))),
        ("machine_name", Json::opt(machine_name, Json::str)),
        ("arch", Json::opt(arch, Json::str)),
        ("osabi", Json::Num(u64::from(facts.osabi))),
        ("osabi_name", Json::str(osabi_name(facts.osabi))),
        ("type", Json::Num(u64::from(facts.kind))),
        ("type_name", Json::str(kind_name(facts.kind))),
        ("flags", Json::Num(u64::from(facts.flags))),
        ("interp", Json::opt(facts.interp, Json::bytes)),
    ]);
    let text = vec![
        format!(
            "format: ELF, {class}-bit, {endian}-endian, {} (type {})",
            kind_name(facts.kind),
            facts.kind
        ),
        format!(
            "machine: {} ({}){}",
            machine_name.unwrap_or("unknown"),
            facts.machine,
            arch.map_or(String::new(), |a| format!(", QEMU target {a}"))
        ),
        format!(
            "OS ABI: {} ({}), flags: {:#x}",
            facts.osabi,
            osabi_name(facts.osabi),
            facts.flags
        ),
        format!(
            "PT_INTERP: {}",
            facts.interp.map_or("none (static)".to_string(), lossy)
        ),
    ];
    (json, text)
}

/// What [`attempt`] found: the paths matched, the decision (interpreter,
/// reason as JSON and as text), the interpreters skipped, the one that
/// would run, the trampoline's exit status.
type Outcome = (
    Vec<Vec<u8>>,
    Option<(String, Json, String)>,
    Vec<Tried>,
    Option<Ran>,
    i32,
);

/// Decides and walks over `blob`. `Err`: the blob is inconsistent.
fn attempt(
    blob: &Blob<'_>,
    facts: &Facts<'_>,
    filename: &[u8],
    guest: &Guest<'_, OwnedStrings>,
    env: &OwnedStrings,
    env_interpreter: Option<&[u8]>,
    page_size: usize,
) -> blob::Result<Outcome> {
    // The paths overrides and globs see: the filename when absolute, and
    // the canonical path, only when the configuration looks at paths.
    let mut paths: Vec<Vec<u8>> = Vec::new();
    if blob.header(header::FLAGS) & Flags::PATH_MATCHERS != 0 {
        if filename.starts_with(b"/") {
            paths.push(filename.to_vec());
        }
        if let Ok(c) = fs::canonicalize(std::ffi::OsStr::from_bytes(filename)) {
            let c = c.into_os_string().into_vec();
            if paths.first() != Some(&c) {
                paths.push(c);
            }
        }
    }
    let refs: Vec<&[u8]> = paths.iter().map(Vec::as_slice).collect();
    let subject = Subject {
        facts: *facts,
        paths: &refs,
    };
    let Some(plan) = decide::decide(blob, &subject, env_interpreter)? else {
        return Ok((paths, None, Vec::new(), None, 127));
    };
    let all = blob.header_array(header::INTERPRETERS);
    let id = lossy(blob.str(blob.record(all, plan.interpreter, interp::LEN)?, interp::ID)?);
    let (reason, detail) = match plan.reason {
        Reason::Environment => (
            Json::Obj(vec![("kind", Json::str("environment"))]),
            format!("{}={id}", paths::ENV_INTERPRETER),
        ),
        Reason::Binary(p) => (
            Json::Obj(vec![
                ("kind", Json::str("binary")),
                ("path", Json::bytes(p)),
            ]),
            format!("[binaries] entry for {}", lossy(p)),
        ),
        Reason::Rule(n) => {
            let conditions = config::describe_rule(blob, n).unwrap_or_else(|e| e.to_string());
            (
                Json::Obj(vec![
                    ("kind", Json::str("rule")),
                    ("number", Json::Num(u64::from(n) + 1)),
                    ("conditions", Json::str(conditions.clone())),
                ]),
                format!("rule #{} ({conditions})", n + 1),
            )
        }
        Reason::Default => (
            Json::Obj(vec![("kind", Json::str("default"))]),
            "[defaults] interpreter".to_string(),
        ),
    };
    let mut sys = ExplainSystem {
        blob,
        guest,
        env,
        tried: Vec::new(),
        ran: None,
        error: None,
    };
    let status = match decide::walk(blob, &plan, page_size, &mut sys)? {
        Ok(()) => 0,
        Err(NothingRan::NotFound) => 127,
        Err(NothingRan::CannotExecute) => 126,
    };
    if let Some(e) = sys.error {
        eprintln!("binfmtctl: {e}");
    }
    Ok((
        paths,
        Some((id, reason, detail)),
        sys.tried,
        sys.ran,
        status,
    ))
}

/// `binfmtctl explain`.
pub fn run(loc: &Locations, args: &Args) -> Result<ExitCode, String> {
    let filename = resolve_file(&args.file)?;
    let shown = String::from_utf8_lossy(&filename).into_owned();
    let mut header = Vec::with_capacity(HEADER_LEN);
    fs::File::open(std::ffi::OsStr::from_bytes(&filename))
        .and_then(|f| f.take(HEADER_LEN as u64).read_to_end(&mut header))
        .map_err(|e| format!("{shown}: {e}"))?;
    let mut facts = probe::probe(&header);
    // As the trampoline does: a PE header past the first read is read too.
    if probe::needs_more(&header, &facts, false) {
        let mut more = Vec::with_capacity(HEADER_LEN_MAX);
        if fs::File::open(std::ffi::OsStr::from_bytes(&filename))
            .and_then(|f| f.take(HEADER_LEN_MAX as u64).read_to_end(&mut more))
            .is_ok()
        {
            header = more;
        }
        facts = probe::probe(&header);
    }

    // The trampoline's argv: [dispatcher, filename, (argv0 with P), args...].
    let mut argv: Vec<Vec<u8>> = vec![b"binfmt-dispatcher".to_vec(), filename.clone()];
    if let Some(a0) = &args.argv0 {
        argv.push(a0.as_bytes().to_vec());
    }
    argv.extend(args.args.iter().map(|a| a.as_bytes().to_vec()));
    let argv = OwnedStrings::new(argv);
    let env = OwnedStrings::new(std::env::vars_os().map(|(k, v)| {
        let mut e = k.into_vec();
        e.push(b'=');
        e.extend_from_slice(v.as_bytes());
        e
    }));
    let p_flag = args.argv0.is_some();
    let guest = Guest {
        binary: argv.with_nul(1),
        argv0: argv.with_nul(if p_flag { 2 } else { 1 }),
        args: &argv,
        first_arg: if p_flag { 3 } else { 2 },
        execfd: Some(args.execfd),
        by_descriptor: false,
        secure: false,
    };
    let env_interpreter = std::env::var_os(paths::ENV_INTERPRETER).map(OsStringExt::into_vec);
    let page_size = args.page_size.unwrap_or_else(page_size);

    // The trampoline named, or a registered one that carries the system's
    // configuration: its configuration is the built-in one.
    let trampoline = crate::embed::trampoline_config(
        args.dispatcher.as_deref(),
        Path::new(crate::binfmt_misc::DEFAULT_DIR),
    )?;
    let (dispatcher, builtin) = match &trampoline {
        Some((path, config)) => (Some(path.as_path()), config.as_slice()),
        None => (None, locations::BAKED),
    };
    let effective = locations::effective_with(loc, builtin, dispatcher);
    let mut source = effective.source.clone();
    let mut fell_back = None;
    let go = |bytes: &[u8]| {
        let blob = Blob::open(bytes)?;
        attempt(
            &blob,
            &facts,
            &filename,
            &guest,
            &env,
            env_interpreter.as_deref(),
            page_size,
        )
    };
    let outcome = match go(&effective.bytes) {
        Ok(o) => o,
        Err(e) => {
            fell_back = Some(format!(
                "{} is {}; the dispatcher uses the built-in configuration",
                source.describe(),
                e.describe()
            ));
            source = Source::BuiltIn;
            go(builtin).map_err(|e| format!("the built-in configuration is {}", e.describe()))?
        }
    };
    let (paths, decision, tried, ran, status) = outcome;
    let used: &[u8] = if fell_back.is_some() {
        builtin
    } else {
        &effective.bytes
    };
    let helper = Blob::open(used)
        .ok()
        .and_then(|b| b.str(0, header::MISSING_HELPER).ok())
        .filter(|h| !h.is_empty() && status == 127)
        .map(|h| String::from_utf8_lossy(h).into_owned());
    let (facts_json, facts_text) = facts_out(&facts);
    let report = Report {
        filename,
        facts_json,
        facts_text,
        paths,
        source,
        skipped: effective.skipped,
        fell_back,
        decision,
        tried,
        ran,
        status,
        helper,
        execfd: args.execfd,
        page_size,
        env_before: (0..env.count()).map(|i| env.bytes(i).to_vec()).collect(),
    };
    print!(
        "{}",
        if args.json {
            json(&report)
        } else {
            text(&report)
        }
    );
    Ok(if report.ran.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn json(r: &Report) -> String {
    let strings = |v: &[Vec<u8>]| Json::Arr(v.iter().map(|s| Json::bytes(s)).collect());
    let tried = r
        .tried
        .iter()
        .map(|t| {
            Json::Obj(vec![
                ("interpreter", Json::str(t.id.clone())),
                ("path", Json::str(t.path.clone())),
                ("muvm", Json::opt(t.muvm.clone(), Json::str)),
                ("failure", Json::str(t.kind)),
                ("reason", Json::str(t.why.clone())),
            ])
        })
        .collect();
    let (chosen, reason) = match &r.decision {
        Some((id, reason, _)) => (Json::str(id.clone()), clone_json(reason)),
        None => (Json::Null, Json::Null),
    };
    let runs = r.ran.as_ref().map(|ran| {
        Json::Obj(vec![
            ("interpreter", Json::str(ran.id.clone())),
            ("name", Json::str(ran.name.clone())),
            ("path", Json::str(ran.path.clone())),
            ("muvm", Json::opt(ran.muvm.clone(), Json::str)),
        ])
    });
    Json::Obj(vec![
        ("binary", Json::bytes(&r.filename)),
        ("header", clone_json(&r.facts_json)),
        ("paths", strings(&r.paths)),
        (
            "cache",
            Json::Obj(vec![
                ("source", Json::str(r.source.kind())),
                (
                    "path",
                    Json::opt(r.source.path(), |p| Json::bytes(p.as_os_str().as_bytes())),
                ),
                (
                    "skipped",
                    Json::Arr(
                        r.skipped
                            .iter()
                            .map(|(p, why)| {
                                Json::Obj(vec![
                                    ("path", Json::bytes(p.as_os_str().as_bytes())),
                                    ("reason", Json::str(why.clone())),
                                ])
                            })
                            .collect(),
                    ),
                ),
                ("fell_back", Json::opt(r.fell_back.clone(), Json::str)),
            ]),
        ),
        ("chosen", chosen),
        ("reason", reason),
        ("tried", Json::Arr(tried)),
        ("runs", Json::opt(runs, |j| j)),
        (
            "exec",
            Json::opt(r.ran.as_ref(), |ran| Json::bytes(&ran.exec)),
        ),
        ("argv", Json::opt(r.ran.as_ref(), |ran| strings(&ran.argv))),
        ("env", Json::opt(r.ran.as_ref(), |ran| strings(&ran.env))),
        (
            "execfd",
            Json::opt(r.ran.as_ref().filter(|ran| ran.keeps_fd), |_| {
                Json::Num(u64::from(r.execfd))
            }),
        ),
        ("page_size", Json::Num(r.page_size as u64)),
        ("status", Json::Num(r.status as u64)),
        ("missing_helper", Json::opt(r.helper.as_deref(), Json::str)),
    ])
    .render()
}

fn clone_json(j: &Json) -> Json {
    match j {
        Json::Null => Json::Null,
        Json::Bool(b) => Json::Bool(*b),
        Json::Num(n) => Json::Num(*n),
        Json::Str(s) => Json::Str(s.clone()),
        Json::Arr(a) => Json::Arr(a.iter().map(clone_json).collect()),
        Json::Obj(o) => Json::Obj(o.iter().map(|(k, v)| (*k, clone_json(v))).collect()),
    }
}

fn text(r: &Report) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(o, "binary: {}", String::from_utf8_lossy(&r.filename));
    for line in &r.facts_text {
        let _ = writeln!(o, "  {line}");
    }
    for p in &r.paths {
        let _ = writeln!(o, "  matched as: {}", String::from_utf8_lossy(p));
    }
    let _ = writeln!(o, "configuration: {}", r.source.describe());
    for (p, why) in &r.skipped {
        let _ = writeln!(o, "  skipped {}: {why}", p.display());
    }
    if let Some(f) = &r.fell_back {
        let _ = writeln!(o, "  {f}");
    }
    let Some((id, _, detail)) = &r.decision else {
        let _ = writeln!(
            o,
            "decision: no interpreter is configured for this kind of binary; the dispatcher exits 127"
        );
        return o;
    };
    let _ = writeln!(o, "decision: {id}, by {detail}");
    for t in &r.tried {
        let _ = writeln!(o, "  skipped {} ({}): {}", t.id, t.path, t.why);
    }
    let Some(ran) = &r.ran else {
        let _ = writeln!(
            o,
            "nothing would run: the dispatcher exits {} with one line on stderr",
            r.status
        );
        if let Some(h) = &r.helper {
            let _ = writeln!(
                o,
                "  then executes the missing-interpreter helper {h} BINARY ARGV0 ARGS... \
                 (when it exists; never for set-id binaries), which may install one and rerun"
            );
        }
        return o;
    };
    let _ = writeln!(o, "runs: {} ({}) {}", ran.id, ran.name, ran.path);
    if let Some(m) = &ran.muvm {
        let _ = writeln!(o, "  under muvm {m}: the page size is {}", r.page_size);
    }
    let _ = writeln!(o, "execve: {}", String::from_utf8_lossy(&ran.exec));
    for (i, a) in ran.argv.iter().enumerate() {
        let _ = writeln!(o, "  argv[{i}] = {:?}", String::from_utf8_lossy(a));
    }
    // The environment: the caller's, with what the interpreter's
    // convention and configuration set.
    let key = |e: &[u8]| e.split(|&b| b == b'=').next().unwrap_or(e).to_vec();
    let mut changes = Vec::new();
    for e in &ran.env {
        if !r.env_before.contains(e) {
            let replaced = r.env_before.iter().any(|b| key(b) == key(e));
            changes.push(format!(
                "  {} {}",
                if replaced { "replaced:" } else { "added:   " },
                String::from_utf8_lossy(e)
            ));
        }
    }
    let kept = ran.env.len() - changes.len();
    let _ = writeln!(
        o,
        "environment: {} variables: {kept} of this one{}",
        ran.env.len(),
        if changes.is_empty() { "" } else { ", and" }
    );
    for c in changes {
        let _ = writeln!(o, "{c}");
    }
    if ran.keeps_fd {
        let _ = writeln!(o, "descriptor {} (the binary) stays open", r.execfd);
    }
    o
}

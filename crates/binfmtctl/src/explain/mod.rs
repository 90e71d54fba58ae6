//! `binfmtctl explain`: what the trampoline would do with a binary. It runs
//! the trampoline's own exec path (`driver::run`, the same code) over a
//! host that answers from the file system and records each exec instead of
//! making it, then prints what it saw: the decision, the interpreters
//! passed over, the exact argv and envp, the messages and the exit status.

mod facts;
mod recorder;
mod report;

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use binfmt_dispatcher_core::driver::{self, Process};
use binfmt_dispatcher_core::launch::Strings;

use crate::locations::{self, Locations};
use recorder::Recorder;
use report::Report;

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
    /// The descriptor binfmt_misc hands the dispatcher with the O flag, or
    /// with --no-execfd the one the dispatcher's own open of the binary
    /// gets: the lowest free, 3 when the caller has only 0, 1 and 2 open.
    #[arg(long, value_name = "FD", default_value_t = 3)]
    execfd: u32,
    /// Simulate a registration without the O flag: the dispatcher opens the
    /// binary by name.
    #[arg(long, conflicts_with = "secure")]
    no_execfd: bool,
    /// Simulate a set-id exec (AT_SECURE: a setuid binary under the C
    /// flag): the environment and the caller's caches are ignored, the
    /// binary is named by its descriptor.
    #[arg(long)]
    secure: bool,
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

    /// All of them, back to back.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
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
    fn with_nul(&self, i: usize) -> &[u8] {
        OwnedStrings::with_nul(self, i)
    }
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

/// `binfmtctl explain`.
pub fn run(loc: &Locations, args: &Args) -> Result<ExitCode, String> {
    let filename = resolve_file(&args.file)?;
    let shown = String::from_utf8_lossy(&filename).into_owned();
    // The process the kernel would start: [dispatcher, binary, (argv[0]
    // with P), args...], this one's environment. Kept for the rest of the
    // run: the recorder finds the exec's strings in them by address.
    let mut argv: Vec<Vec<u8>> = vec![b"binfmt-dispatcher".to_vec(), filename.clone()];
    argv.extend(args.argv0.iter().map(|a| a.as_bytes().to_vec()));
    argv.extend(args.args.iter().map(|a| a.as_bytes().to_vec()));
    let argv: &'static OwnedStrings = Box::leak(Box::new(OwnedStrings::new(argv)));
    let env = std::env::vars_os().map(|(k, v)| [k.into_vec(), v.into_vec()].join(&b'='));
    let env: &'static OwnedStrings = Box::leak(Box::new(OwnedStrings::new(env)));
    let mut envp: Vec<*const u8> = (0..env.count()).map(|i| env.ptr(i)).collect();
    envp.push(std::ptr::null());

    // The trampoline named, or a registered one that carries the system's
    // configuration: its configuration is the built-in one.
    let trampoline = crate::embed::trampoline_config(
        args.dispatcher.as_deref(),
        Path::new(crate::binfmt_misc::DEFAULT_DIR),
    )?;
    let (dispatcher, baked): (Option<PathBuf>, &'static [u8]) = match trampoline {
        Some((path, config)) => (Some(path), Vec::leak(config)),
        None => (None, locations::BAKED),
    };
    let execfd = (!args.no_execfd).then_some(args.execfd);
    let binary = match execfd {
        Some(_) => Some(recorder::open_binary(&filename).map_err(|e| format!("{shown}: {e}"))?),
        None => None,
    };
    let embedded_in = dispatcher.clone();
    let binary = (args.execfd, binary);
    let bundled = dispatcher.as_deref().map_or_else(Vec::new, bundled_paths);
    let mut host = Recorder::new(binary, loc.system_cache(), dispatcher, [argv, env], baked)
        .with_bundled(bundled);
    let process = Process {
        args: argv,
        env,
        envp: &envp,
        execfd,
        flags: usize::from(args.argv0.is_some()),
        secure: args.secure,
        page_size: args.page_size.unwrap_or_else(rustix::param::page_size),
        execfn: None,
    };
    let status = driver::run(&mut host, &process, baked);
    let report = Report {
        binary: &filename,
        seen: &host.seen,
        status,
        execfd: host.binary_fd(),
        page_size: process.page_size,
        secure: args.secure,
        embedded_in,
        env_before: (0..env.count()).map(|i| env.bytes(i).to_vec()).collect(),
    };
    print!(
        "{}",
        if args.json {
            report::json(&report)
        } else {
            report::text(&report)
        }
    );
    Ok(if status == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The paths of the interpreters bundled into the trampoline at `path`
/// (none when it carries no bundle or cannot be read).
fn bundled_paths(path: &Path) -> Vec<Vec<u8>> {
    let image = std::fs::read(path).unwrap_or_default();
    crate::embed::bundled(&image)
        .map(|images| {
            images
                .iter()
                .map(|i| i.path.as_os_str().as_bytes().to_vec())
                .collect()
        })
        .unwrap_or_default()
}

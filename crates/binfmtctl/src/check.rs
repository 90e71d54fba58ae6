//! `binfmtctl check`: is everything in place? One line per finding, `ok:`,
//! `warning:` or `error:`; the exit status is 1 when there is an error.
//!
//! Errors: a configuration that does not compile; a cache that is missing
//! while there are configuration files, unreadable, corrupt, older than a
//! source or different from what `binfmtctl compile` would write now; a
//! cache left behind without sources; an interpreter that exists but cannot
//! be executed; binfmt_misc not mounted or disabled; the dispatcher not
//! registered, or registered with an interpreter that does not exist; a
//! bundled interpreter that differs from the file at its path now.
//! Warnings: interpreters (or their required paths) that are not
//! installed, since fallbacks and optional emulators are normal; disabled
//! entries; entries without the P flag (the guest cannot get its argv[0]);
//! a bundled interpreter gone from the host; an entry that runs a bundled
//! trampoline without the F flag.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use binfmt_dispatcher_config as config;
use binfmt_dispatcher_core::blob::{self, Blob};

use crate::binfmt_misc::{Entry, Instance};
use crate::embed;
use crate::locations::{self, Locations};

/// `binfmtctl check` options.
#[derive(clap::Args)]
pub struct Args {
    /// Where binfmt_misc is mounted.
    #[arg(long, value_name = "DIR", default_value = "/proc/sys/fs/binfmt_misc")]
    binfmt_misc: PathBuf,
    /// The trampoline in use [default: the registered one if it carries the
    /// system's configuration, else binfmtctl's copy of the built-in
    /// configuration]. When it carries the system's configuration (`compile
    /// --embed`), that, not the system cache, is checked against the layers.
    #[arg(long, value_name = "PATH")]
    dispatcher: Option<PathBuf>,
}

/// Findings so far.
#[derive(Default)]
struct Report {
    errors: usize,
    warnings: usize,
}

impl Report {
    fn ok(&mut self, what: impl AsRef<str>) {
        println!("ok: {}", what.as_ref());
    }
    fn warn(&mut self, what: impl AsRef<str>) {
        self.warnings += 1;
        println!("warning: {}", what.as_ref());
    }
    fn error(&mut self, what: impl AsRef<str>) {
        self.errors += 1;
        println!("error: {}", what.as_ref());
    }
}

fn mtime(p: &Path) -> Option<SystemTime> {
    fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn names(layers: &[PathBuf]) -> String {
    layers
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where a compiled configuration is kept.
#[derive(Clone, Copy)]
enum Kept<'a> {
    /// A cache file.
    Cache,
    /// Embedded in a trampoline by `compile --embed`: these bytes, read
    /// from it already.
    Embedded(&'a [u8]),
}

/// Checks one cache (or trampoline, `kept` says) against its layers.
/// `sources` are the files (and the vendor directory) whose change makes it
/// stale; `compile` the command that rebuilds it.
fn check_cache(
    r: &mut Report,
    what: &str,
    (cache, kept): (&Path, Kept<'_>),
    layers: &[PathBuf],
    sources: &[PathBuf],
    compile: &str,
) {
    let label = match kept {
        Kept::Cache => format!("{what} cache {}", cache.display()),
        Kept::Embedded(_) => format!("{what} configuration embedded in {}", cache.display()),
    };
    let compiled = config::load_layers(layers)
        .map_err(|e| e.to_string())
        .and_then(|c| config::compile(&c).map_err(|e| e.to_string()))
        .map(|b| match kept {
            Kept::Cache => b,
            Kept::Embedded(_) => embed::mark_embedded(b),
        });
    let compiled = match compiled {
        Ok(b) => {
            r.ok(format!("{what} configuration is valid: {}", names(layers)));
            b
        }
        Err(e) => {
            r.error(format!("{what} configuration: {e}"));
            return;
        }
    };
    let stored = match kept {
        Kept::Cache => locations::read_cache(cache),
        Kept::Embedded(bytes) => Ok(Some(bytes.to_vec())),
    };
    let bytes = match stored {
        Ok(Some(b)) => b,
        Ok(None) => {
            r.error(format!("{label} is missing: run `{compile}`"));
            return;
        }
        Err(why) => {
            r.error(format!("{label}: {why}: run `{compile}`"));
            return;
        }
    };
    let cache_time = mtime(cache);
    let newer: Vec<&PathBuf> = sources
        .iter()
        .filter(|s| matches!((mtime(s), cache_time), (Some(s), Some(c)) if s > c))
        .collect();
    match (bytes == compiled, newer.first()) {
        (true, None) => r.ok(format!("{label} is up to date")),
        (true, Some(s)) => r.warn(format!(
            "{label} is older than {}, though it holds what `{compile}` would write",
            s.display()
        )),
        (false, Some(s)) => r.error(format!(
            "{label} is older than {}: run `{compile}`",
            s.display()
        )),
        (false, None) => r.error(format!(
            "{label} differs from what `{compile}` would write: run it"
        )),
    }
}

/// A cache whose sources are all gone.
fn check_orphan(r: &mut Report, what: &str, cache: &Path, why: &str, fix: &str) {
    if cache.exists() {
        r.error(format!(
            "{what} cache {} exists but {why}: it hides the configuration below it; {fix}",
            cache.display()
        ));
    }
}

/// `binfmtctl check`.
pub fn run(loc: &Locations, args: &Args) -> Result<ExitCode, String> {
    let mut r = Report::default();

    // The trampoline's own configuration, and whether it is the system's:
    // the one named, or a registered one that carries the system's.
    let trampoline = embed::trampoline_config(args.dispatcher.as_deref(), &args.binfmt_misc)?;
    let (dispatcher, builtin) = match &trampoline {
        Some((path, config)) => (Some(path.as_path()), config.as_slice()),
        None => (None, locations::BAKED),
    };
    let embedded = embed::is_embedded(builtin);

    // The system layers and cache.
    let system = loc.system_layers().map_err(|e| e.to_string())?;
    let mut sources = system.clone();
    if loc.vendor_dir().is_dir() {
        sources.push(loc.vendor_dir());
    }
    if system.is_empty() {
        r.ok(format!(
            "no {} nor {}/*.toml: the built-in configuration applies",
            loc.system_config().display(),
            loc.vendor_dir().display()
        ));
        check_orphan(
            &mut r,
            "system",
            &loc.system_cache(),
            "there is no configuration file",
            "run `binfmtctl compile` (it removes it)",
        );
    } else if let Some(trampoline) = dispatcher.filter(|_| embedded) {
        let fix = format!("binfmtctl compile --embed {}", trampoline.display());
        check_cache(
            &mut r,
            "system",
            (trampoline, Kept::Embedded(builtin)),
            &system,
            &sources,
            &fix,
        );
    } else {
        check_cache(
            &mut r,
            "system",
            (&loc.system_cache(), Kept::Cache),
            &system,
            &sources,
            "binfmtctl compile",
        );
    }

    // The user's, when there is one.
    if let (Some(config), Some(cache)) = (locations::user_config(), locations::user_cache()) {
        if config.is_file() {
            let mut layers = system.clone();
            layers.push(config.clone());
            sources.push(config);
            check_cache(
                &mut r,
                "user",
                (&cache, Kept::Cache),
                &layers,
                &sources,
                "binfmtctl compile --user",
            );
        } else {
            check_orphan(
                &mut r,
                "user",
                &cache,
                &format!("there is no {}", config.display()),
                "run `binfmtctl compile --user` (it removes it)",
            );
        }
    }

    // The interpreters of the configuration the dispatcher would use.
    let effective = locations::effective_with(loc, builtin, dispatcher);
    for (path, why) in &effective.skipped {
        r.error(format!("the dispatcher skips {}: {why}", path.display()));
    }
    r.ok(format!(
        "the dispatcher uses {}",
        effective.source.describe()
    ));
    check_interpreters(&mut r, &effective.bytes);

    // binfmt_misc.
    check_registration(&mut r, &args.binfmt_misc);
    check_bundles(&mut r, args.dispatcher.as_deref(), &args.binfmt_misc);

    println!(
        "{}: {} error(s), {} warning(s)",
        if r.errors == 0 {
            "all is well"
        } else {
            "not well"
        },
        r.errors,
        r.warnings
    );
    Ok(if r.errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn check_interpreters(r: &mut Report, bytes: &[u8]) {
    let Ok(blob) = Blob::open(bytes) else {
        r.error("the configuration in use is not a valid cache");
        return;
    };
    let all = blob.interpreters();
    let mut missing = Vec::new();
    let mut checked = std::collections::BTreeSet::new();
    for interpreter in all.iter() {
        let Ok(interpreter) = interpreter else {
            r.error("the configuration in use is inconsistent");
            return;
        };
        let text = |s: blob::Result<blob::Str<'_>>, or: &str| match s {
            Ok(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
            Err(_) => or.to_string(),
        };
        let id = text(interpreter.id(), "?");
        let path = text(interpreter.path(), "");
        let absent: Vec<String> = interpreter
            .required_paths()
            .iter()
            .filter_map(|p| p.ok())
            .map(|p| String::from_utf8_lossy(p.as_bytes()).into_owned())
            .filter(|p| !Path::new(p).exists())
            .collect();
        match fs::metadata(&path) {
            Err(_) => missing.push(format!("{id} ({path})")),
            Ok(m) if !m.is_file() || m.permissions().mode() & 0o111 == 0 => r.error(format!(
                "interpreter {id}: {path} exists but cannot be executed"
            )),
            Ok(_) if !absent.is_empty() => r.warn(format!(
                "interpreter {id}: {path} is installed but not used: {} missing",
                absent.join(", ")
            )),
            Ok(_) => {
                if checked.insert(path.clone()) {
                    r.ok(format!("interpreter {id}: {path}"));
                } else {
                    r.ok(format!("interpreter {id}: {path} (again)"));
                }
            }
        }
    }
    if !missing.is_empty() {
        r.warn(format!(
            "{} of {} interpreters are not installed (their fallbacks are tried instead): {}",
            missing.len(),
            all.len(),
            missing.join(", ")
        ));
    }
    let muvm = blob.muvm().map_or(String::new(), |m| {
        String::from_utf8_lossy(m.as_bytes()).into_owned()
    });
    if !muvm.is_empty() && !Path::new(&muvm).exists() {
        r.warn(format!("muvm ({muvm}) is not installed: use_muvm interpreters cannot run on hosts whose pages are not 4 KiB"));
    }
}

fn check_registration(r: &mut Report, dir: &Path) {
    let instance = match Instance::open(dir) {
        Ok(i) => i,
        Err(why) => return r.error(why),
    };
    if !instance.enabled() {
        r.error(format!(
            "binfmt_misc is disabled ({}/status)",
            dir.display()
        ));
    }
    let entries = match instance.entries() {
        Ok(e) => e,
        Err(why) => return r.error(why),
    };
    let ours: Vec<&Entry> = entries.iter().filter(|e| e.runs_dispatcher(None)).collect();
    if ours.is_empty() {
        r.error(format!(
            "binfmt-dispatcher is not registered in {} ({} other entries)",
            dir.display(),
            entries.len()
        ));
        return;
    }
    for e in ours {
        let line = format!(
            "registered: {} -> {} (flags: {})",
            e.name, e.interpreter, e.flags
        );
        if !e.enabled {
            r.warn(format!("{line}, disabled"));
        } else if !Path::new(&e.interpreter).exists() {
            if e.flags.contains('F') {
                r.warn(format!(
                    "{line}: the file is gone, but the kernel holds it open (F)"
                ));
            } else {
                r.error(format!("{line}: {} does not exist", e.interpreter));
            }
        } else if !e.flags.contains('P') {
            r.warn(format!(
                "{line}: without P, guests get their path as argv[0]"
            ));
        } else {
            r.ok(line);
        }
    }
}

/// The bundles of the trampoline named, or else of those the enabled
/// entries run: each bundled interpreter against the file at its path,
/// and the entries that run a bundled trampoline without F.
fn check_bundles(r: &mut Report, named: Option<&Path>, dir: &Path) {
    let entries = Instance::open(dir)
        .and_then(|i| i.entries())
        .unwrap_or_default();
    let ours: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.enabled && e.runs_dispatcher(None))
        .collect();
    let mut trampolines: Vec<PathBuf> = match named {
        Some(path) => vec![path.to_path_buf()],
        None => ours.iter().map(|e| PathBuf::from(&e.interpreter)).collect(),
    };
    trampolines.sort();
    trampolines.dedup();
    for trampoline in trampolines {
        // check_registration and the configuration's check said what is
        // wrong with a trampoline that is gone or is none.
        let Ok(image) = fs::read(&trampoline) else {
            continue;
        };
        let Ok(images) = embed::bundled(&image) else {
            continue;
        };
        if images.is_empty() {
            continue;
        }
        check_bundled(r, &trampoline, &images);
        for e in ours
            .iter()
            .filter(|e| Path::new(&e.interpreter) == trampoline)
        {
            if !e.flags.contains('F') {
                r.warn(format!(
                    "registered: {} -> {} (flags: {}): it bundles interpreters, but without F \
                     containers and chroots cannot reach it (register it with F)",
                    e.name, e.interpreter, e.flags
                ));
            }
        }
    }
}

/// Each interpreter `trampoline` bundles against the file at its path.
fn check_bundled(r: &mut Report, trampoline: &Path, images: &[embed::Bundled<'_>]) {
    let t = trampoline.display();
    for b in images {
        let path = b.path.display();
        match fs::read(&b.path) {
            Ok(now) if now == b.bytes => r.ok(format!("{t} bundles {path} (up to date)")),
            Ok(_) => r.error(format!(
                "{t} bundles a stale copy of {path}, which has changed since: run `binfmtctl bundle {t}`"
            )),
            Err(e) => r.warn(format!(
                "{t} bundles {path}, which is not on this host ({e}): the copy is still used"
            )),
        }
    }
}

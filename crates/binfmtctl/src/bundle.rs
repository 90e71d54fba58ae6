//! `binfmtctl bundle`: a copy of the trampoline that carries the host's
//! static-PIE interpreters, for roots that lack them (foreign containers
//! and chroots, docs/decisions.md, "Foreign containers"). The trampoline
//! runs a bundled copy when the interpreter its configuration chose is
//! missing in the root it runs in; registered with F, it is reachable
//! there. The file's layout is `embed`'s; here, which interpreters go in
//! and whether the trampoline can load them.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use binfmt_dispatcher_core::blob::{Blob, BlobError};
use binfmt_dispatcher_core::bundle::plan;
use binfmt_dispatcher_core::decide::{self, Subject};
use binfmt_dispatcher_core::probe::{self, Facts, Format};

use crate::arches;
use crate::binfmt_misc::{self, Instance};
use crate::embed::{self, Bundled};
use crate::files;
use crate::locations::{self, Locations};

/// `binfmtctl bundle` options.
#[derive(clap::Args)]
pub struct Args {
    /// The trampoline to bundle into: a copy of binfmt-dispatcher (one
    /// written by `compile --embed` too), written over or to --output.
    #[arg(
        value_name = "DISPATCHER",
        required_unless_present = "refresh_registered"
    )]
    dispatcher: Option<PathBuf>,
    /// What to bundle, added to what DISPATCHER bundles already: an
    /// architecture of `register --arch` (aarch64, arm, riscv64, s390x,
    /// ...), for the first interpreter of the chain the configuration
    /// picks for its binaries that is installed and a static PIE; or an
    /// interpreter's absolute path. None: bundle every bundled interpreter
    /// again from its path (after an upgrade of it). With --remove: the
    /// paths of bundled interpreters to drop.
    #[arg(value_name = "ARCH|PATH")]
    add: Vec<PathBuf>,
    /// Write the bundled trampoline to FILE instead of over DISPATCHER.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Drop the bundled interpreters named by path, or without any the
    /// whole bundle: the trampoline as `compile --embed` writes it.
    #[arg(long)]
    remove: bool,
    /// Bundle again, in place, every bundled trampoline that enabled
    /// binfmt_misc entries run (for package hooks, after an interpreter's
    /// upgrade). Nothing to do when binfmt_misc is not mounted.
    #[arg(long, conflicts_with_all = ["dispatcher", "add", "output", "remove"])]
    refresh_registered: bool,
    /// The binfmt_misc whose F-flag entries that run the file written are
    /// registered again (with --refresh-registered: whose entries say which
    /// trampolines to refresh).
    #[arg(long, value_name = "DIR", default_value = binfmt_misc::DEFAULT_DIR)]
    binfmt_misc: PathBuf,
}

/// What a run changes in a trampoline's bundle.
#[derive(Clone, Copy)]
enum Change<'a> {
    /// Adds these architectures' interpreters and these paths.
    Add(&'a [PathBuf]),
    /// Reads every bundled interpreter again from its path.
    Refresh,
    /// Drops these interpreters (by path) from the bundle, or all of it.
    Remove(&'a [PathBuf]),
}

/// `e_machine` of the trampolines that have a bundle loader.
const MACHINES: [(u16, &str); 3] = [(62, "x86_64"), (183, "aarch64"), (243, "riscv64")];
const EM_AARCH64: u16 = 183;

/// `binfmtctl bundle`.
pub fn run(loc: &Locations, args: &Args) -> Result<ExitCode, String> {
    if args.refresh_registered {
        return refresh_registered(loc, &args.binfmt_misc);
    }
    let dispatcher = args
        .dispatcher
        .as_deref()
        .ok_or("name the DISPATCHER to bundle into")?;
    let change = match (args.remove, &args.add[..]) {
        (true, paths) => Change::Remove(paths),
        (false, []) => Change::Refresh,
        (false, add) => Change::Add(add),
    };
    let output = args.output.as_deref();
    bundle_into(loc, dispatcher, output, change, &args.binfmt_misc)?;
    Ok(ExitCode::SUCCESS)
}

/// Applies `change` to the trampoline at `dispatcher`, writes the result
/// (over it, or to `output`) and registers again the F entries that run
/// the file written. On any error nothing is written.
fn bundle_into(
    loc: &Locations,
    dispatcher: &Path,
    output: Option<&Path>,
    change: Change<'_>,
    dir: &Path,
) -> Result<(), String> {
    let name = dispatcher.display();
    let image = fs::read(dispatcher).map_err(|e| format!("{name}: {e}"))?;
    let old = embed::bundled(&image).map_err(|e| format!("{name}: {e}"))?;
    let machine = machine_of(&image).map_err(|e| format!("{name}: {e}"))?;
    let read = match change {
        Change::Remove([]) if old.is_empty() && output.is_none() => {
            println!("{name} carries no bundle: nothing to remove");
            return Ok(());
        }
        Change::Remove(_) => Vec::new(),
        Change::Refresh if old.is_empty() => {
            return Err(format!(
            "{name} carries no bundle to refresh: name the architectures or interpreters to bundle"
        ))
        }
        Change::Refresh => reread(&old, machine, dispatcher)?,
        Change::Add(items) => resolve(loc, dispatcher, &image, machine, items)?,
    };
    let images = match change {
        Change::Add(_) => merge(old, &read),
        Change::Remove(paths) => without(old, paths, dispatcher)?,
        Change::Refresh => read.iter().map(as_bundled).collect(),
    };
    let bundled = embed::with_bundle(&image, &images).map_err(|e| format!("{name}: {e}"))?;
    let output = output.unwrap_or(dispatcher);
    if output == dispatcher && bundled == image {
        println!("{name} is up to date");
        return Ok(());
    }
    files::write_atomically_mode(output, &bundled, 0o755)
        .map_err(|e| format!("{}: {e}", output.display()))?;
    say_written(output, &images, bundled.len());
    binfmt_misc::register_again(dir, output)
}

/// What was written, on stdout.
fn say_written(output: &Path, images: &[Bundled<'_>], len: usize) {
    for b in images {
        println!(
            "bundled: {} ({})",
            b.path.display(),
            megabytes(b.bytes.len())
        );
    }
    match images.len() {
        0 => println!("wrote {}: no bundle", output.display()),
        n => println!(
            "wrote {}: {n} interpreter(s) bundled, {}",
            output.display(),
            megabytes(len)
        ),
    }
}

/// `old` without the images bundled from `paths` (all of them when there
/// are none); each must be bundled.
fn without<'a>(
    old: Vec<Bundled<'a>>,
    paths: &[PathBuf],
    dispatcher: &Path,
) -> Result<Vec<Bundled<'a>>, String> {
    if let Some(p) = paths.iter().find(|p| !old.iter().any(|b| b.path == **p)) {
        return Err(format!(
            "{} is not bundled in {} (name a bundled interpreter by its path)",
            p.display(),
            dispatcher.display()
        ));
    }
    let keep = |b: &Bundled<'_>| !paths.is_empty() && !paths.contains(&b.path);
    Ok(old.into_iter().filter(keep).collect())
}

/// The trampoline's machine, which must be one whose runtime loads
/// bundled interpreters.
fn machine_of(image: &[u8]) -> Result<u16, String> {
    let machine = image
        .get(18..20)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .unwrap_or_default();
    match MACHINES.iter().any(|&(m, _)| m == machine) {
        true => Ok(machine),
        false => Err(format!(
            "a trampoline for machine {machine}, which has no bundle loader (x86_64, aarch64 and riscv64 have)"
        )),
    }
}

fn megabytes(len: usize) -> String {
    format!("{:.1} MB", len as f64 / 1e6)
}

fn as_bundled((path, bytes): &(PathBuf, Vec<u8>)) -> Bundled<'_> {
    Bundled {
        path: path.clone(),
        bytes,
    }
}

/// `old` with `new` added; an interpreter already bundled is replaced by
/// its new copy, in its place.
fn merge<'a>(old: Vec<Bundled<'a>>, new: &'a [(PathBuf, Vec<u8>)]) -> Vec<Bundled<'a>> {
    let mut all = old;
    for b in new.iter().map(as_bundled) {
        match all.iter_mut().find(|o| o.path == b.path) {
            Some(o) => *o = b,
            None => all.push(b),
        }
    }
    all
}

/// Every bundled interpreter read again from its path.
fn reread(
    old: &[Bundled<'_>],
    machine: u16,
    dispatcher: &Path,
) -> Result<Vec<(PathBuf, Vec<u8>)>, String> {
    old.iter()
        .map(|b| match fs::read(&b.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(format!(
                "{} bundles {}, which is no longer on this host: install it again, or drop the \
                 bundle (bundle --remove) and bundle what is left",
                dispatcher.display(),
                b.path.display()
            )),
            other => loadable_file(&b.path, other, machine),
        })
        .collect()
}

/// The file at `path`, read (`read`), if the trampoline can load it.
fn loadable_file(
    path: &Path,
    read: io::Result<Vec<u8>>,
    machine: u16,
) -> Result<(PathBuf, Vec<u8>), String> {
    let bytes = read.map_err(|e| format!("{}: {e}", path.display()))?;
    loadable(&bytes, machine)
        .map_err(|why| format!("{} cannot be bundled: {why}", path.display()))?;
    Ok((path.to_path_buf(), bytes))
}

/// Whether the trampoline, for `machine`, can load `image` from its
/// bundle: a static PIE for that machine whose segments move whole with
/// 4 KiB pages, and for an aarch64 trampoline with 16 KiB pages too (Apple
/// silicon's kernels run with them), else it would fail at run time. Not
/// loadable with 64 KiB pages is only a warning: few kernels use them.
fn loadable(image: &[u8], machine: u16) -> Result<(), String> {
    plan(image, machine, 4096).map_err(str::to_string)?;
    if machine != EM_AARCH64 {
        return Ok(());
    }
    plan(image, machine, 16384)
        .map_err(|why| format!("with 16 KiB pages (Apple silicon's kernels): {why}"))?;
    if let Err(why) = plan(image, machine, 65536) {
        eprintln!("binfmtctl: warning: the bundled copy cannot be loaded on kernels with 64 KiB pages: {why}");
    }
    Ok(())
}

/// The interpreters `items` name: absolute paths as they are, and for an
/// architecture the one [`for_arch`] picks.
fn resolve(
    loc: &Locations,
    dispatcher: &Path,
    image: &[u8],
    machine: u16,
    items: &[PathBuf],
) -> Result<Vec<(PathBuf, Vec<u8>)>, String> {
    let mut config = None;
    let mut found = Vec::new();
    for item in items {
        let bytes = item.as_os_str().as_bytes();
        if bytes.starts_with(b"/") {
            found.push(loadable_file(item, fs::read(item), machine)?);
            continue;
        }
        if bytes.contains(&b'/') {
            return Err(format!(
                "{}: name an interpreter by its absolute path (the trampoline finds a bundled one by the path its configuration gives)",
                item.display()
            ));
        }
        if config.is_none() {
            config = Some(configuration(loc, dispatcher, image)?);
        }
        let (config, source) = config.as_ref().expect("read above");
        let blob = Blob::open(config).map_err(|e| format!("{source}: {}", e.describe()))?;
        let arch = item.to_string_lossy();
        found.push(for_arch(&blob, &arch, machine).map_err(|e| format!("{arch}: {e}"))?);
    }
    Ok(found)
}

/// The configuration the trampoline would use, as `check` and `explain`
/// find it, and its description.
fn configuration(
    loc: &Locations,
    dispatcher: &Path,
    image: &[u8],
) -> Result<(Vec<u8>, String), String> {
    let builtin = embed::config_of(image).map_err(|e| format!("{}: {e}", dispatcher.display()))?;
    let effective = locations::effective_with(loc, builtin, Some(dispatcher));
    for (path, why) in &effective.skipped {
        eprintln!("binfmtctl: skipping {}: {why}", path.display());
    }
    Ok((effective.bytes, effective.source.describe()))
}

/// The interpreter to bundle for `arch`'s binaries: of the chain the
/// configuration decides for them, the first installed that the
/// trampoline can load. The others are named with the reason when none is.
fn for_arch(blob: &Blob<'_>, arch: &str, machine: u16) -> Result<(PathBuf, Vec<u8>), String> {
    let a = probe::arch_by_name(arch).ok_or_else(|| {
        let known: Vec<&str> = probe::ARCHES.iter().map(|a| a.name).collect();
        format!("unknown architecture; known: {}", known.join(", "))
    })?;
    refuse_native(arch, machine)?;
    let subject = Subject {
        facts: Facts {
            format: Format::Elf,
            class: a.class,
            endian: a.endian,
            kind: 2, // ET_EXEC
            machine: a.machine,
            flags: a.flags,
            ..Facts::UNKNOWN
        },
        paths: &[],
    };
    let bad = |e: BlobError| format!("the configuration in use is {}", e.describe());
    let decided = decide::decide(blob, &subject, None).map_err(bad)?;
    let plan = decided.ok_or("the configuration has no interpreter for its binaries")?;
    let mut refused = Vec::new();
    for index in blob
        .interpreter(plan.interpreter)
        .map_err(bad)?
        .chain()
        .iter()
    {
        let interpreter = index.and_then(|i| blob.interpreter(i)).map_err(bad)?;
        let path = interpreter.path().map_err(bad)?;
        let path = Path::new(OsStr::from_bytes(path.as_bytes()));
        match fs::read(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                refused.push(format!("{} is not installed", path.display()))
            }
            read => match loadable_file(path, read, machine) {
                Ok(found) => return Ok(found),
                Err(why) => refused.push(why),
            },
        }
    }
    Err(format!(
        "no interpreter the configuration gives its binaries can be bundled: {}",
        refused.join("; ")
    ))
}

/// Refuses an architecture the trampoline's machine runs itself: its
/// programs never reach binfmt_misc (`register` refuses it too).
fn refuse_native(arch: &str, machine: u16) -> Result<(), String> {
    let Some(&(_, name)) = MACHINES.iter().find(|&&(m, _)| m == machine) else {
        return Ok(());
    };
    let host = arches::Host {
        machine: name.to_string(),
        aarch32: false,
    };
    match arches::FORMATS.iter().find(|f| f.name == arch) {
        Some(f) if host.runs(f) => Err(format!(
            "{name} machines, the trampoline's, run {arch} programs themselves: they never reach binfmt_misc"
        )),
        _ => Ok(()),
    }
}

/// `bundle --refresh-registered`: every distinct trampoline that enabled
/// entries run and that carries a bundle, bundled again in place. A
/// failure is said and the others are still refreshed; exit status 1.
fn refresh_registered(loc: &Locations, dir: &Path) -> Result<ExitCode, String> {
    let Ok(inst) = Instance::open(dir) else {
        return Ok(ExitCode::SUCCESS);
    };
    let mut seen = BTreeSet::new();
    let mut failed = false;
    for e in inst.entries()? {
        if !e.enabled || !e.runs_dispatcher(None) || !seen.insert(e.interpreter.clone()) {
            continue;
        }
        let path = Path::new(&e.interpreter);
        // Gone (the kernel may hold it open: F) or not a trampoline: not
        // ours to refresh.
        let Ok(image) = fs::read(path) else { continue };
        if embed::bundled(&image).map_or(true, |b| b.is_empty()) {
            continue;
        }
        if let Err(why) = bundle_into(loc, path, None, Change::Refresh, dir) {
            eprintln!("binfmtctl: {why}");
            failed = true;
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

//! Where the configuration layers and the caches are, under an optional
//! root, and which cache the trampoline would use.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use binfmt_dispatcher_core::blob::Blob;
use binfmt_dispatcher_core::paths;

/// The default configuration baked into the trampoline, the very same
/// bytes (build.rs writes them once for every target of the package).
pub static BAKED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/baked.blob"));

/// The system's paths, below `root` (`/` normally; `--root DIR` for
/// images and tests), and the user's, from the environment.
pub struct Locations {
    root: PathBuf,
}

impl Locations {
    /// The locations below `root`, or `/`.
    pub fn new(root: Option<PathBuf>) -> Locations {
        Locations {
            root: root.unwrap_or_else(|| PathBuf::from("/")),
        }
    }

    fn under(&self, absolute: impl AsRef<OsStr>) -> PathBuf {
        let p = absolute.as_ref().as_bytes();
        let relative = p.strip_prefix(b"/").unwrap_or(p);
        self.root.join(OsStr::from_bytes(relative))
    }

    /// `/usr/lib/binfmt-dispatcher.d`.
    pub fn vendor_dir(&self) -> PathBuf {
        self.under(paths::VENDOR_DIR)
    }

    /// `/etc/binfmt-dispatcher.toml`.
    pub fn system_config(&self) -> PathBuf {
        self.under(paths::SYSTEM_CONFIG)
    }

    /// `/var/cache/binfmt-dispatcher/binfmt-dispatcher.cache`.
    pub fn system_cache(&self) -> PathBuf {
        self.under(OsStr::from_bytes(paths::SYSTEM_CACHE.to_bytes()))
    }

    /// The vendor fragments, in lexical order, then the administrator's
    /// file: those that exist.
    pub fn system_layers(&self) -> io::Result<Vec<PathBuf>> {
        let mut layers = Vec::new();
        match fs::read_dir(self.vendor_dir()) {
            Ok(entries) => {
                let mut names: Vec<OsString> = Vec::new();
                for e in entries {
                    let e = e?;
                    let name = e.file_name();
                    let b = name.as_bytes();
                    if b.ends_with(b".toml") && !b.starts_with(b".") && e.path().is_file() {
                        names.push(name);
                    }
                }
                names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
                layers.extend(names.iter().map(|n| self.vendor_dir().join(n)));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("{}: {e}", self.vendor_dir().display()),
                ))
            }
        }
        let etc = self.system_config();
        if etc.is_file() {
            layers.push(etc);
        }
        Ok(layers)
    }
}

/// An absolute `$VAR`, else `$HOME/fallback`.
fn xdg(var: &str, fallback: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(v) if v.as_bytes().starts_with(b"/") => Some(PathBuf::from(v)),
        _ => {
            let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
            Some(Path::new(&home).join(fallback))
        }
    }
}

/// `$XDG_CONFIG_HOME/binfmt-dispatcher/binfmt-dispatcher.toml`.
pub fn user_config() -> Option<PathBuf> {
    Some(xdg("XDG_CONFIG_HOME", ".config")?.join(paths::USER_CONFIG))
}

/// `$XDG_CACHE_HOME/binfmt-dispatcher/binfmt-dispatcher.cache`, as the
/// trampoline composes it.
pub fn user_cache() -> Option<PathBuf> {
    Some(xdg("XDG_CACHE_HOME", ".cache")?.join(paths::USER_CACHE))
}

/// Where a configuration came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The file `BINFMT_DISPATCHER_CACHE` names.
    Environment(PathBuf),
    /// The user's cache.
    User(PathBuf),
    /// The system's cache.
    System(PathBuf),
    /// The configuration built into the trampoline.
    BuiltIn,
    /// The system's configuration, embedded in this trampoline by
    /// `compile --embed`.
    Embedded(PathBuf),
}

impl Source {
    /// A short name: environment, user, system, built-in.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Environment(_) => "environment",
            Source::User(_) => "user",
            Source::System(_) => "system",
            Source::BuiltIn => "built-in",
            Source::Embedded(_) => "embedded",
        }
    }

    /// The file, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Source::Environment(p) | Source::User(p) | Source::System(p) | Source::Embedded(p) => {
                Some(p)
            }
            Source::BuiltIn => None,
        }
    }

    /// For messages.
    pub fn describe(&self) -> String {
        match self {
            Source::Environment(p) => format!("{} (from {})", p.display(), paths::ENV_CACHE),
            Source::User(p) => format!("{} (the user's cache)", p.display()),
            Source::System(p) => format!("{} (the system cache)", p.display()),
            Source::BuiltIn => "the built-in configuration".to_string(),
            Source::Embedded(p) => format!(
                "the configuration embedded in {} (compile --embed)",
                p.display()
            ),
        }
    }
}

/// The configuration the trampoline would use, and the caches it would
/// skip on the way with the reason.
pub struct Effective {
    /// Where it comes from.
    pub source: Source,
    /// The blob's bytes.
    pub bytes: Vec<u8>,
    /// Caches that exist (or were named) but cannot be used.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Why a cache file cannot be used, or `Ok(None)` when it does not exist.
pub fn read_cache(path: &Path) -> Result<Option<Vec<u8>>, String> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    Blob::open(&bytes).map_err(|e| e.describe().to_string())?;
    Ok(Some(bytes))
}

/// The trampoline's lookup (not in secure mode): `$BINFMT_DISPATCHER_CACHE`,
/// the user's cache, the system's, the built-in configuration. A missing
/// file is skipped silently but for the one the environment names.
pub fn effective(loc: &Locations) -> Effective {
    effective_with(loc, BAKED, None)
}

/// [`effective`] for the trampoline at `dispatcher` whose built-in
/// configuration is `builtin`: one that `compile --embed` marked as the
/// system's reads no system cache.
pub fn effective_with(loc: &Locations, builtin: &[u8], dispatcher: Option<&Path>) -> Effective {
    let mut skipped = Vec::new();
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os(paths::ENV_CACHE) {
        candidates.push(Source::Environment(PathBuf::from(p)));
    }
    if let Some(p) = user_cache() {
        candidates.push(Source::User(p));
    }
    let embedded = crate::embed::is_embedded(builtin);
    if !embedded {
        candidates.push(Source::System(loc.system_cache()));
    }
    for source in candidates {
        let path = source.path().expect("a file").to_path_buf();
        match read_cache(&path) {
            Ok(Some(bytes)) => {
                return Effective {
                    source,
                    bytes,
                    skipped,
                }
            }
            Ok(None) => {
                if let Source::Environment(_) = source {
                    skipped.push((path, "not found".to_string()));
                }
            }
            Err(why) => skipped.push((path, why)),
        }
    }
    Effective {
        source: match dispatcher {
            Some(p) if embedded => Source::Embedded(p.to_path_buf()),
            _ => Source::BuiltIn,
        },
        bytes: builtin.to_vec(),
        skipped,
    }
}

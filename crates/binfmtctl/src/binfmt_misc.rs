//! Reading and writing a binfmt_misc instance: its entries decoded, one
//! line registered, one entry removed, each failure said plainly.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rustix::io::Errno;

use crate::arches;

/// Where the machine's binfmt_misc is mounted.
pub const DEFAULT_DIR: &str = "/proc/sys/fs/binfmt_misc";

/// One entry, as its file in binfmt_misc describes it.
#[derive(Clone, Debug, Default)]
pub struct Entry {
    /// Its name (the file's).
    pub name: String,
    /// `enabled` or `disabled`.
    pub enabled: bool,
    /// The interpreter's path.
    pub interpreter: String,
    /// The flags letters (P, C, O, F).
    pub flags: String,
    /// Offset of the magic (magic entries).
    pub offset: u32,
    /// The magic's bytes, for magic entries.
    pub magic: Option<Vec<u8>>,
    /// The mask's bytes (absent: all ones).
    pub mask: Option<Vec<u8>>,
    /// The extension, for extension entries.
    pub extension: Option<String>,
}

impl Entry {
    /// Decodes an entry file's text.
    pub fn parse(name: &str, text: &str) -> Entry {
        let mut e = Entry {
            name: name.to_string(),
            ..Entry::default()
        };
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len() / 2)
                .filter_map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
                .collect()
        };
        for line in text.lines() {
            if line == "enabled" {
                e.enabled = true;
            } else if let Some(v) = line.strip_prefix("interpreter ") {
                e.interpreter = v.to_string();
            } else if let Some(v) = line.strip_prefix("flags: ") {
                e.flags = v.to_string();
            } else if let Some(v) = line.strip_prefix("offset ") {
                e.offset = v.trim().parse().unwrap_or(0);
            } else if let Some(v) = line.strip_prefix("magic ") {
                e.magic = Some(hex(v.trim()));
            } else if let Some(v) = line.strip_prefix("mask ") {
                e.mask = Some(hex(v.trim()));
            } else if let Some(v) = line.strip_prefix("extension ") {
                e.extension = Some(v.to_string());
            }
        }
        e
    }

    /// Whether the interpreter is a binfmt-dispatcher (by its file name,
    /// or because it is `interpreter`).
    pub fn runs_dispatcher(&self, interpreter: Option<&str>) -> bool {
        interpreter == Some(self.interpreter.as_str())
            || Path::new(&self.interpreter)
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(arches::DISPATCHER_NAME))
    }

    /// Whether `binfmtctl register` (or the original binfmt-dispatcher's
    /// package, whose x86 names the table took) made it: an entry name of
    /// the table, now or in an earlier release, or FEX's name for the
    /// disabled entry that tells FEX binfmt_misc takes x86 binaries; and
    /// our interpreter.
    pub fn is_ours(&self, interpreter: Option<&str>) -> bool {
        (arches::format_of_entry(&self.name).is_some() || self.is_fex_name())
            && self.runs_dispatcher(interpreter)
    }

    /// Whether it has one of the names FEX looks for.
    pub fn is_fex_name(&self) -> bool {
        arches::FEX_NAMES.iter().any(|(_, name)| *name == self.name)
    }

    /// The line that registers this entry again as it is (but enabled).
    pub fn register_line(&self) -> String {
        match (&self.magic, &self.extension) {
            (Some(magic), _) => format!(
                ":{}:M:{}:{}:{}:{}:{}",
                self.name,
                self.offset,
                arches::escape(magic),
                self.mask.as_deref().map(arches::escape).unwrap_or_default(),
                self.interpreter,
                self.flags
            ),
            (None, extension) => format!(
                ":{}:E::{}::{}:{}",
                self.name,
                extension.as_deref().unwrap_or("").trim_start_matches('.'),
                self.interpreter,
                self.flags
            ),
        }
    }

    /// Magic and mask, for magic entries at offset 0.
    pub fn magic_at_zero(&self) -> Option<(&[u8], &[u8])> {
        match (&self.magic, self.offset) {
            (Some(m), 0) => Some((m, self.mask.as_deref().unwrap_or(&[]))),
            _ => None,
        }
    }
}

/// A mounted binfmt_misc.
pub struct Instance {
    /// Its mount point.
    pub dir: PathBuf,
}

impl Instance {
    /// The instance at `dir`, if binfmt_misc is mounted there.
    pub fn open(dir: &Path) -> Result<Instance, String> {
        if !dir.join("register").exists() {
            let why = if dir.is_dir() {
                format!(
                    "binfmt_misc is not mounted at {d} (systemd mounts it with \
                     proc-sys-fs-binfmt_misc.automount; or: mount -t binfmt_misc binfmt_misc {d})",
                    d = dir.display()
                )
            } else {
                format!(
                    "{} does not exist: is binfmt_misc in this kernel? (modprobe binfmt_misc)",
                    dir.display()
                )
            };
            return Err(why);
        }
        Ok(Instance {
            dir: dir.to_path_buf(),
        })
    }

    /// Whether binfmt_misc as a whole is enabled.
    pub fn enabled(&self) -> bool {
        fs::read_to_string(self.dir.join("status")).is_ok_and(|s| s.trim() == "enabled")
    }

    /// Every entry, sorted by name.
    pub fn entries(&self) -> Result<Vec<Entry>, String> {
        let list = fs::read_dir(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let mut entries = Vec::new();
        for e in list.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name == "status" || name == "register" {
                continue;
            }
            // An entry removed meanwhile is simply gone.
            if let Ok(text) = fs::read_to_string(e.path()) {
                entries.push(Entry::parse(&name, &text));
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Writes one registration line.
    pub fn register(&self, line: &str) -> Result<(), String> {
        let path = self.dir.join("register");
        let mut f = fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| self.write_error(&path, &e))?;
        f.write_all(line.as_bytes()).map_err(|e| {
            match e.raw_os_error().map(Errno::from_raw_os_error) {
                Some(Errno::EXIST) => {
                    format!("{}: an entry of that name exists", path.display())
                }
                Some(Errno::NOENT) => format!(
                    "{}: the kernel cannot open the interpreter of {line:?}",
                    path.display()
                ),
                Some(Errno::INVAL) => {
                    format!("{}: the kernel rejects {line:?}", path.display())
                }
                _ => self.write_error(&path, &e),
            }
        })
    }

    /// Disables the entry `name`: it stays, and matches nothing.
    pub fn disable(&self, name: &str) -> Result<(), String> {
        let path = self.dir.join(name);
        fs::write(&path, "0").map_err(|e| self.write_error(&path, &e))
    }

    /// Removes the entry `name`.
    pub fn remove(&self, name: &str) -> Result<(), String> {
        let path = self.dir.join(name);
        fs::write(&path, "-1").map_err(|e| self.write_error(&path, &e))
    }

    fn write_error(&self, path: &Path, e: &io::Error) -> String {
        match e.kind() {
            io::ErrorKind::PermissionDenied => format!(
                "cannot write {}: {e}: changing binfmt_misc needs root (CAP_SYS_ADMIN in the \
                 user namespace that mounted it); `binfmtctl run` uses a private binfmt_misc \
                 without root",
                path.display()
            ),
            _ => format!("cannot write {}: {e}", path.display()),
        }
    }
}

/// Registers again the enabled binfmt_misc entries that run `written`
/// with the F flag: the kernel opened their interpreter when they were
/// registered and keeps running that file, not the one now at its path.
/// Nothing to do where binfmt_misc is not mounted.
pub fn register_again(dir: &Path, written: &Path) -> Result<(), String> {
    let Ok(inst) = Instance::open(dir) else {
        return Ok(());
    };
    let written = fs::canonicalize(written).map_err(|e| format!("{}: {e}", written.display()))?;
    for e in inst.entries()? {
        if !e.enabled || !e.flags.contains('F') || Path::new(&e.interpreter) != written {
            continue;
        }
        let line = e.register_line();
        inst.remove(&e.name)
            .and_then(|()| inst.register(&line))
            .map_err(|why| {
                format!(
                    "{} is written, but the entry {} (F flag) still runs the previous file: {why}",
                    written.display(),
                    e.name
                )
            })?;
        println!(
            "registered again: {} -> {} ({})",
            e.name, e.interpreter, e.flags
        );
    }
    Ok(())
}

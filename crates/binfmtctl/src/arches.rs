//! The architecture table, data/binfmt-arches.tsv, as binfmt-dispatcher-core
//! compiles it in (`arches::ROWS`): binfmt_misc magic and mask of every QEMU
//! linux-user target (and of the non-ELF formats), and the hosts that run
//! each natively; here, what registering a row means.

use std::fmt::Write as _;
use std::process::{Command, Stdio};

use crate::binfmt_misc::Entry;

/// One row of the table: a format `register` makes an entry for.
pub use binfmt_dispatcher_core::arches::Row as Format;
/// Every row, in the table's order.
pub use binfmt_dispatcher_core::arches::ROWS as FORMATS;

/// Prefix of the binfmt_misc entry names of earlier releases, which named
/// every format's entry `binfmt-dispatcher-NAME`.
const FORMER_ENTRY_PREFIX: &str = "binfmt-dispatcher-";

/// Name of the dispatcher's executable, and the default one.
pub const DISPATCHER_NAME: &str = "binfmt-dispatcher";
/// Where distributions install the dispatcher.
pub const DEFAULT_DISPATCHER: &str = "/usr/bin/binfmt-dispatcher";
/// The flags `register` uses unless told otherwise.
pub const DEFAULT_FLAGS: &str = "POCF";

/// The entries FEX looks for, and the rows they are for: FEX lets the
/// kernel run a guest's `execve` of an x86 program (binfmt_misc brings it
/// back to FEX with its argv[0] and set-id bits) only when both exist
/// (FEX's `QueryInterpreterInstalled`, docs/argv-conventions.md).
pub const FEX_NAMES: [(&str, &str); 2] = [("i386", "FEX-x86"), ("x86_64", "FEX-x86_64")];

/// A row as a binfmt_misc entry.
pub trait Registration {
    /// The binfmt_misc entry name `register` gives it (the table's `entry`).
    fn entry_name(&self) -> &'static str;
    /// The name earlier releases gave its entry, when it was another.
    fn former_entry_name(&self) -> Option<String>;
    /// Whether `name` is its entry's, now or formerly.
    fn names_entry(&self, name: &str) -> bool;
    /// The line written to binfmt_misc's `register` file.
    fn register_line(&self, interpreter: &str, flags: &str) -> String {
        self.register_line_named(self.entry_name(), interpreter, flags)
    }
    /// The same line for an entry named `name`.
    fn register_line_named(&self, name: &str, interpreter: &str, flags: &str) -> String;
    /// The flags its entry takes of `flags`: all of them, but never C for
    /// an entry by extension.
    fn entry_flags(&self, flags: &str) -> String;
    /// The name FEX looks for this format's entry under, if it looks for
    /// one (`FEX_NAMES`).
    fn fex_entry_name(&self) -> Option<&'static str>;
    /// Whether an entry with this magic and mask recognises exactly the
    /// files the entry `register` makes for this format does.
    fn registered_as(&self, magic: &[u8], mask: &[u8]) -> bool;
    /// Whether a file whose first bytes are `magic` under `mask` (as a
    /// binfmt_misc entry has them) is recognised exactly as this format is:
    /// with the entry's mask or with the source's (QEMU's, Debian's).
    fn same_as(&self, magic: &[u8], mask: &[u8]) -> bool;
    /// Whether some file matches both this format's entry and an entry
    /// with this magic and mask (at offset 0): the entry competes with ours.
    fn overlaps(&self, magic: &[u8], mask: &[u8]) -> bool;
    /// Whether the binfmt_misc entry `e` recognises exactly this format's
    /// files: the same magic and mask at offset 0, or the same extension.
    fn recognised_by(&self, e: &Entry) -> bool;
    /// Whether `e` is this format's entry as `register` makes it: the
    /// entry's own mask (not only the source's), or the same extension.
    fn registered_by(&self, e: &Entry) -> bool;
}

impl Registration for Format {
    fn entry_name(&self) -> &'static str {
        self.entry
    }

    fn former_entry_name(&self) -> Option<String> {
        let former = format!("{FORMER_ENTRY_PREFIX}{}", self.name);
        (former != self.entry).then_some(former)
    }

    fn names_entry(&self, name: &str) -> bool {
        name == self.entry || self.former_entry_name().is_some_and(|f| f == name)
    }

    fn register_line_named(&self, name: &str, interpreter: &str, flags: &str) -> String {
        let flags = self.entry_flags(flags);
        if self.extension {
            let extension = self.magic_text;
            return format!(":{name}:E::{extension}::{interpreter}:{flags}");
        }
        format!(
            ":{name}:M::{}:{}:{interpreter}:{flags}",
            self.magic_text, self.entry_mask_text
        )
    }

    fn entry_flags(&self, flags: &str) -> String {
        if self.extension {
            // Never C for an entry by extension: binfmt_misc tries it before
            // binfmt_elf, on whatever file the name ends in `.jar`, so with C
            // any user's symlink x.jar -> /usr/bin/sudo (or any set-id native
            // program) ran that program through the dispatcher, as root,
            // under an emulator. java is never run set-id anyway.
            return flags.chars().filter(|&c| c != 'C').collect();
        }
        flags.to_string()
    }

    fn fex_entry_name(&self) -> Option<&'static str> {
        FEX_NAMES
            .iter()
            .find(|(row, _)| *row == self.name)
            .map(|(_, name)| *name)
    }

    fn registered_as(&self, magic: &[u8], mask: &[u8]) -> bool {
        same_bits(self.magic, self.entry_mask, magic, mask)
    }

    fn same_as(&self, magic: &[u8], mask: &[u8]) -> bool {
        !self.extension
            && (self.registered_as(magic, mask) || same_bits(self.magic, self.mask, magic, mask))
    }

    fn registered_by(&self, e: &Entry) -> bool {
        if self.extension {
            return self.recognised_by(e);
        }
        e.magic_at_zero()
            .is_some_and(|(m, k)| self.registered_as(m, k))
    }

    fn recognised_by(&self, e: &Entry) -> bool {
        match (self.extension, &e.extension) {
            (true, Some(x)) => x.trim_start_matches('.') == self.magic_text,
            (true, None) => false,
            (false, _) => e.magic_at_zero().is_some_and(|(m, k)| self.same_as(m, k)),
        }
    }

    fn overlaps(&self, magic: &[u8], mask: &[u8]) -> bool {
        if self.extension {
            return false; // by name, whatever the bytes
        }
        let n = magic.len().min(self.magic.len());
        (0..n).all(|i| {
            let ours = self.entry_mask.get(i).copied().unwrap_or(0xff);
            let m = mask.get(i).copied().unwrap_or(0xff) & ours;
            magic[i] & m == self.magic[i] & m
        })
    }
}

/// Whether two magics under their masks recognise the same files.
fn same_bits(magic: &[u8], mask: &[u8], other_magic: &[u8], other_mask: &[u8]) -> bool {
    masked(magic, mask) == masked(other_magic, other_mask)
        && ones(mask, magic.len()) == ones(other_mask, other_magic.len())
}

fn ones(mask: &[u8], len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| mask.get(i).copied().unwrap_or(0xff))
        .collect()
}

fn masked(magic: &[u8], mask: &[u8]) -> Vec<u8> {
    magic
        .iter()
        .enumerate()
        .map(|(i, b)| b & mask.get(i).copied().unwrap_or(0xff))
        .collect()
}

/// Every byte as `\xNN`.
pub fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 4);
    for b in bytes {
        let _ = write!(s, "\\x{b:02x}");
    }
    s
}

/// A glob with `*` only.
fn glob(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((head, tail)) => {
            s.len() >= head.len() + tail.len() && s.starts_with(head) && s.ends_with(tail)
        }
    }
}

/// What the host runs natively.
pub struct Host {
    /// `uname -m` (or what `--host` said); empty for none.
    pub machine: String,
    /// Whether its kernel runs AArch32 programs (arm64 only).
    pub aarch32: bool,
}

impl Host {
    /// This machine, or the one `--host` names (`none`: no native formats).
    pub fn detect(named: Option<&str>) -> Host {
        match named {
            Some("none") => Host {
                machine: String::new(),
                aarch32: false,
            },
            Some(m) => {
                let (machine, aarch32) = match m.strip_suffix("+aarch32") {
                    Some(base) => (base.to_string(), true),
                    None => (m.to_string(), false),
                };
                Host { machine, aarch32 }
            }
            None => {
                let machine = rustix::system::uname()
                    .machine()
                    .to_string_lossy()
                    .into_owned();
                let aarch32 = machine.starts_with("aarch64") && runs_aarch32();
                Host { machine, aarch32 }
            }
        }
    }

    /// Whether this host runs `format`'s binaries without help.
    pub fn runs(&self, format: &Format) -> bool {
        !self.machine.is_empty()
            && format
                .native
                .iter()
                .any(|p| match p.strip_suffix("+aarch32") {
                    Some(base) => self.aarch32 && glob(base, &self.machine),
                    None => glob(p, &self.machine),
                })
    }
}

/// Whether the kernel runs 32-bit arm programs: arm64 kernels refuse the
/// PER_LINUX32 personality (EINVAL) when no CPU has AArch32 at EL0 or
/// COMPAT is off. When `setarch` cannot be run, assume it does: better
/// not to register arm than to take native programs from the kernel.
fn runs_aarch32() -> bool {
    Command::new("setarch")
        .args(["linux32", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(true)
}

/// The formats `--arch LIST|all` selects for registration, and those of
/// `all` skipped because the host runs them. `all` means the ELF targets;
/// `pe`, `java` and `jar` are registered only when named. Naming a native one is
/// an error.
pub fn select(
    formats: &[Format],
    list: &str,
    host: &Host,
) -> Result<(Vec<Format>, Vec<String>), String> {
    let mut chosen = Vec::new();
    let mut skipped = Vec::new();
    if list == "all" {
        for f in formats.iter().filter(|f| f.elf) {
            if host.runs(f) {
                skipped.push(f.name.to_string());
            } else {
                chosen.push(*f);
            }
        }
        return Ok((chosen, skipped));
    }
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let Some(f) = formats.iter().find(|f| f.name == name) else {
            let known: Vec<&str> = formats.iter().map(|f| f.name).collect();
            return Err(format!(
                "unknown architecture {name:?}; known: {}, or all",
                known.join(", ")
            ));
        };
        if host.runs(f) {
            return Err(format!(
                "{name}: this host ({}) runs {name} programs itself; binfmt_misc is consulted \
                 before the kernel's ELF loader, so registering it would send every native \
                 {name} program through the dispatcher",
                host.machine
            ));
        }
        if !chosen.iter().any(|c: &Format| c.name == f.name) {
            chosen.push(*f);
        }
    }
    if chosen.is_empty() {
        return Err("--arch names no architecture".into());
    }
    Ok((chosen, skipped))
}

/// The table row an entry's magic and mask are exactly, if any.
pub fn identify<'a>(formats: &'a [Format], magic: &[u8], mask: &[u8]) -> Option<&'a Format> {
    formats.iter().find(|f| f.same_as(magic, mask))
}

/// The format whose entry is named `name`, now or in an earlier release.
pub fn format_of_entry(name: &str) -> Option<&'static Format> {
    FORMATS.iter().find(|f| f.names_entry(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_is_identified_as_itself() {
        assert!(FORMATS.len() > 30);
        for f in FORMATS.iter().filter(|f| !f.extension) {
            assert!(f.same_as(f.magic, f.mask), "{}", f.name);
            assert_eq!(identify(FORMATS, f.magic, f.mask).unwrap().name, f.name);
        }
    }

    #[test]
    fn entry_names_now_and_before() {
        let name_of = |entry: &str| format_of_entry(entry).map(|f| f.name);
        assert_eq!(name_of("binfmt-dispatcher-x86"), Some("i386"));
        assert_eq!(name_of("binfmt-dispatcher-i386"), Some("i386"));
        assert_eq!(name_of("binfmt-dispatcher-x86_64"), Some("x86_64"));
        assert_eq!(name_of("binfmt-dispatcher-aarch64"), Some("aarch64"));
        assert_eq!(name_of("FEX-x86"), None);
        let i386 = format_of_entry("binfmt-dispatcher-x86").unwrap();
        assert_eq!(
            i386.former_entry_name().as_deref(),
            Some("binfmt-dispatcher-i386")
        );
        let aarch64 = format_of_entry("binfmt-dispatcher-aarch64").unwrap();
        assert_eq!(aarch64.former_entry_name(), None);
        // The original's x86 mask is the entry's, QEMU's still recognised.
        assert!(i386.registered_as(i386.magic, i386.entry_mask));
        assert!(!i386.registered_as(i386.magic, i386.mask));
        assert!(i386.same_as(i386.magic, i386.mask));
        assert!(i386
            .register_line("/d", "POCF")
            .starts_with(":binfmt-dispatcher-x86:M::"));
    }

    #[test]
    fn host_families() {
        let formats = FORMATS;
        let skipped = |m: &str| {
            let host = Host::detect(Some(m));
            let (_, skipped) = select(formats, "all", &host).unwrap();
            skipped
        };
        assert_eq!(skipped("x86_64"), ["i386", "i486", "x86_64"]);
        assert_eq!(skipped("aarch64"), ["aarch64"]);
        assert_eq!(skipped("aarch64+aarch32"), ["arm", "aarch64"]);
        assert_eq!(skipped("armv7l"), ["arm"]);
        assert_eq!(skipped("ppc64le"), ["ppc64le"]);
        assert!(skipped("none").is_empty());
        let host = Host::detect(Some("x86_64"));
        assert!(select(formats, "x86_64", &host).is_err());
        let (pe_java, _) = select(formats, "pe,java", &host).unwrap();
        assert_eq!(
            pe_java[0].register_line("/d", "POCF"),
            ":binfmt-dispatcher-pe:M::MZ::/d:POCF"
        );
        assert_eq!(pe_java[1].magic, b"\xca\xfe\xba\xbe");
        let (jar, _) = select(formats, "jar", &host).unwrap();
        assert_eq!(
            jar[0].register_line("/d", "POCF"),
            ":binfmt-dispatcher-jar:E::jar::/d:POF"
        );
        assert!(!jar[0].same_as(b"jar", b"") && !jar[0].overlaps(b"PK", b""));
        let (all, _) = select(formats, "all", &host).unwrap();
        assert!(all.iter().all(|f| f.elf), "all is the ELF targets");
        assert!(select(formats, "nope", &host).is_err());
        assert_eq!(select(formats, "aarch64,arm", &host).unwrap().0.len(), 2);
    }
}

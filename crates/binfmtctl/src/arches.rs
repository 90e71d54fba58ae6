//! The architecture table, data/binfmt-arches.tsv, as binfmt-dispatcher-core
//! compiles it in (`arches::ROWS`): binfmt_misc magic and mask of every QEMU
//! linux-user target (and of the non-ELF formats), and the hosts that run
//! each natively; here, what registering a row means.

use std::fmt::Write as _;
use std::process::{Command, Stdio};

/// One row of the table: a format `register` makes an entry for.
pub use binfmt_dispatcher_core::arches::Row as Format;
/// Every row, in the table's order.
pub use binfmt_dispatcher_core::arches::ROWS as FORMATS;

/// Prefix of the binfmt_misc entries `binfmtctl register` makes.
pub const ENTRY_PREFIX: &str = "binfmt-dispatcher-";

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

/// The name FEX looks for `format`'s entry under, if it looks for one.
pub fn fex_name(format: &Format) -> Option<&'static str> {
    FEX_NAMES
        .iter()
        .find(|(row, _)| *row == format.name)
        .map(|(_, name)| *name)
}

/// A row as a binfmt_misc entry.
pub trait Registration {
    /// The binfmt_misc entry name `register` gives it.
    fn entry_name(&self) -> String;
    /// The line written to binfmt_misc's `register` file.
    fn register_line(&self, interpreter: &str, flags: &str) -> String {
        self.register_line_named(&self.entry_name(), interpreter, flags)
    }
    /// The same line for an entry named `name`.
    fn register_line_named(&self, name: &str, interpreter: &str, flags: &str) -> String;
    /// Whether a file whose first bytes are `magic` under `mask` (as a
    /// binfmt_misc entry has them) is recognised exactly as this format is.
    fn same_as(&self, magic: &[u8], mask: &[u8]) -> bool;
    /// Whether some file matches both this format and an entry with this
    /// magic and mask (at offset 0): the entry competes with ours.
    fn overlaps(&self, magic: &[u8], mask: &[u8]) -> bool;
}

impl Registration for Format {
    fn entry_name(&self) -> String {
        format!("{ENTRY_PREFIX}{}", self.name)
    }

    fn register_line_named(&self, name: &str, interpreter: &str, flags: &str) -> String {
        format!(
            ":{name}:M::{}:{}:{interpreter}:{flags}",
            self.magic_text, self.mask_text
        )
    }

    fn same_as(&self, magic: &[u8], mask: &[u8]) -> bool {
        masked(self.magic, self.mask) == masked(magic, mask)
            && ones(self.mask, self.magic.len()) == ones(mask, magic.len())
    }

    fn overlaps(&self, magic: &[u8], mask: &[u8]) -> bool {
        let n = magic.len().min(self.magic.len());
        (0..n).all(|i| {
            let m =
                mask.get(i).copied().unwrap_or(0xff) & self.mask.get(i).copied().unwrap_or(0xff);
            magic[i] & m == self.magic[i] & m
        })
    }
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
/// `pe` and `java` are registered only when named. Naming a native one is
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_is_identified_as_itself() {
        assert!(FORMATS.len() > 30);
        for f in FORMATS {
            assert!(f.same_as(f.magic, f.mask), "{}", f.name);
            assert_eq!(identify(FORMATS, f.magic, f.mask).unwrap().name, f.name);
        }
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
        let (all, _) = select(formats, "all", &host).unwrap();
        assert!(all.iter().all(|f| f.elf), "all is the ELF targets");
        assert!(select(formats, "nope", &host).is_err());
        assert_eq!(select(formats, "aarch64,arm", &host).unwrap().0.len(), 2);
    }
}

//! Facts from the first bytes of a binary.
//!
//! The trampoline reads one block from the start of the file ([`HEADER_LEN`]
//! bytes) and everything here works on that block alone: no further reads,
//! every offset bounds-checked, and a malformed header yields fewer facts,
//! never a panic.
//!
//! Formats: ELF, PE (Windows programs and .NET assemblies, after an `MZ`
//! stub), Java class files and Mach-O (thin, and fat/universal, which
//! shares `CAFEBABE` with Java class files), and JARs (zip archives, which
//! binfmt_misc hands over by their `.jar` extension).

/// How many bytes of a binary the dispatcher reads to decide.
///
/// The ELF header, the program headers of an ordinary binary and its
/// `PT_INTERP` string sit in the first KiB; when a rule looks at
/// `PT_INTERP` and it lies further ([`interp_past`]), the dispatcher reads
/// [`HEADER_LEN_MAX`] bytes instead.
pub const HEADER_LEN: usize = 1024;

/// The most the dispatcher reads of a binary's header.
pub const HEADER_LEN_MAX: usize = 4096;

/// The file format a header was recognised as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Nothing this module recognises.
    Unknown = 0,
    /// An ELF object.
    Elf = 1,
    /// A PE image (`MZ` stub, then `PE\0\0`): a Windows program or DLL, or
    /// a .NET assembly.
    Pe = 2,
    /// A Java class file (`CAFEBABE`, then a class file version).
    JavaClass = 3,
    /// A Mach-O object, thin (`FEEDFACE`/`FEEDFACF`, either byte order) or
    /// fat/universal (`CAFEBABE`, then a small architecture count).
    MachO = 4,
    /// A Java archive: a zip archive (`PK\3\4`, a local file header), as an
    /// executable JAR is.
    Jar = 5,
}

impl Format {
    /// The format with the given blob code, if any.
    pub fn from_code(code: u32) -> Option<Format> {
        match code {
            0 => Some(Format::Unknown),
            1 => Some(Format::Elf),
            2 => Some(Format::Pe),
            3 => Some(Format::JavaClass),
            4 => Some(Format::MachO),
            5 => Some(Format::Jar),
            _ => None,
        }
    }

    /// Its name in configuration files.
    pub fn name(self) -> &'static str {
        match self {
            Format::Unknown => "unknown",
            Format::Elf => "elf",
            Format::Pe => "pe",
            Format::JavaClass => "java",
            Format::MachO => "macho",
            Format::Jar => "jar",
        }
    }

    /// Every format with its configuration name.
    pub const NAMES: &'static [(&'static str, Format)] = &[
        ("elf", Format::Elf),
        ("pe", Format::Pe),
        ("java", Format::JavaClass),
        ("macho", Format::MachO),
        ("jar", Format::Jar),
    ];

    /// The format named `name` in configuration files.
    pub fn from_name(name: &str) -> Option<Format> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, f)| f)
    }
}

/// `EI_CLASS` value of 32-bit ELF objects.
pub const ELFCLASS32: u8 = 1;
/// `EI_CLASS` value of 64-bit ELF objects.
pub const ELFCLASS64: u8 = 2;
/// `EI_DATA` value of little-endian ELF objects.
pub const ELFDATA2LSB: u8 = 1;
/// `EI_DATA` value of big-endian ELF objects.
pub const ELFDATA2MSB: u8 = 2;
const PT_INTERP: u32 = 3;

/// What the header tells about a binary.
///
/// Fields that do not apply to its format are zero (`None`, `false`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts<'a> {
    /// The recognised format.
    pub format: Format,
    /// [`ELFCLASS32`] or [`ELFCLASS64`]: ELF `EI_CLASS`; for PE, PE32 or
    /// PE32+ (optional header magic `0x10b` / `0x20b`); for a thin Mach-O,
    /// `FEEDFACE` or `FEEDFACF`.
    pub class: u8,
    /// `EI_DATA`: [`ELFDATA2LSB`] or [`ELFDATA2MSB`].
    pub endian: u8,
    /// `EI_OSABI`.
    pub osabi: u8,
    /// `e_type` (2 executable, 3 shared object, ...).
    pub kind: u16,
    /// `e_machine`.
    pub machine: u16,
    /// `e_flags` (tells MIPS n32 from o32, for one).
    pub flags: u32,
    /// The `PT_INTERP` path without its NUL, when the program has one inside
    /// the header block and it is NUL-terminated.
    pub interp: Option<&'a [u8]>,
    /// PE: the COFF header's `Machine` ([`PE_MACHINES`]).
    pub pe_machine: u16,
    /// PE: the CLR runtime header data directory (index 14) is present and
    /// non-empty: a .NET assembly.
    pub dotnet: bool,
    /// Java class: the class file's major version (45 is Java 1.1, 52 Java
    /// 8, 65 Java 21).
    pub java_major: u16,
    /// Mach-O: the CPU type (`cputype`, e.g. `0x0100000c` arm64); for a fat
    /// binary, its first architecture's.
    pub macho_cpu: u32,
    /// Mach-O: how many architectures a fat (universal) binary holds; 0 for
    /// a thin one.
    pub macho_arches: u32,
}

impl Facts<'_> {
    /// Facts of a file that is not recognised.
    pub const UNKNOWN: Facts<'static> = Facts {
        format: Format::Unknown,
        class: 0,
        endian: 0,
        osabi: 0,
        kind: 0,
        machine: 0,
        flags: 0,
        interp: None,
        pe_machine: 0,
        dotnet: false,
        java_major: 0,
        macho_cpu: 0,
        macho_arches: 0,
    };
}

/// Reads the facts out of the first bytes of a file (at most [`HEADER_LEN`]
/// are looked at; fewer is fine).
pub fn probe(header: &[u8]) -> Facts<'_> {
    let facts = match header.get(..4) {
        Some(b"\x7fELF") => probe_elf(header),
        Some([b'M', b'Z', ..]) => probe_pe(header),
        Some([0xca, 0xfe, 0xba, 0xbe]) => probe_cafebabe(header),
        Some([0xfe, 0xed, 0xfa, 0xce | 0xcf] | [0xce | 0xcf, 0xfa, 0xed, 0xfe]) => {
            probe_macho(header)
        }
        Some(b"PK\x03\x04") => Some(Facts {
            format: Format::Jar,
            ..Facts::UNKNOWN
        }),
        _ => None,
    };
    facts.unwrap_or(Facts::UNKNOWN)
}

/// Fixed-width reads in the byte order of the file.
struct Reader<'a> {
    bytes: &'a [u8],
    big_endian: bool,
}

impl<'a> Reader<'a> {
    fn slice(&self, off: u64, len: u64) -> Option<&'a [u8]> {
        let start = usize::try_from(off).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        self.bytes.get(start..end)
    }

    fn u16(&self, off: u64) -> Option<u16> {
        let b: [u8; 2] = self.slice(off, 2)?.try_into().ok()?;
        Some(if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }

    fn u32(&self, off: u64) -> Option<u32> {
        let b: [u8; 4] = self.slice(off, 4)?.try_into().ok()?;
        Some(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    fn u64(&self, off: u64) -> Option<u64> {
        let b: [u8; 8] = self.slice(off, 8)?.try_into().ok()?;
        Some(if self.big_endian {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        })
    }

    /// A word of the file's class: 4 bytes for ELFCLASS32, 8 for ELFCLASS64.
    fn word(&self, off: u64, wide: bool) -> Option<u64> {
        if wide {
            self.u64(off)
        } else {
            self.u32(off).map(u64::from)
        }
    }
}

fn probe_elf(header: &[u8]) -> Option<Facts<'_>> {
    let class = *header.get(4)?;
    let endian = *header.get(5)?;
    let wide = match class {
        ELFCLASS32 => false,
        ELFCLASS64 => true,
        _ => return None,
    };
    let big_endian = match endian {
        ELFDATA2LSB => false,
        ELFDATA2MSB => true,
        _ => return None,
    };
    let r = Reader {
        bytes: header,
        big_endian,
    };
    // Offsets of the fields that differ between the two classes.
    let (phoff_at, flags_at) = if wide { (32, 48) } else { (28, 36) };
    let mut facts = Facts {
        format: Format::Elf,
        class,
        endian,
        osabi: *header.get(7)?,
        kind: r.u16(16)?,
        machine: r.u16(18)?,
        flags: r.u32(flags_at)?,
        ..Facts::UNKNOWN
    };
    // The program headers are optional facts: a header too short or odd to
    // hold them still has a machine.
    if let InterpLookup::Found(path) = find_interp(&r, header.len() as u64, wide, phoff_at) {
        facts.interp = Some(path);
    }
    Some(facts)
}

/// Where the search for `PT_INTERP` ended.
enum InterpLookup<'a> {
    /// The path, without its NUL.
    Found(&'a [u8]),
    /// There is none, or the program headers are malformed.
    Absent,
    /// The program headers or the path lie past the bytes at hand.
    PastBlock,
}

fn find_interp<'a>(r: &Reader<'a>, len: u64, wide: bool, phoff_at: u64) -> InterpLookup<'a> {
    let lookup = || -> Option<InterpLookup<'a>> {
        let (phentsize_at, phnum_at) = if wide { (54, 56) } else { (42, 44) };
        let phoff = r.word(phoff_at, wide)?;
        let phentsize = u64::from(r.u16(phentsize_at)?);
        let phnum = u64::from(r.u16(phnum_at)?);
        let min_entry = if wide { 56 } else { 32 };
        if phentsize < min_entry {
            return None;
        }
        // Only the entries inside the block can be looked at; this also
        // bounds the loop whatever e_phnum says.
        let available = len.saturating_sub(phoff) / phentsize;
        for i in 0..phnum.min(available) {
            let entry = phoff + i * phentsize;
            if r.u32(entry)? != PT_INTERP {
                continue;
            }
            let (off, size) = if wide {
                (r.u64(entry + 8)?, r.u64(entry + 32)?)
            } else {
                (u64::from(r.u32(entry + 4)?), u64::from(r.u32(entry + 16)?))
            };
            let Some(bytes) = r.slice(off, size) else {
                let past = off
                    .checked_add(size)
                    .is_some_and(|end| end > len && size <= 4096);
                return Some(if past {
                    InterpLookup::PastBlock
                } else {
                    InterpLookup::Absent
                });
            };
            // A plain scan: memchr's run-time CPU dispatch would write to a
            // static, costing the trampoline a copy-on-write page per exec.
            let end = bytes.iter().position(|&b| b == 0)?;
            return Some(InterpLookup::Found(&bytes[..end]));
        }
        Some(if phnum > available && phoff < 65536 {
            InterpLookup::PastBlock
        } else {
            InterpLookup::Absent
        })
    };
    lookup().unwrap_or(InterpLookup::Absent)
}

/// Whether the `PT_INTERP` of this ELF header lies past `header` (its
/// program headers or the path itself), so that a larger read would find
/// it. Cheap enough to call only when a rule looks at `PT_INTERP`.
pub fn interp_past(header: &[u8]) -> bool {
    let wide = header.get(4) == Some(&ELFCLASS64);
    let big_endian = header.get(5) == Some(&ELFDATA2MSB);
    if probe(header).format != Format::Elf {
        return false;
    }
    let r = Reader {
        bytes: header,
        big_endian,
    };
    let phoff_at = if wide { 32 } else { 28 };
    matches!(
        find_interp(&r, header.len() as u64, wide, phoff_at),
        InterpLookup::PastBlock
    )
}

/// Whether a larger read (up to [`HEADER_LEN_MAX`]) would tell more than
/// `header` does: an ELF `PT_INTERP` past the block (asked only when
/// `want_interp`, i.e. some rule looks at it), or a PE header past the
/// block (an `MZ` stub longer than usual). `facts` are `header`'s.
pub fn needs_more(header: &[u8], facts: &Facts<'_>, want_interp: bool) -> bool {
    match facts.format {
        Format::Elf => want_interp && facts.interp.is_none() && interp_past(header),
        Format::Unknown => pe_past(header),
        _ => false,
    }
}

/// The bytes of a PE image that the facts come from, counted from
/// `e_lfanew`: the signature, the COFF header and the optional header up to
/// the end of the CLR data directory of PE32+ (the larger).
const PE_SPAN: u64 = 24 + 112 + 15 * 8;

/// `e_lfanew`, the offset of the PE signature, when `header` starts with an
/// `MZ` stub.
fn pe_offset(header: &[u8]) -> Option<u64> {
    if header.get(..2)? != b"MZ" {
        return None;
    }
    let r = Reader {
        bytes: header,
        big_endian: false,
    };
    Some(u64::from(r.u32(0x3c)?))
}

/// Whether `header` is an `MZ` stub whose PE header lies past it, but
/// within [`HEADER_LEN_MAX`] bytes.
fn pe_past(header: &[u8]) -> bool {
    pe_offset(header).is_some_and(|at| {
        let end = at + PE_SPAN;
        end > header.len() as u64 && at >= 0x40 && end <= HEADER_LEN_MAX as u64
    })
}

/// `IMAGE_NT_OPTIONAL_HDR32_MAGIC`.
const PE32: u16 = 0x10b;
/// `IMAGE_NT_OPTIONAL_HDR64_MAGIC`.
const PE32_PLUS: u16 = 0x20b;
/// Index of the CLR runtime header in the data directories.
const CLR_DIRECTORY: u32 = 14;

fn probe_pe(header: &[u8]) -> Option<Facts<'_>> {
    let r = Reader {
        bytes: header,
        big_endian: false,
    };
    let at = pe_offset(header)?;
    if r.slice(at, 4)? != b"PE\0\0" {
        return None;
    }
    let machine = r.u16(at + 4)?;
    let optional_size = u64::from(r.u16(at + 20)?);
    let opt = at + 24;
    // An image without an optional header (an object file) has no class.
    let magic = if optional_size >= 2 { r.u16(opt)? } else { 0 };
    let (class, count_at, dirs_at) = match magic {
        PE32 => (ELFCLASS32, 92, 96),
        PE32_PLUS => (ELFCLASS64, 108, 112),
        _ => (0, 0, 0),
    };
    let mut facts = Facts {
        format: Format::Pe,
        class,
        pe_machine: machine,
        ..Facts::UNKNOWN
    };
    // The CLR directory must lie inside the optional header, be counted
    // by NumberOfRvaAndSizes, and point somewhere with a size.
    let entry = dirs_at + u64::from(CLR_DIRECTORY) * 8;
    if class != 0 && entry + 8 <= optional_size {
        let count = r.u32(opt + count_at).unwrap_or(0);
        if count > CLR_DIRECTORY {
            let rva = r.u32(opt + entry).unwrap_or(0);
            let size = r.u32(opt + entry + 4).unwrap_or(0);
            facts.dotnet = rva != 0 && size != 0;
        }
    }
    Some(facts)
}

/// Mach-O fat binaries hold few architectures; Java class files have a
/// version there. file(1) draws the line at 20 (its `>4 belong <20`).
const MAX_FAT_ARCHES: u32 = 20;
/// The first Java class file major version (JDK 1.0.2 / 1.1).
const JAVA_FIRST_MAJOR: u16 = 45;

/// `CAFEBABE`: a Java class file or a Mach-O fat binary, told apart as
/// file(1) does by the big-endian word after the magic.
fn probe_cafebabe(header: &[u8]) -> Option<Facts<'_>> {
    let r = Reader {
        bytes: header,
        big_endian: true,
    };
    let word = r.u32(4)?;
    if word == 0 {
        return None;
    }
    if word < MAX_FAT_ARCHES {
        return Some(Facts {
            format: Format::MachO,
            // fat_arch: cputype, cpusubtype, offset, size, align.
            macho_cpu: r.u32(8).unwrap_or(0),
            macho_arches: word,
            ..Facts::UNKNOWN
        });
    }
    let major = r.u16(6)?;
    (major >= JAVA_FIRST_MAJOR).then_some(Facts {
        format: Format::JavaClass,
        java_major: major,
        ..Facts::UNKNOWN
    })
}

/// A thin Mach-O: `FEEDFACE` (32-bit) or `FEEDFACF` (64-bit), stored in
/// the CPU's byte order.
fn probe_macho(header: &[u8]) -> Option<Facts<'_>> {
    let big_endian = header[0] == 0xfe;
    let r = Reader {
        bytes: header,
        big_endian,
    };
    let wide = r.u32(0)? == 0xfeed_facf;
    Some(Facts {
        format: Format::MachO,
        class: if wide { ELFCLASS64 } else { ELFCLASS32 },
        endian: if big_endian { ELFDATA2MSB } else { ELFDATA2LSB },
        macho_cpu: r.u32(4)?,
        ..Facts::UNKNOWN
    })
}

/// Names of PE (COFF) machines, for configuration files and messages.
pub const PE_MACHINES: &[(&str, u16)] = &[
    ("i386", 0x14c),
    ("x86_64", 0x8664),
    ("arm64", 0xaa64),
    ("arm64ec", 0xa641),
    ("arm", 0x1c4),
    ("arm-wince", 0x1c0),
    ("ia64", 0x200),
    ("riscv64", 0x5064),
    ("loongarch64", 0x6264),
];

/// The PE machine number for a name in [`PE_MACHINES`].
pub fn pe_machine_by_name(name: &str) -> Option<u16> {
    PE_MACHINES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, m)| m)
}

/// The name of a PE machine number, if it is in [`PE_MACHINES`].
pub fn pe_machine_name(machine: u16) -> Option<&'static str> {
    PE_MACHINES
        .iter()
        .find(|&&(_, m)| m == machine)
        .map(|&(n, _)| n)
}

/// Names of ELF machines, for configuration files and messages.
///
/// Numbers are `e_machine` values from the ELF gABI and the Linux `elf-em.h`.
pub const MACHINES: &[(&str, u16)] = &[
    ("sparc", 2),
    ("i386", 3),
    ("m68k", 4),
    ("i486", 6),
    ("mips", 8),
    ("hppa", 15),
    ("sparc32plus", 18),
    ("ppc", 20),
    ("ppc64", 21),
    ("s390x", 22),
    ("arm", 40),
    ("sh4", 42),
    ("sparc64", 43),
    ("x86_64", 62),
    ("cris", 76),
    ("or1k", 92),
    ("xtensa", 94),
    ("hexagon", 164),
    ("aarch64", 183),
    ("microblaze", 189),
    ("riscv", 243),
    ("loongarch", 258),
    ("alpha", 0x9026),
    ("microblaze-old", 0xbaab),
];

/// The machine number for a name in [`MACHINES`].
pub fn machine_by_name(name: &str) -> Option<u16> {
    MACHINES.iter().find(|(n, _)| *n == name).map(|&(_, m)| m)
}

/// The name of a machine number, if it is in [`MACHINES`].
pub fn machine_name(machine: u16) -> Option<&'static str> {
    MACHINES
        .iter()
        .find(|&&(_, m)| m == machine)
        .map(|&(n, _)| n)
}

/// A QEMU linux-user target as ELF headers describe it: the values its
/// binfmt_misc magic and mask pin down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arch {
    /// QEMU's name for the target (`qemu-NAME`).
    pub name: &'static str,
    /// `e_machine`.
    pub machine: u16,
    /// `EI_CLASS`.
    pub class: u8,
    /// `EI_DATA`.
    pub endian: u8,
    /// Bits of `e_flags` that tell this target from a sibling (MIPS n32).
    pub flags_mask: u32,
    /// Their required value.
    pub flags: u32,
}

/// The QEMU linux-user targets: the ELF rows of data/binfmt-arches.tsv,
/// their values read off each row's binfmt_misc magic and mask by
/// build.rs (`e_flags` where the mask keeps some of it: MIPS o32 and n32).
pub const ARCHES: &[Arch] = include!(concat!(env!("OUT_DIR"), "/arches.rs"));

/// [`ARCHES`] as the trampoline's messages need it, half the size: each
/// target's header values and where its name lies in [`ARCH_NAMES`].
#[derive(Clone, Copy, Debug)]
struct ArchKey {
    /// [`arch_key`] of the target's `e_machine`, `EI_CLASS` and `EI_DATA`.
    key: u32,
    flags_mask: u32,
    flags: u32,
    name_start: u16,
    name_end: u16,
}

/// `e_machine`, `EI_CLASS` and `EI_DATA` in one word, as build.rs writes
/// them into [`ARCH_KEYS`]: one comparison per target.
fn arch_key(machine: u16, class: u8, endian: u8) -> u32 {
    u32::from(machine) | u32::from(class) << 16 | u32::from(endian) << 24
}

/// The names of [`ARCHES`], one after another.
const ARCH_NAMES: &[u8] = include!(concat!(env!("OUT_DIR"), "/arch_names.rs"));
/// [`ARCHES`] in its order, as [`ArchKey`]s.
const ARCH_KEYS: &[ArchKey] = include!(concat!(env!("OUT_DIR"), "/arch_keys.rs"));

/// The name of [`arch_of`]'s target, from the compact table: the
/// trampoline's copy of the targets (a `kind` in messages) is 16 bytes
/// each instead of [`Arch`]'s 32.
pub fn arch_name_of(facts: &Facts<'_>) -> Option<&'static [u8]> {
    if facts.format != Format::Elf {
        return None;
    }
    let key = arch_key(facts.machine, facts.class, facts.endian);
    let a = ARCH_KEYS
        .iter()
        .find(|a| a.key == key && facts.flags & a.flags_mask == a.flags)?;
    ARCH_NAMES.get(usize::from(a.name_start)..usize::from(a.name_end))
}

/// The target named `name` in [`ARCHES`].
pub fn arch_by_name(name: &str) -> Option<&'static Arch> {
    ARCHES.iter().find(|a| a.name == name)
}

/// The target in [`ARCHES`] an ELF binary with these facts is for.
pub fn arch_of(facts: &Facts<'_>) -> Option<&'static Arch> {
    if facts.format != Format::Elf {
        return None;
    }
    ARCHES.iter().find(|a| {
        a.machine == facts.machine
            && a.class == facts.class
            && a.endian == facts.endian
            && facts.flags & a.flags_mask == a.flags
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// A minimal ELF header with one PT_INTERP program header.
    pub(crate) fn elf(wide: bool, big: bool, machine: u16, interp: Option<&[u8]>) -> Vec<u8> {
        let put16 = |v: &mut Vec<u8>, x: u16| {
            v.extend_from_slice(&if big {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            })
        };
        let put32 = |v: &mut Vec<u8>, x: u32| {
            v.extend_from_slice(&if big {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            })
        };
        let putw = |v: &mut Vec<u8>, x: u64| {
            if wide {
                v.extend_from_slice(&if big {
                    x.to_be_bytes()
                } else {
                    x.to_le_bytes()
                })
            } else {
                put32(v, x as u32)
            }
        };
        let ehsize: u64 = if wide { 64 } else { 52 };
        let phentsize: u64 = if wide { 56 } else { 32 };
        let mut v = Vec::new();
        v.extend_from_slice(b"\x7fELF");
        v.push(if wide { 2 } else { 1 });
        v.push(if big { 2 } else { 1 });
        v.extend_from_slice(&[1, 3, 0, 0, 0, 0, 0, 0, 0, 0]);
        put16(&mut v, 2);
        put16(&mut v, machine);
        put32(&mut v, 1);
        putw(&mut v, 0x1000);
        putw(&mut v, ehsize); // phoff
        putw(&mut v, 0);
        put32(&mut v, 0x1234); // flags
        put16(&mut v, ehsize as u16);
        put16(&mut v, phentsize as u16);
        put16(&mut v, u16::from(interp.is_some()));
        put16(&mut v, 0);
        put16(&mut v, 0);
        put16(&mut v, 0);
        assert_eq!(v.len() as u64, ehsize);
        if let Some(path) = interp {
            let off = ehsize + phentsize;
            put32(&mut v, PT_INTERP);
            if wide {
                put32(&mut v, 4);
                putw(&mut v, off);
                putw(&mut v, 0);
                putw(&mut v, 0);
                putw(&mut v, path.len() as u64 + 1);
                putw(&mut v, path.len() as u64 + 1);
                putw(&mut v, 1);
            } else {
                putw(&mut v, off);
                putw(&mut v, 0);
                putw(&mut v, 0);
                putw(&mut v, path.len() as u64 + 1);
                putw(&mut v, path.len() as u64 + 1);
                put32(&mut v, 4);
                putw(&mut v, 1);
            }
            v.extend_from_slice(path);
            v.push(0);
        }
        v
    }

    #[test]
    fn reads_every_class_and_byte_order() {
        for wide in [false, true] {
            for big in [false, true] {
                let bytes = elf(wide, big, 183, Some(b"/lib/ld-linux-aarch64.so.1"));
                let f = probe(&bytes);
                assert_eq!(f.format, Format::Elf);
                assert_eq!(f.class, if wide { ELFCLASS64 } else { ELFCLASS32 });
                assert_eq!(f.endian, if big { ELFDATA2MSB } else { ELFDATA2LSB });
                assert_eq!(f.machine, 183);
                assert_eq!(f.kind, 2);
                assert_eq!(f.flags, 0x1234);
                assert_eq!(f.interp, Some(&b"/lib/ld-linux-aarch64.so.1"[..]));
            }
        }
    }

    #[test]
    fn static_binaries_have_no_interp() {
        let bytes = elf(true, false, 62, None);
        let f = probe(&bytes);
        assert_eq!((f.format, f.machine, f.interp), (Format::Elf, 62, None));
    }

    #[test]
    fn truncated_headers_give_fewer_facts_not_panics() {
        let full = elf(true, false, 183, Some(b"/lib/ld.so"));
        for len in 0..full.len() {
            let f = probe(&full[..len]);
            if len < 52 {
                assert_eq!(f, Facts::UNKNOWN, "len {len}");
            } else if len < full.len() {
                assert_eq!(f.interp, None, "len {len}");
            }
        }
    }

    #[test]
    fn hostile_program_headers_are_bounded() {
        let mut bytes = elf(true, false, 183, Some(b"/lib/ld.so"));
        // e_phnum = 65535, e_phentsize = 0, e_phoff far past the end.
        bytes[56..58].copy_from_slice(&u16::MAX.to_le_bytes());
        // Only the entries inside the block are read; the first is PT_INTERP.
        assert_eq!(
            probe(&bytes).interp,
            Some(&b"/lib/ld.so"[..]),
            "phnum 65535"
        );
        bytes[54..56].copy_from_slice(&0u16.to_le_bytes());
        assert_eq!(probe(&bytes).machine, 183);
        assert_eq!(probe(&bytes).interp, None, "phentsize 0");
        let mut far = elf(true, false, 183, Some(b"/lib/ld.so"));
        far[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(probe(&far).interp, None, "phoff past EOF");
    }

    #[test]
    fn interp_past_the_block_is_noticed() {
        let mut bytes = elf(true, false, 183, Some(b"/lib/ld-linux-aarch64.so.1"));
        let full = bytes.len();
        assert!(!interp_past(&bytes));
        // The path cut off: a larger read would find it.
        assert!(interp_past(&bytes[..full - 4]));
        assert_eq!(probe(&bytes[..full - 4]).interp, None);
        // The program header table cut off.
        assert!(interp_past(&bytes[..70]));
        // No PT_INTERP at all: nothing to look for.
        let none = elf(true, false, 183, None);
        assert!(!interp_past(&none));
        // Absurd offsets are not worth a read.
        bytes[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(!interp_past(&bytes));
    }

    #[test]
    fn interp_without_nul_is_ignored() {
        let mut bytes = elf(false, false, 40, Some(b"/lib/ld.so"));
        let last = bytes.len() - 1;
        bytes[last] = b'x';
        assert_eq!(probe(&bytes).interp, None);
    }

    /// A PE image header: `MZ` stub with `e_lfanew = at`, COFF header, an
    /// optional header of the given magic with 16 data directories, the
    /// CLR one filled when `dotnet`.
    pub(crate) fn pe(at: usize, machine: u16, magic: u16, dotnet: bool) -> Vec<u8> {
        let mut v = std::vec![0u8; at];
        v[..2].copy_from_slice(b"MZ");
        v[0x3c..0x40].copy_from_slice(&(at as u32).to_le_bytes());
        v.extend_from_slice(b"PE\0\0");
        let (count_at, dirs_at) = if magic == PE32_PLUS {
            (108, 112)
        } else {
            (92, 96)
        };
        let optional_size = dirs_at + 16 * 8;
        let mut coff = [0u8; 20];
        coff[..2].copy_from_slice(&machine.to_le_bytes());
        coff[16..18].copy_from_slice(&(optional_size as u16).to_le_bytes());
        v.extend_from_slice(&coff);
        let mut opt = std::vec![0u8; optional_size];
        opt[..2].copy_from_slice(&magic.to_le_bytes());
        opt[count_at..count_at + 4].copy_from_slice(&16u32.to_le_bytes());
        if dotnet {
            let e = dirs_at + 14 * 8;
            opt[e..e + 4].copy_from_slice(&0x2008u32.to_le_bytes());
            opt[e + 4..e + 8].copy_from_slice(&0x48u32.to_le_bytes());
        }
        v.extend_from_slice(&opt);
        v
    }

    #[test]
    fn pe_machine_class_and_dotnet() {
        for (machine, magic, dotnet, class) in [
            (0x14c, PE32, false, ELFCLASS32),
            (0x14c, PE32, true, ELFCLASS32),
            (0x8664, PE32_PLUS, false, ELFCLASS64),
            (0xaa64, PE32_PLUS, true, ELFCLASS64),
        ] {
            let bytes = pe(0x80, machine, magic, dotnet);
            let f = probe(&bytes);
            assert_eq!(f.format, Format::Pe);
            assert_eq!((f.pe_machine, f.class, f.dotnet), (machine, class, dotnet));
            assert_eq!((f.machine, f.interp), (0, None));
            assert!(!needs_more(&bytes, &f, true));
        }
        // NumberOfRvaAndSizes too small to count the CLR directory.
        let mut bytes = pe(0x80, 0x14c, PE32, true);
        bytes[0x80 + 24 + 92..0x80 + 24 + 96].copy_from_slice(&14u32.to_le_bytes());
        assert!(!probe(&bytes).dotnet);
        // An optional header too short to hold it.
        let mut bytes = pe(0x80, 0x14c, PE32, true);
        bytes[0x80 + 20..0x80 + 22].copy_from_slice(&100u16.to_le_bytes());
        assert_eq!(probe(&bytes).format, Format::Pe);
        assert!(!probe(&bytes).dotnet);
        assert_eq!(pe_machine_by_name("arm64"), Some(0xaa64));
        assert_eq!(pe_machine_name(0x8664), Some("x86_64"));
    }

    #[test]
    fn pe_headers_are_bounds_checked() {
        let full = pe(0x80, 0x8664, PE32_PLUS, true);
        for len in 0..full.len() {
            let f = probe(&full[..len]);
            if len < 0x80 + 26 {
                assert_eq!(f, Facts::UNKNOWN, "len {len}");
            } else {
                assert_eq!(f.format, Format::Pe, "len {len}");
                assert!(!f.dotnet || len >= 0x80 + 24 + 112 + 15 * 8, "len {len}");
            }
        }
        // A DOS program: no PE signature.
        let mut dos = full.clone();
        dos[0x80] = b'X';
        assert_eq!(probe(&dos), Facts::UNKNOWN);
        // e_lfanew far away: not worth a read; just past the block: read more.
        let mut far = full.clone();
        far[0x3c..0x40].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(probe(&far), Facts::UNKNOWN);
        assert!(!needs_more(&far, &probe(&far), true));
        let long_stub = pe(2000, 0x14c, PE32, true);
        let first = &long_stub[..HEADER_LEN];
        assert_eq!(probe(first), Facts::UNKNOWN);
        assert!(needs_more(first, &probe(first), false));
        let all = probe(&long_stub);
        assert!(all.dotnet && all.format == Format::Pe);
        assert!(!needs_more(&long_stub, &all, false));
        // ELF never asks for more unless PT_INTERP is wanted.
        let elf_cut = elf(true, false, 183, Some(b"/lib/ld-linux-aarch64.so.1"));
        let cut = &elf_cut[..elf_cut.len() - 4];
        assert!(!needs_more(cut, &probe(cut), false));
        assert!(needs_more(cut, &probe(cut), true));
    }

    #[test]
    fn java_classes_and_mach_o() {
        // Java 8 class: minor 0, major 52.
        let class = b"\xca\xfe\xba\xbe\x00\x00\x00\x34\x00\x10";
        let f = probe(class);
        assert_eq!((f.format, f.java_major), (Format::JavaClass, 52));
        // Java 1.1 (45.3).
        assert_eq!(
            probe(b"\xca\xfe\xba\xbe\x00\x03\x00\x2d").format,
            Format::JavaClass
        );
        // Universal binary with two architectures, x86_64 first.
        let fat = b"\xca\xfe\xba\xbe\x00\x00\x00\x02\x01\x00\x00\x07\x00\x00\x00\x03";
        let f = probe(fat);
        assert_eq!(f.format, Format::MachO);
        assert_eq!(
            (f.macho_arches, f.macho_cpu, f.java_major),
            (2, 0x0100_0007, 0)
        );
        // 19 architectures is still fat, and neither is a class of major < 45.
        assert_eq!(
            probe(b"\xca\xfe\xba\xbe\x00\x00\x00\x13").format,
            Format::MachO
        );
        assert_eq!(
            probe(b"\xca\xfe\xba\xbe\x00\x00\x00\x2c").format,
            Format::Unknown
        );
        assert_eq!(
            probe(b"\xca\xfe\xba\xbe\x00\x00\x00\x00").format,
            Format::Unknown
        );
        assert_eq!(probe(b"\xca\xfe\xba\xbe\x00\x00").format, Format::Unknown);
        // Thin Mach-O: 64-bit little-endian arm64, 32-bit big-endian ppc.
        let f = probe(b"\xcf\xfa\xed\xfe\x0c\x00\x00\x01\x00\x00\x00\x00");
        assert_eq!(f.format, Format::MachO);
        assert_eq!(
            (f.class, f.endian, f.macho_cpu, f.macho_arches),
            (ELFCLASS64, ELFDATA2LSB, 0x0100_000c, 0)
        );
        let f = probe(b"\xfe\xed\xfa\xce\x00\x00\x00\x12");
        assert_eq!(
            (f.format, f.class, f.endian, f.macho_cpu),
            (Format::MachO, ELFCLASS32, ELFDATA2MSB, 0x12)
        );
        assert_eq!(probe(b"\xfe\xed\xfa\xcf").format, Format::Unknown);
        // A JAR is a zip archive; an empty one (no local header) is not.
        assert_eq!(probe(b"PK\x03\x04\x14\x00").format, Format::Jar);
        assert_eq!(probe(b"PK\x05\x06").format, Format::Unknown);
        for &(name, f) in Format::NAMES {
            assert_eq!(Format::from_name(name), Some(f));
            assert_eq!(f.name(), name);
            assert_eq!(Format::from_code(f as u32), Some(f));
        }
    }

    #[test]
    fn other_magics_are_unknown() {
        assert_eq!(probe(b"MZ\x90\0"), Facts::UNKNOWN);
        assert_eq!(probe(b"\x7fELF\x03\x01"), Facts::UNKNOWN);
        assert_eq!(probe(b""), Facts::UNKNOWN);
    }

    #[test]
    fn arches_are_distinct() {
        for (i, a) in ARCHES.iter().enumerate() {
            assert_eq!(arch_by_name(a.name), Some(a));
            for b in &ARCHES[i + 1..] {
                let same = (a.machine, a.class, a.endian, a.flags)
                    == (b.machine, b.class, b.endian, b.flags);
                assert!(
                    !same,
                    "{} and {} describe the same binaries",
                    a.name, b.name
                );
            }
        }
    }

    /// The compact table names every target as [`ARCHES`] does, and
    /// nothing else.
    #[test]
    fn arch_keys_are_the_arches() {
        assert_eq!(ARCH_KEYS.len(), ARCHES.len());
        for a in ARCHES {
            let facts = Facts {
                format: Format::Elf,
                machine: a.machine,
                class: a.class,
                endian: a.endian,
                flags: a.flags,
                ..Facts::UNKNOWN
            };
            assert_eq!(arch_name_of(&facts), Some(a.name.as_bytes()));
            let name = arch_of(&facts).map(|a| a.name.as_bytes());
            assert_eq!(arch_name_of(&facts), name);
        }
        let unknown = Facts {
            format: Format::Elf,
            machine: 0xffff,
            ..Facts::UNKNOWN
        };
        assert_eq!(arch_name_of(&unknown), None);
        assert_eq!(arch_name_of(&Facts::UNKNOWN), None);
    }

    #[test]
    fn machine_names_round_trip() {
        for &(name, m) in MACHINES {
            assert_eq!(machine_by_name(name), Some(m));
            assert_eq!(machine_name(m), Some(name));
        }
    }
}

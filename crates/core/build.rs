//! Compiles data/binfmt-arches.tsv, the architecture table, into the two
//! arrays made from it: `probe::ARCHES`, the header values of every ELF
//! row (read off its binfmt_misc magic and mask), and `arches::ROWS`, every
//! row as binfmt_misc takes it. One parse makes both, so the entries
//! `binfmtctl register` writes and the targets probe names agree by
//! construction. A malformed table fails the build, naming its line.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let table = manifest.join("../../data/binfmt-arches.tsv");
    println!("cargo:rerun-if-changed={}", table.display());
    let text = std::fs::read_to_string(&table)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", table.display()));
    let rows = parse(&text).unwrap_or_else(|e| panic!("data/binfmt-arches.tsv:{e}"));
    let mut arches = String::from("&[\n");
    let (mut names, mut keys) = (String::new(), String::from("&[\n"));
    for row in rows.iter().filter(|r| r.elf) {
        let elf = elf_values(row)
            .unwrap_or_else(|e| panic!("data/binfmt-arches.tsv:{}: {}: {e}", row.line, row.name));
        arches.push_str(&arch_code(row.name, &elf));
        let start = names.len();
        names.push_str(row.name);
        keys.push_str(&arch_key_code(start..names.len(), &elf));
    }
    arches.push_str("]\n");
    keys.push_str("]\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    write(&out.join("arches.rs"), &arches);
    write(&out.join("arch_names.rs"), &format!("b{names:?}\n"));
    write(&out.join("arch_keys.rs"), &keys);
    write(&out.join("rows.rs"), &rows_code(&rows));
}

fn write(path: &std::path::Path, code: &str) {
    std::fs::write(path, code).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// One row of the table, decoded.
struct Row<'a> {
    /// Its line in the file, for messages.
    line: usize,
    name: &'a str,
    elf: bool,
    /// An extension entry (type E): the magic is the file name extension.
    extension: bool,
    magic_text: &'a str,
    /// Empty for none (`-` in the file).
    mask_text: &'a str,
    magic: Vec<u8>,
    /// As long as the magic, or empty (all ones).
    mask: Vec<u8>,
    native: Vec<&'a str>,
    entry: &'a str,
    /// The entry's mask as written (the mask's for `=`), and its bytes.
    entry_mask_text: &'a str,
    entry_mask: Vec<u8>,
}

/// The table's rows; errors start with the line number.
fn parse(text: &str) -> Result<Vec<Row<'_>>, String> {
    let mut rows: Vec<Row<'_>> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |what: &str| format!("{}: {what}", n + 1);
        let cols: Vec<&str> = line.split('\t').collect();
        let [name, kind, magic_text, mask_text, native, _source, entry, entry_mask_text] = cols[..]
        else {
            return Err(at("expected 8 tab-separated columns"));
        };
        let mask_text = if mask_text == "-" { "" } else { mask_text };
        let entry_mask_text = match entry_mask_text {
            "=" => mask_text,
            "-" => "",
            text => text,
        };
        let magic = unescape(magic_text).map_err(|e| at(&e))?;
        let mask = unescape(mask_text).map_err(|e| at(&e))?;
        let entry_mask = unescape(entry_mask_text).map_err(|e| at(&e))?;
        if [&mask, &entry_mask]
            .iter()
            .any(|m| !m.is_empty() && m.len() != magic.len())
        {
            return Err(at("a mask and the magic differ in length"));
        }
        check_entry_name(entry).map_err(|e| at(&e))?;
        if rows.iter().any(|r| r.entry == entry) {
            return Err(at(&format!("entry {entry} twice")));
        }
        if !matches!(kind, "elf" | "pe" | "java" | "jar") {
            return Err(at(&format!("kind {kind:?} is none of elf, pe, java, jar")));
        }
        if rows.iter().any(|r| r.name == name) {
            return Err(at(&format!("{name} twice")));
        }
        rows.push(Row {
            line: n + 1,
            name,
            elf: kind == "elf",
            extension: kind == "jar",
            magic_text,
            mask_text,
            magic,
            mask,
            native: native.split(',').filter(|p| *p != "-").collect(),
            entry,
            entry_mask_text,
            entry_mask,
        });
    }
    Ok(rows)
}

/// An entry name binfmt_misc takes and a binfmt.d file can be named
/// after: a file name in binfmt_misc's directory, without the register
/// line's `:` separator or a shell's special characters.
fn check_entry_name(entry: &str) -> Result<(), String> {
    let fine = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if entry.is_empty() || !entry.chars().all(fine) || entry.starts_with('.') {
        return Err(format!(
            "entry {entry:?}: letters, digits, - _ . only, not starting with ."
        ));
    }
    if matches!(entry, "register" | "status") {
        return Err(format!("entry {entry:?} is a binfmt_misc control file"));
    }
    Ok(())
}

/// Decodes binfmt_misc's `\xNN` escapes (and `\\`).
fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match rest {
            [b'\\', tail @ ..] => {
                out.push(b'\\');
                rest = tail;
            }
            [b'x', hi, lo, tail @ ..] => {
                let hex = std::str::from_utf8(&[*hi, *lo])
                    .ok()
                    .map(|h| u8::from_str_radix(h, 16));
                let Some(Ok(byte)) = hex else {
                    return Err(format!("bad \\x escape in {s:?}"));
                };
                out.push(byte);
                rest = tail;
            }
            _ => return Err(format!("bad escape in {s:?}")),
        }
    }
    Ok(out)
}

/// What an ELF row's magic and mask pin down, as `probe::Arch` holds it.
struct ElfValues {
    class: u8,
    endian: u8,
    machine: u16,
    flags_mask: u32,
    flags: u32,
}

/// `e_machine`'s offset in both classes.
const MACHINE_AT: usize = 18;

/// Reads an ELF row's header values off its magic and mask. `EI_CLASS`,
/// `EI_DATA` and `e_machine` are the magic's bytes, as the target's
/// binaries have them, whatever bits the mask frees (QEMU's x86 rows free
/// EI_DATA's high bits, Debian's ppc64le row `e_machine`'s high byte).
/// `e_flags` is checked only as far as the mask keeps it: binfmt_misc
/// compares the magic's bytes alone, so past it nothing is kept.
fn elf_values(row: &Row<'_>) -> Result<ElfValues, String> {
    let len = row.magic.len();
    let mask = |i: usize| {
        if i < len {
            row.mask.get(i).copied().unwrap_or(0xff)
        } else {
            0
        }
    };
    let byte = |i: usize| row.magic.get(i).copied().unwrap_or(0);
    let kept = |i: usize| byte(i) & mask(i);
    if !row.magic.starts_with(b"\x7fELF") || len < MACHINE_AT + 2 {
        return Err("the magic of an ELF row runs from \\x7fELF to e_machine".into());
    }
    let (class, endian) = (row.magic[4], row.magic[5]);
    let flags_at = match class {
        1 => 36,
        2 => 48,
        _ => return Err(format!("EI_CLASS {class} is neither 1 nor 2")),
    };
    let big = match endian {
        1 => false,
        2 => true,
        _ => return Err(format!("EI_DATA {endian} is neither 1 nor 2")),
    };
    // A field of `width` bytes at `at`, in the row's byte order.
    let field = |at: usize, width: usize, byte: &dyn Fn(usize) -> u8| {
        let value = |i: usize| u32::from(byte(at + i));
        (0..width).fold(0u32, |acc, i| {
            if big {
                (acc << 8) | value(i)
            } else {
                acc | (value(i) << (8 * i))
            }
        })
    };
    Ok(ElfValues {
        class,
        endian,
        machine: field(MACHINE_AT, 2, &byte) as u16,
        flags_mask: field(flags_at, 4, &mask),
        flags: field(flags_at, 4, &kept),
    })
}

/// One `probe::Arch` element.
fn arch_code(name: &str, elf: &ElfValues) -> String {
    let class = ["", "ELFCLASS32", "ELFCLASS64"][usize::from(elf.class)];
    let endian = ["", "ELFDATA2LSB", "ELFDATA2MSB"][usize::from(elf.endian)];
    format!(
        "    Arch {{ name: {name:?}, machine: {:#06x}, class: {class}, endian: {endian}, \
         flags_mask: {:#x}, flags: {:#x} }},\n",
        elf.machine, elf.flags_mask, elf.flags
    )
}

/// One entry of `probe::ARCH_KEYS`: [`arch_code`]'s values, `e_machine`,
/// `EI_CLASS` and `EI_DATA` in one word (`probe::arch_key`), with where
/// the name lies in `probe::ARCH_NAMES` instead of the name.
fn arch_key_code(name: std::ops::Range<usize>, elf: &ElfValues) -> String {
    let at = |i: usize| u16::try_from(i).expect("the names of ARCHES fit 64 KiB");
    let (name_start, name_end) = (at(name.start), at(name.end));
    let key = u32::from(elf.machine) | u32::from(elf.class) << 16 | u32::from(elf.endian) << 24;
    format!(
        "    ArchKey {{ key: {key:#010x}, flags_mask: {:#x}, flags: {:#x}, \
         name_start: {name_start}, name_end: {name_end} }},\n",
        elf.flags_mask, elf.flags
    )
}

/// The `arches::ROWS` array.
fn rows_code(rows: &[Row<'_>]) -> String {
    let mut code = String::from("&[\n");
    for row in rows {
        let _ = writeln!(
            code,
            "    Row {{ name: {:?}, elf: {}, extension: {}, magic_text: {:?}, mask_text: {:?}, \
             magic: {}, mask: {}, native: &{:?}, entry: {:?}, entry_mask_text: {:?}, \
             entry_mask: {} }},",
            row.name,
            row.elf,
            row.extension,
            row.magic_text,
            row.mask_text,
            byte_string(&row.magic),
            byte_string(&row.mask),
            row.native,
            row.entry,
            row.entry_mask_text,
            byte_string(&row.entry_mask)
        );
    }
    code.push_str("]\n");
    code
}

/// A byte string literal, every byte escaped.
fn byte_string(bytes: &[u8]) -> String {
    let mut s = String::from("b\"");
    for b in bytes {
        let _ = write!(s, "\\x{b:02x}");
    }
    s.push('"');
    s
}

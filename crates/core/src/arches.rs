//! The architecture table, data/binfmt-arches.tsv, as build.rs compiled it:
//! the binfmt_misc magic and mask of every QEMU linux-user target and of
//! the non-ELF formats, and the hosts that run each natively. binfmtctl
//! registers entries from it; [`ARCHES`](crate::probe::ARCHES) is its ELF
//! rows as their headers read, made by the same parse.

/// One row of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    /// QEMU's target name (`qemu-NAME`), or `pe`, `java`, `jar`.
    pub name: &'static str,
    /// Whether it is an ELF target; the others (`pe`, `java`, `jar`) are
    /// formats that Wine's and Java's packages register themselves.
    pub elf: bool,
    /// Whether binfmt_misc recognises it by file name extension (type
    /// `E`, `jar`): the magic is then the extension.
    pub extension: bool,
    /// The magic as the table writes it: binfmt_misc's `\xNN` escapes,
    /// letters and digits as is.
    pub magic_text: &'static str,
    /// The mask as the table writes it, empty for none.
    pub mask_text: &'static str,
    /// The magic's bytes.
    pub magic: &'static [u8],
    /// The mask's bytes, as many as the magic's; empty: all ones.
    pub mask: &'static [u8],
    /// `uname -m` patterns of hosts that run it natively: `*` matches any
    /// characters; `HOST+aarch32` means HOST when its kernel runs AArch32
    /// programs.
    pub native: &'static [&'static str],
    /// The binfmt_misc entry binfmtctl registers for it.
    pub entry: &'static str,
    /// The mask that entry is registered with, as the table writes it
    /// (the source's, `mask_text`, unless the table gives another).
    pub entry_mask_text: &'static str,
    /// Its bytes, as many as the magic's; empty: all ones.
    pub entry_mask: &'static [u8],
}

/// Every row, in the table's order.
pub static ROWS: &[Row] = include!(concat!(env!("OUT_DIR"), "/rows.rs"));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{self, Format, ARCHES};

    /// The header values build.rs read off each row are the ones probe
    /// reads off a header made of that row's magic.
    #[test]
    fn probe_names_each_rows_magic_after_the_row() {
        let elf_rows: std::vec::Vec<&Row> = ROWS.iter().filter(|r| r.elf).collect();
        assert_eq!(elf_rows.len(), ARCHES.len());
        for row in elf_rows {
            let mut header = [0u8; 64];
            header[..row.magic.len()].copy_from_slice(row.magic);
            let facts = probe::probe(&header);
            assert_eq!(facts.format, Format::Elf, "{}", row.name);
            let arch = probe::arch_of(&facts).map(|a| a.name);
            assert_eq!(arch, Some(row.name), "{}", row.name);
        }
    }

    #[test]
    fn rows_are_decoded() {
        let by_name = |name| ROWS.iter().find(|r| r.name == name).unwrap();
        let pe = by_name("pe");
        assert_eq!(
            (pe.elf, pe.magic, pe.mask, pe.native),
            (false, &b"MZ"[..], &b""[..], &[][..])
        );
        let cris = by_name("cris");
        assert_eq!(cris.magic[18..20], *b"L\x00", "letters are themselves");
        assert_eq!(cris.magic.len(), cris.mask.len());
        assert_eq!(by_name("arm").native, ["armv*l", "aarch64+aarch32"]);
    }
}

//! Interpreters bundled into a trampoline, for roots that lack them
//! (foreign containers and chroots): the index that ends the trampoline's
//! loaded segment, and the plan by which the trampoline loads one of them,
//! a static PIE, from its own mapping (docs/decisions.md, "Foreign
//! containers").
//!
//! A bundled trampoline's file: the trampoline and its configuration, zero
//! bytes up to the next multiple of [`ALIGN`], each image at a multiple of
//! [`ALIGN`], then the index and the footer. Its one loaded segment covers
//! it all, so the kernel maps every image with the trampoline at no cost
//! until one is used. All numbers little-endian:
//!
//! - index, one record per image ([`record_head`]): `u64` file offset, `u64` length, `u32`
//!   length of the path with its NUL, the path and its NUL, zero bytes up
//!   to a multiple of 8;
//! - footer ([`footer`]), the segment's last [`FOOTER_LEN`] bytes: `u64` where the
//!   bundle starts (the end of the configuration), `u32` number of images,
//!   `u32` length of the index, [`MAGIC`].

/// The footer's last bytes.
pub const MAGIC: [u8; 8] = *b"BFDBNDL1";
/// The footer's length.
pub const FOOTER_LEN: usize = 24;
/// Where images lie in the file: multiples of the largest page size Linux
/// runs with (64 KiB), so that each image's pages can be moved whole on
/// any of them.
pub const ALIGN: usize = 0x10000;
/// The most loadable segments an image may have.
pub const MAX_LOADS: usize = 8;

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn le64(b: &[u8], at: usize) -> Option<usize> {
    let v = u64::from_le_bytes(b.get(at..at.checked_add(8)?)?.try_into().ok()?);
    usize::try_from(v).ok()
}

/// The bundle at the end of a trampoline's segment.
#[derive(Clone, Copy, Debug)]
pub struct Bundle<'a> {
    /// Where the bundle starts: the end of the configuration.
    pub start: usize,
    index: &'a [u8],
    count: u32,
}

/// One bundled image: the host path it was copied from and where it lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Image<'a> {
    /// The interpreter's path on the host, without its NUL.
    pub path: &'a [u8],
    /// Its file offset in the trampoline (a multiple of [`ALIGN`]).
    pub offset: usize,
    /// Its length.
    pub len: usize,
}

impl<'a> Bundle<'a> {
    /// The bundle that ends `segment` (the segment's file bytes, from file
    /// offset 0), if its footer is there and consistent.
    pub fn find(segment: &'a [u8]) -> Option<Bundle<'a>> {
        let footer = segment.len().checked_sub(FOOTER_LEN)?;
        if segment[footer + 16..] != MAGIC {
            return None;
        }
        let start = le64(segment, footer)?;
        let count = le32(segment, footer + 8)?;
        let index_len = le32(segment, footer + 12)? as usize;
        let index_at = footer.checked_sub(index_len)?;
        if start > index_at {
            return None;
        }
        let bundle = Bundle {
            start,
            index: &segment[index_at..footer],
            count,
        };
        // Every record must parse and its image lie between the start and
        // the index.
        let mut n = 0u32;
        let mut at = 0;
        while at < bundle.index.len() {
            let (image, next) = bundle.record(at)?;
            let end = image.offset.checked_add(image.len)?;
            if image.offset < start || end > index_at || image.offset % ALIGN != 0 {
                return None;
            }
            (n, at) = (n + 1, next);
        }
        (n == count).then_some(bundle)
    }

    /// The record at `at` of the index, and where the next one starts.
    fn record(&self, at: usize) -> Option<(Image<'a>, usize)> {
        let offset = le64(self.index, at)?;
        let len = le64(self.index, at + 8)?;
        let path_len = le32(self.index, at + 16)? as usize;
        let path_at = at + 20;
        let path = self.index.get(path_at..path_at.checked_add(path_len)?)?;
        let (&0, path) = path.split_last()? else {
            return None;
        };
        let next = (path_at + path_len).next_multiple_of(8);
        Some((Image { path, offset, len }, next))
    }

    /// The bundled images, in order.
    pub fn images(&self) -> impl Iterator<Item = Image<'a>> + '_ {
        let mut at = 0;
        core::iter::from_fn(move || {
            let (image, next) = self.record(at)?;
            at = next;
            Some(image)
        })
    }

    /// How many images there are.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The image bundled for `path` (with or without its NUL).
    pub fn image_for(&self, path: &[u8]) -> Option<Image<'a>> {
        let path = path.strip_suffix(b"\0").unwrap_or(path);
        self.images().find(|image| image.path == path)
    }
}

/// An index record's fixed part, before its path: the image's offset and
/// length, the length of its path with the NUL.
pub fn record_head(offset: u64, len: u64, path_with_nul: u32) -> [u8; 20] {
    let mut head = [0u8; 20];
    head[..8].copy_from_slice(&offset.to_le_bytes());
    head[8..16].copy_from_slice(&len.to_le_bytes());
    head[16..].copy_from_slice(&path_with_nul.to_le_bytes());
    head
}

/// The footer: where the bundle starts, how many images, how long the
/// index is.
pub fn footer(start: u64, count: u32, index_len: u32) -> [u8; FOOTER_LEN] {
    let mut footer = [0u8; FOOTER_LEN];
    footer[..8].copy_from_slice(&start.to_le_bytes());
    footer[8..12].copy_from_slice(&count.to_le_bytes());
    footer[12..16].copy_from_slice(&index_len.to_le_bytes());
    footer[16..].copy_from_slice(&MAGIC);
    footer
}

/// ELF program header flags.
pub const PF_X: u32 = 1;
/// Writable.
pub const PF_W: u32 = 2;
/// Readable.
pub const PF_R: u32 = 4;

/// One loadable segment of a plan. Offsets in the image and addresses
/// relative to the load base, all multiples of the page size but
/// `zero_from`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// The first file page's offset in the image.
    pub file: usize,
    /// The length of the file pages (never 0).
    pub file_len: usize,
    /// Where they go.
    pub addr: usize,
    /// The first file page is also the previous segment's last: it is
    /// copied, not moved, and the segments are loaded last to first.
    pub copy_first: bool,
    /// `PF_R`, `PF_W`, `PF_X`.
    pub flags: u32,
    /// Where the zero-filled tail starts (writable segments whose memory
    /// is longer than their file bytes), else 0: from there to the end of
    /// its page is cleared, as the kernel clears it.
    pub zero_from: usize,
    /// Anonymous zero pages past the file pages: start and length.
    pub anon: (usize, usize),
}

/// How to load a static PIE: reserve `span` bytes, put each segment at the
/// base plus its address, then enter at the base plus `entry` with
/// `AT_PHDR` the base plus `phdr`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadPlan {
    /// The image's extent in memory.
    pub span: usize,
    /// The entry point.
    pub entry: usize,
    /// Where the program headers are in memory.
    pub phdr: usize,
    /// How many program headers there are.
    pub phnum: usize,
    /// The loadable segments, in address order.
    pub segments: [Segment; MAX_LOADS],
    /// How many of `segments` are used.
    pub count: usize,
}

/// Why an image cannot be loaded.
pub type Refusal = &'static str;

const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PT_PHDR: u32 = 6;
const ET_DYN: u16 = 3;
const PHENT: usize = 56;

/// A program header's fields that a load needs.
#[derive(Clone, Copy)]
struct Phdr {
    kind: u32,
    flags: u32,
    offset: usize,
    vaddr: usize,
    filesz: usize,
    memsz: usize,
}

fn phdr_at(image: &[u8], at: usize) -> Option<Phdr> {
    Some(Phdr {
        kind: le32(image, at)?,
        flags: le32(image, at + 4)?,
        offset: le64(image, at + 8)?,
        vaddr: le64(image, at + 16)?,
        filesz: le64(image, at + 32)?,
        memsz: le64(image, at + 40)?,
    })
}

/// Plans the load of `image`, a static PIE for `machine`, with pages of
/// `page` bytes (a power of two).
pub fn plan(image: &[u8], machine: u16, page: usize) -> Result<LoadPlan, Refusal> {
    if !page.is_power_of_two() {
        return Err("the page size is not a power of two");
    }
    if image.get(..6) != Some(b"\x7fELF\x02\x01") {
        return Err("not a 64-bit little-endian ELF file");
    }
    if le16(image, 18) != Some(machine) {
        return Err("built for another machine");
    }
    if le16(image, 16) != Some(ET_DYN) {
        return Err("not a static PIE (ET_DYN)");
    }
    let bad = "its program headers are damaged";
    let phoff = le64(image, 32).ok_or(bad)?;
    let phnum = le16(image, 56).ok_or(bad)? as usize;
    if le16(image, 54) != Some(PHENT as u16) || phnum == 0 {
        return Err(bad);
    }
    let mut plan = LoadPlan {
        phnum,
        ..LoadPlan::default()
    };
    let mut phdr_vaddr = None;
    let mut loads = [None; MAX_LOADS];
    for i in 0..phnum {
        let at = phoff.checked_add(i * PHENT).ok_or(bad)?;
        let ph = phdr_at(image, at).ok_or(bad)?;
        match ph.kind {
            PT_INTERP => return Err("it needs a program interpreter (not static)"),
            PT_PHDR => phdr_vaddr = Some(ph.vaddr),
            PT_LOAD if plan.count == MAX_LOADS => return Err("too many loadable segments"),
            PT_LOAD => {
                loads[plan.count] = Some(ph);
                plan.count += 1;
            }
            _ => {}
        }
    }
    let loads = &loads[..plan.count];
    if loads.is_empty() {
        return Err("it has no loadable segment");
    }
    let first = loads[0].ok_or(bad)?;
    let base = first.vaddr & !(page - 1);
    let mut prev_end: Option<(usize, usize)> = None; // (file end page, memory end)
    for (slot, ph) in plan.segments.iter_mut().zip(loads.iter().flatten()) {
        *slot = segment(image, ph, base, page, prev_end)?;
        let file_end = ph.offset + ph.filesz;
        prev_end = Some((file_end.next_multiple_of(page), ph.vaddr + ph.memsz));
    }
    let (_, end) = prev_end.ok_or(bad)?;
    plan.span = (end - base).next_multiple_of(page);
    let entry = le64(image, 24).ok_or(bad)?;
    plan.entry = entry
        .checked_sub(base)
        .filter(|&e| e < plan.span)
        .ok_or(bad)?;
    plan.phdr = match phdr_vaddr {
        Some(vaddr) => vaddr.checked_sub(base).ok_or(bad)?,
        None => phdrs_in_memory(loads, phoff, phnum, base).ok_or(bad)?,
    };
    Ok(plan)
}

/// One PT_LOAD as a [`Segment`], checked against the one before it
/// (`prev`: the page after its file bytes and its memory end).
fn segment(
    image: &[u8],
    ph: &Phdr,
    base: usize,
    page: usize,
    prev: Option<(usize, usize)>,
) -> Result<Segment, Refusal> {
    let mask = page - 1;
    if ph.offset & mask != ph.vaddr & mask {
        return Err("a segment's file offset and address differ within a page");
    }
    let file_end = ph
        .offset
        .checked_add(ph.filesz)
        .filter(|&e| e <= image.len());
    let mem_end = ph.vaddr.checked_add(ph.memsz);
    let (Some(file_end), Some(mem_end)) = (file_end, mem_end) else {
        return Err("a segment lies past the end of the file");
    };
    if ph.filesz > ph.memsz || (ph.memsz > ph.filesz && ph.flags & PF_W == 0) {
        return Err("a segment's sizes are inconsistent");
    }
    let file = ph.offset & !mask;
    if ph.filesz == 0 {
        return Err("a segment has no file bytes");
    }
    let mut copy_first = false;
    if let Some((prev_file_end, prev_mem_end)) = prev {
        // A memory page shared with the segment before would be mapped
        // twice; a file page shared (the usual RELRO layout) is copied.
        if ph.vaddr & !mask < prev_mem_end.next_multiple_of(page) || file + page < prev_file_end {
            return Err("segments share a page in memory, or are out of order");
        }
        copy_first = file < prev_file_end;
    }
    let file_len = file_end.next_multiple_of(page) - file;
    let addr = (ph.vaddr & !mask) - base;
    let anon_start = addr + file_len;
    let anon_end = (mem_end - base).next_multiple_of(page);
    Ok(Segment {
        file,
        file_len,
        addr,
        copy_first,
        flags: ph.flags & (PF_R | PF_W | PF_X),
        zero_from: if ph.memsz > ph.filesz {
            ph.vaddr + ph.filesz - base
        } else {
            0
        },
        anon: (anon_start, anon_end.saturating_sub(anon_start)),
    })
}

/// Where the program headers are in memory when no PT_PHDR says: in the
/// loaded segment whose file bytes hold them.
fn phdrs_in_memory(
    loads: &[Option<Phdr>],
    phoff: usize,
    phnum: usize,
    base: usize,
) -> Option<usize> {
    let end = phoff.checked_add(phnum * PHENT)?;
    loads.iter().flatten().find_map(|ph| {
        (ph.offset <= phoff && end <= ph.offset + ph.filesz)
            .then(|| ph.vaddr + (phoff - ph.offset) - base)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// A static PIE's headers: `loads` as (flags, offset, vaddr, filesz,
    /// memsz), the file as long as the last one's bytes.
    fn elf(machine: u16, kind: u16, loads: &[(u32, usize, usize, usize, usize)]) -> Vec<u8> {
        let end = loads.iter().map(|l| l.1 + l.3).max().unwrap_or(0);
        let mut b = std::vec![0u8; end.max(64 + 56 * loads.len())];
        b[..6].copy_from_slice(b"\x7fELF\x02\x01");
        b[16..18].copy_from_slice(&kind.to_le_bytes());
        b[18..20].copy_from_slice(&machine.to_le_bytes());
        b[24..32].copy_from_slice(&(loads[1].2 as u64 + 0x10).to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&(loads.len() as u16).to_le_bytes());
        for (i, &(flags, offset, vaddr, filesz, memsz)) in loads.iter().enumerate() {
            let at = 64 + 56 * i;
            b[at..at + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
            b[at + 4..at + 8].copy_from_slice(&flags.to_le_bytes());
            for (field, v) in [(8, offset), (16, vaddr), (32, filesz), (40, memsz)] {
                b[at + field..at + field + 8].copy_from_slice(&(v as u64).to_le_bytes());
            }
        }
        b
    }

    /// qemu-aarch64-static 7.2's segments (Debian, x86_64).
    const QEMU: &[(u32, usize, usize, usize, usize)] = &[
        (PF_R, 0, 0, 0x2275c0, 0x2275c0),
        (PF_R | PF_X, 0x228000, 0x228000, 0x47e249, 0x47e249),
        (PF_R, 0x6a7000, 0x6a7000, 0x3aca5b, 0x3aca5b),
        (PF_R | PF_W, 0xa53e18, 0xa54e18, 0x1fd598, 0x222a80),
    ];

    #[test]
    fn plans_qemus_layout() {
        let p = plan(&elf(183, ET_DYN, QEMU), 183, 4096).unwrap();
        assert_eq!(p.count, 4);
        assert_eq!(p.span, 0xc78000);
        assert_eq!((p.entry, p.phdr, p.phnum), (0x228010, 64, 4));
        let rw = p.segments[3];
        assert_eq!(
            (rw.file, rw.file_len, rw.addr),
            (0xa53000, 0x1ff000, 0xa54000)
        );
        assert!(rw.copy_first, "the RELRO page is shared with the R segment");
        assert_eq!(rw.zero_from, 0xc523b0);
        assert_eq!(rw.anon, (0xc53000, 0x25000));
        assert_eq!(rw.flags, PF_R | PF_W);
        assert!(!p.segments[1].copy_first && !p.segments[2].copy_first);
        assert_eq!(p.segments[2].zero_from, 0);
        assert_eq!(p.segments[2].anon.1, 0);
    }

    #[test]
    fn refuses_what_it_cannot_load() {
        let good = elf(183, ET_DYN, QEMU);
        assert_eq!(plan(&good, 62, 4096), Err("built for another machine"));
        assert_eq!(
            plan(&elf(183, 2, QEMU), 183, 4096),
            Err("not a static PIE (ET_DYN)")
        );
        // 64 KiB pages: qemu's x86_64 build is aligned to 4 KiB only.
        assert!(plan(&good, 183, 0x10000).is_err());
        let mut interp = good.clone();
        interp[64..68].copy_from_slice(&PT_INTERP.to_le_bytes());
        assert!(plan(&interp, 183, 4096)
            .unwrap_err()
            .contains("interpreter"));
        let mut overlapping = QEMU.to_vec();
        overlapping[2].2 = 0x600000;
        overlapping[2].1 = 0x600000;
        assert!(plan(&elf(183, ET_DYN, &overlapping), 183, 4096).is_err());
        let mut bss_only_read = QEMU.to_vec();
        bss_only_read[2].4 += 0x1000;
        assert!(plan(&elf(183, ET_DYN, &bss_only_read), 183, 4096).is_err());
        // Every cut and every byte of the headers changed: no panic.
        for len in 0..200 {
            assert!(plan(&good[..len], 183, 4096).is_err());
        }
        for at in 0..64 + 56 * 4 {
            for v in [0u8, 0x7f, 0xff] {
                let mut bad = good.clone();
                bad[at] = v;
                let _ = plan(&bad, 183, 4096);
            }
        }
    }

    /// A segment: `prefix` then a bundle of `images`, as binfmtctl writes it.
    fn bundled(prefix: usize, images: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = std::vec![0xaa; prefix];
        out.resize(prefix.next_multiple_of(ALIGN), 0);
        let mut index = Vec::new();
        for (path, bytes) in images {
            let head = record_head(out.len() as u64, bytes.len() as u64, path.len() as u32 + 1);
            index.extend_from_slice(&head);
            index.extend_from_slice(path);
            index.push(0);
            index.resize(index.len().next_multiple_of(8), 0);
            out.extend_from_slice(bytes);
            out.resize(out.len().next_multiple_of(ALIGN), 0);
        }
        out.extend_from_slice(&index);
        let f = footer(prefix as u64, images.len() as u32, index.len() as u32);
        out.extend_from_slice(&f);
        out
    }

    #[test]
    fn finds_images_by_path() {
        let seg = bundled(1234, &[(b"/usr/bin/a", b"AAAA"), (b"/usr/bin/bee", b"BB")]);
        let b = Bundle::find(&seg).unwrap();
        assert_eq!((b.start, b.count()), (1234, 2));
        let a = b.image_for(b"/usr/bin/a\0").unwrap();
        assert_eq!((a.offset, a.len), (ALIGN, 4));
        assert_eq!(&seg[a.offset..a.offset + a.len], b"AAAA");
        let bee = b.image_for(b"/usr/bin/bee").unwrap();
        assert_eq!(&seg[bee.offset..bee.offset + bee.len], b"BB");
        assert_eq!(b.image_for(b"/usr/bin/b"), None);
        assert_eq!(b.images().count(), 2);
    }

    #[test]
    fn a_damaged_bundle_is_none() {
        let seg = bundled(100, &[(b"/a", b"xyz")]);
        assert!(Bundle::find(&seg[..seg.len() - 1]).is_none());
        assert!(Bundle::find(b"short").is_none());
        for at in seg.len() - 64..seg.len() {
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut bad = seg.clone();
                bad[at] = v;
                if let Some(b) = Bundle::find(&bad) {
                    for image in b.images() {
                        assert!(image.offset + image.len <= bad.len());
                    }
                }
            }
        }
        assert!(Bundle::find(&std::vec![0u8; 100]).is_none());
    }
}

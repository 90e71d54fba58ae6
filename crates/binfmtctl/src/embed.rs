//! `binfmtctl compile --embed`: a copy of the trampoline that carries the
//! system's compiled configuration in place of its built-in one, so that
//! its exec path opens, maps and faults in no cache file (see
//! docs/decisions.md, "An embedded configuration").
//!
//! The trampoline's configuration is the last thing in its loaded segment
//! (src/rt/link.ld), and the trampoline reads it up to that segment's end:
//! replacing it is cutting the file there, appending the new blob and
//! growing the segment by the difference.

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

use binfmt_dispatcher_core::blob::{self, header, Blob, Flags};

use crate::binfmt_misc::Instance;

/// An ELF64 little-endian program header's fields, by offset.
mod ph {
    pub const TYPE: usize = 0;
    pub const OFFSET: usize = 8;
    pub const VADDR: usize = 16;
    pub const FILESZ: usize = 32;
    pub const MEMSZ: usize = 40;
    pub const LEN: usize = 56;
}

const PT_LOAD: u32 = 1;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Where a trampoline's configuration is.
#[derive(Debug)]
struct Embedded {
    /// The blob's bytes in the file; they end its segment.
    blob: Range<usize>,
    /// The file offset of that segment's program header.
    phdr: usize,
}

/// Finds the configuration in a trampoline's image: a valid blob that ends
/// the last loaded segment, which has no zero-filled tail.
fn find(image: &[u8]) -> Result<Embedded, String> {
    const NOT: &str = "not a binfmt-dispatcher trampoline";
    if image.get(..6) != Some(b"\x7fELF\x02\x01") {
        return Err(format!(
            "{NOT}: not a 64-bit little-endian ELF file (the trampoline is one)"
        ));
    }
    let bad = || format!("{NOT}: its program headers are cut short");
    let phoff = u64_at(image, 32).ok_or_else(bad)? as usize;
    let phentsize = u16_at(image, 54).ok_or_else(bad)? as usize;
    let phnum = u16_at(image, 56).ok_or_else(bad)? as usize;
    // The program headers follow the ELF header; cutting the file at the
    // blob must keep them (and the ELF header) whole.
    if phentsize != ph::LEN || phoff < 64 {
        return Err(bad());
    }
    // The segment whose file bytes come last, and which is last in memory
    // too: growing it moves and overlaps nothing else.
    let mut loads = Vec::new();
    for i in 0..phnum {
        let at = i
            .checked_mul(ph::LEN)
            .and_then(|o| o.checked_add(phoff))
            .filter(|&at| at.saturating_add(ph::LEN) <= image.len())
            .ok_or_else(bad)?;
        if u32_at(image, at + ph::TYPE) != Some(PT_LOAD) {
            continue;
        }
        let offset = u64_at(image, at + ph::OFFSET).ok_or_else(bad)?;
        let filesz = u64_at(image, at + ph::FILESZ).ok_or_else(bad)?;
        let vaddr = u64_at(image, at + ph::VADDR).ok_or_else(bad)?;
        let end = offset.checked_add(filesz).ok_or_else(bad)?;
        loads.push((at, offset, end, vaddr));
    }
    let &(phdr, offset, end, vaddr) = loads
        .iter()
        .max_by_key(|l| l.2)
        .ok_or_else(|| format!("{NOT}: it has no loaded segment"))?;
    if loads.iter().any(|l| l.3 > vaddr) {
        return Err(format!(
            "{NOT}: its last segment in the file is not its last in memory"
        ));
    }
    if end > image.len() as u64
        || u64_at(image, phdr + ph::FILESZ) != u64_at(image, phdr + ph::MEMSZ)
    {
        return Err(format!("{NOT}: its last segment is not all file bytes"));
    }
    let end = end as usize;
    // The blob's header gives its length: the one start it fits is the
    // place where that length reaches the segment's end exactly.
    let start = (0..end.saturating_sub(header::LEN))
        .rev()
        .find(|&s| {
            image[s..s + 8] == blob::MAGIC
                && u32_at(image, s + header::TOTAL_LEN)
                    .is_some_and(|n| s.checked_add(n as usize) == Some(end))
        })
        .ok_or_else(|| format!("{NOT}: no configuration ends its loaded segment"))?;
    if (start as u64) < offset || start < phdr + ph::LEN {
        return Err(format!(
            "{NOT}: its configuration does not lie inside its last segment"
        ));
    }
    Blob::open(&image[start..end])
        .map_err(|e| format!("its built-in configuration is {}", e.describe()))?;
    Ok(Embedded {
        blob: start..end,
        phdr,
    })
}

/// `image` with `config` in place of its configuration. The result carries
/// no section headers (they lay past the segment, and nothing loads them).
pub fn replace(image: &[u8], config: &[u8]) -> Result<Vec<u8>, String> {
    let at = find(image)?;
    let mut out = Vec::with_capacity(at.blob.start + config.len());
    out.extend_from_slice(&image[..at.blob.start]);
    out.extend_from_slice(config);
    let old = u64_at(image, at.phdr + ph::FILESZ).unwrap_or_default();
    let size = old - at.blob.len() as u64 + config.len() as u64;
    for field in [ph::FILESZ, ph::MEMSZ] {
        out[at.phdr + field..at.phdr + field + 8].copy_from_slice(&size.to_le_bytes());
    }
    // e_shoff, e_shnum, e_shstrndx: no section headers.
    out[40..48].fill(0);
    out[60..64].fill(0);
    Ok(out)
}

/// A compiled configuration marked as the system's embedded one.
pub fn mark_embedded(mut config: Vec<u8>) -> Vec<u8> {
    let flags = u32_at(&config, header::FLAGS).unwrap_or_default() | Flags::EMBEDDED;
    config[header::FLAGS..header::FLAGS + 4].copy_from_slice(&flags.to_le_bytes());
    blob::seal(&mut config);
    config
}

/// Whether a configuration is the system's, embedded by `compile --embed`.
pub fn is_embedded(config: &[u8]) -> bool {
    Blob::open(config).is_ok_and(|b| b.is_embedded())
}

/// The configuration embedded in the trampoline at `path`, or `Ok(None)`
/// when there is no such file.
fn read_config(path: &Path) -> Result<Option<Vec<u8>>, String> {
    match fs::read(path) {
        Ok(image) => Ok(Some(config_of(&image)?.to_vec())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// The trampoline that the enabled binfmt_misc entries at `dir` run, when
/// it carries the system's configuration, and that configuration.
fn registered_embedded(dir: &Path) -> Option<(PathBuf, Vec<u8>)> {
    let entries = Instance::open(dir).ok()?.entries().ok()?;
    let mut seen: Vec<&str> = Vec::new();
    entries
        .iter()
        .filter(|e| e.enabled && e.runs_dispatcher(None))
        .filter(|e| {
            let new = !seen.contains(&e.interpreter.as_str());
            seen.push(&e.interpreter);
            new
        })
        .find_map(|e| {
            let path = PathBuf::from(&e.interpreter);
            let config = read_config(&path).ok()??;
            is_embedded(&config).then_some((path, config))
        })
}

/// The trampoline whose built-in configuration `check` and `explain` use,
/// and that configuration: the one `named`, else a registered one (in the
/// binfmt_misc at `dir`) that carries the system's. `None`: binfmtctl's
/// own copy of the built-in configuration.
pub fn trampoline_config(
    named: Option<&Path>,
    dir: &Path,
) -> Result<Option<(PathBuf, Vec<u8>)>, String> {
    let Some(path) = named else {
        return Ok(registered_embedded(dir));
    };
    let config = read_config(path)
        .and_then(|c| c.ok_or_else(|| "no such file".to_string()))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Some((path.to_path_buf(), config)))
}

/// The configuration embedded in a trampoline's image.
pub fn config_of(image: &[u8]) -> Result<&[u8], String> {
    let at = find(image)?;
    Ok(&image[at.blob])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal image: ELF header, one PT_LOAD of the whole file, code,
    /// then `config`.
    fn image(config: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 64 + ph::LEN];
        b[..6].copy_from_slice(b"\x7fELF\x02\x01");
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&(ph::LEN as u16).to_le_bytes());
        b[56..58].copy_from_slice(&1u16.to_le_bytes());
        b[64..68].copy_from_slice(&PT_LOAD.to_le_bytes());
        b[64 + ph::VADDR..64 + ph::VADDR + 8].copy_from_slice(&0x20_0000u64.to_le_bytes());
        b.extend_from_slice(b"code BFMTDISP code");
        b.extend_from_slice(config);
        let len = (b.len() as u64).to_le_bytes();
        b[64 + ph::FILESZ..64 + ph::FILESZ + 8].copy_from_slice(&len);
        b[64 + ph::MEMSZ..64 + ph::MEMSZ + 8].copy_from_slice(&len);
        b
    }

    fn small() -> Vec<u8> {
        crate::locations::BAKED.to_vec()
    }

    #[test]
    fn finds_the_blob_that_ends_the_segment() {
        let img = image(&small());
        let at = find(&img).unwrap();
        assert_eq!(&img[at.blob.clone()], &small()[..]);
    }

    #[test]
    fn replaces_and_grows_the_segment() {
        let img = image(&small());
        let mut bigger = small();
        bigger.extend_from_slice(&[0; 5000]);
        // Not a valid blob: replace takes any bytes; find then refuses.
        let out = replace(&img, &bigger).unwrap();
        assert_eq!(out.len(), img.len() + 5000);
        assert_eq!(u64_at(&out, 64 + ph::FILESZ), Some(out.len() as u64));
        assert_eq!(u64_at(&out, 64 + ph::MEMSZ), Some(out.len() as u64));
        let marked = mark_embedded(small());
        let again = replace(&out, &marked);
        assert!(again.is_err(), "the padded blob does not end the segment");
        let back = replace(&img, &marked).unwrap();
        assert_eq!(config_of(&back).unwrap(), &marked[..]);
        assert!(is_embedded(config_of(&back).unwrap()));
    }

    #[test]
    fn never_panics_on_a_damaged_image() {
        let img = image(&small());
        // Every single-byte change of the ELF and program headers, and a
        // cut at every length up to them and around the blob.
        for at in 0..64 + ph::LEN {
            for value in [0u8, 1, 0x40, 0x7f, 0xff] {
                let mut bad = img.clone();
                bad[at] = value;
                if let Ok(out) = replace(&bad, &small()) {
                    find(&out).unwrap();
                }
            }
        }
        for len in (0..200).chain(img.len() - small().len() - 10..img.len()) {
            assert!(find(&img[..len]).is_err());
        }
    }

    #[test]
    fn refuses_what_is_not_a_trampoline() {
        assert!(find(b"#!/bin/sh\n").unwrap_err().contains("not a 64-bit"));
        let mut img = image(&small());
        let start = img.len() - small().len();
        img[start + header::LOG_LEVEL] ^= 1;
        assert!(find(&img).unwrap_err().contains("configuration is"));
        let img = image(b"no blob here at all, only bytes");
        assert!(find(&img).unwrap_err().contains("no configuration"));
        let mut img = image(&small());
        img[64 + ph::MEMSZ] ^= 0x40;
        assert!(find(&img).unwrap_err().contains("not all file bytes"));
    }
}

//! `binfmtctl compile --embed`: a copy of the trampoline that carries the
//! system's compiled configuration in place of its built-in one, so that
//! its exec path opens, maps and faults in no cache file (see
//! docs/decisions.md, "An embedded configuration").
//!
//! The trampoline's configuration is the last thing in its loaded segment
//! (src/rt/link.ld), and the trampoline reads it up to that segment's end:
//! replacing it is cutting the file there, appending the new blob and
//! growing the segment by the difference.
//!
//! A bundled trampoline (`binfmtctl bundle`) carries interpreters after
//! its configuration, in the same segment, which then ends with the
//! bundle's index and footer (`binfmt_dispatcher_core::bundle`); the
//! footer says where the configuration ends. Whatever changes, the file is
//! laid out again from the end of the configuration: images, index and
//! footer are written anew, as their offsets move with the blob.

use std::ffi::OsStr;
use std::fs;
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use binfmt_dispatcher_core::blob::{self, header, Blob, Flags};
use binfmt_dispatcher_core::bundle::{self, Bundle};

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
    /// The blob's bytes in the file; they end its segment, or the bundle
    /// follows them.
    blob: Range<usize>,
    /// The file offset of that segment's program header.
    phdr: usize,
    /// The segment's file offset.
    offset: usize,
    /// The end of its file bytes: of the bundle if there is one.
    end: usize,
}

/// An interpreter bundled in a trampoline: the host path it was copied
/// from (where the trampoline's configuration names it) and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundled<'a> {
    /// Its absolute path on the host.
    pub path: PathBuf,
    /// The file's bytes.
    pub bytes: &'a [u8],
}

/// Finds the configuration in a trampoline's image: a valid blob that ends
/// the last loaded segment, which has no zero-filled tail, or that the
/// bundle ending the segment starts after.
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
    let config_end = Bundle::find(&image[..end]).map_or(end, |b| b.start);
    let start = blob_ending_at(image, config_end)
        .ok_or_else(|| format!("{NOT}: no configuration ends its loaded segment"))?;
    if (start as u64) < offset || start < phdr + ph::LEN {
        return Err(format!(
            "{NOT}: its configuration does not lie inside its last segment"
        ));
    }
    Blob::open(&image[start..config_end])
        .map_err(|e| format!("its built-in configuration is {}", e.describe()))?;
    Ok(Embedded {
        blob: start..config_end,
        phdr,
        offset: offset as usize,
        end,
    })
}

/// Where the blob that ends at `end` starts: its header gives its length,
/// and the one start it fits is the place where that length reaches `end`
/// exactly.
fn blob_ending_at(image: &[u8], end: usize) -> Option<usize> {
    (0..end.saturating_sub(header::LEN)).rev().find(|&s| {
        image.get(s..s + 8) == Some(&blob::MAGIC[..])
            && u32_at(image, s + header::TOTAL_LEN)
                .is_some_and(|n| s.checked_add(n as usize) == Some(end))
    })
}

/// `image` with `config` in place of its configuration, and the images it
/// bundles, if any, after it. The result carries no section headers (they
/// lay past the segment, and nothing loads them).
pub fn replace(image: &[u8], config: &[u8]) -> Result<Vec<u8>, String> {
    let at = find(image)?;
    let images = bundled_at(image, &at);
    lay_out(image, &at, config, &images)
}

/// `image` bundling exactly `images`, in that order, after its
/// configuration: none removes the bundle, and the configuration ends the
/// segment again. No section headers, as [`replace`].
pub fn with_bundle(image: &[u8], images: &[Bundled<'_>]) -> Result<Vec<u8>, String> {
    let at = find(image)?;
    lay_out(image, &at, &image[at.blob.clone()], images)
}

/// The images a trampoline bundles, in order; none when it carries no
/// bundle.
pub fn bundled(image: &[u8]) -> Result<Vec<Bundled<'_>>, String> {
    let at = find(image)?;
    Ok(bundled_at(image, &at))
}

fn bundled_at<'a>(image: &'a [u8], at: &Embedded) -> Vec<Bundled<'a>> {
    let Some(b) = Bundle::find(&image[..at.end]) else {
        return Vec::new();
    };
    // find checked that every image lies inside the segment.
    b.images()
        .map(|i| Bundled {
            path: PathBuf::from(OsStr::from_bytes(i.path)),
            bytes: &image[i.offset..i.offset + i.len],
        })
        .collect()
}

/// The trampoline up to its configuration, `config`, then a bundle of
/// `images` if there are any; its segment grown or shrunk to end there.
fn lay_out(
    image: &[u8],
    at: &Embedded,
    config: &[u8],
    images: &[Bundled<'_>],
) -> Result<Vec<u8>, String> {
    let total: usize = images.iter().map(|i| i.bytes.len() + bundle::ALIGN).sum();
    let mut out = Vec::with_capacity(at.blob.start + config.len() + total);
    out.extend_from_slice(&image[..at.blob.start]);
    out.extend_from_slice(config);
    if !images.is_empty() {
        append_bundle(&mut out, images)?;
    }
    let size = (out.len() - at.offset) as u64;
    for field in [ph::FILESZ, ph::MEMSZ] {
        out[at.phdr + field..at.phdr + field + 8].copy_from_slice(&size.to_le_bytes());
    }
    // e_shoff, e_shnum, e_shstrndx: no section headers.
    out[40..48].fill(0);
    out[60..64].fill(0);
    Ok(out)
}

/// Appends the bundle of `images` to `out`, which ends with the
/// configuration: each image at the next multiple of `bundle::ALIGN`, the
/// last one padded too (so that no page of an image holds anything else
/// the trampoline reads), then the index and the footer.
fn append_bundle(out: &mut Vec<u8>, images: &[Bundled<'_>]) -> Result<(), String> {
    let start = out.len() as u64;
    let mut index = Vec::new();
    for image in images {
        let path = image.path.as_os_str().as_bytes();
        if !path.starts_with(b"/") || path.contains(&0) {
            return Err(format!(
                "{}: a bundled interpreter's path must be absolute, without NUL",
                image.path.display()
            ));
        }
        let too_long = || format!("{}: the path is too long", image.path.display());
        let with_nul = u32::try_from(path.len() + 1).map_err(|_| too_long())?;
        out.resize(out.len().next_multiple_of(bundle::ALIGN), 0);
        let head = bundle::record_head(out.len() as u64, image.bytes.len() as u64, with_nul);
        index.extend_from_slice(&head);
        index.extend_from_slice(path);
        index.push(0);
        index.resize(index.len().next_multiple_of(8), 0);
        out.extend_from_slice(image.bytes);
    }
    out.resize(out.len().next_multiple_of(bundle::ALIGN), 0);
    let count = u32::try_from(images.len()).map_err(|_| "too many images to bundle")?;
    let index_len = u32::try_from(index.len()).map_err(|_| "the bundle's index is too long")?;
    out.extend_from_slice(&index);
    out.extend_from_slice(&bundle::footer(start, count, index_len));
    Ok(())
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

    fn two() -> [Bundled<'static>; 2] {
        [
            Bundled {
                path: PathBuf::from("/usr/bin/qemu-a"),
                bytes: b"\x7fELF image a",
            },
            Bundled {
                path: PathBuf::from("/opt/qemu-b-static"),
                bytes: &[0xbb; 70_000],
            },
        ]
    }

    #[test]
    fn bundles_images_after_the_configuration() {
        let img = image(&small());
        let out = with_bundle(&img, &two()).unwrap();
        // The segment is the whole file, all file bytes, ending with the
        // footer.
        let size = u64_at(&out, 64 + ph::FILESZ).unwrap();
        assert_eq!(size, out.len() as u64);
        assert_eq!(u64_at(&out, 64 + ph::MEMSZ), Some(size));
        let b = Bundle::find(&out).unwrap();
        assert_eq!(b.start, img.len(), "the bundle starts where the blob ends");
        assert_eq!(b.count(), 2);
        let offsets: Vec<usize> = b.images().map(|i| i.offset).collect();
        let first = img.len().next_multiple_of(bundle::ALIGN);
        assert_eq!(offsets, [first, first + bundle::ALIGN]);
        assert_eq!(config_of(&out).unwrap(), &small()[..]);
        assert_eq!(bundled(&out).unwrap(), two());
        assert!(bundled(&img).unwrap().is_empty());
        // No images: the original layout, byte for byte.
        assert_eq!(with_bundle(&out, &[]).unwrap(), img);
        assert_eq!(with_bundle(&img, &[]).unwrap(), img);
        // Bundled again, fewer: laid out anew.
        let one = with_bundle(&out, &two()[1..]).unwrap();
        assert_eq!(bundled(&one).unwrap(), two()[1..]);
        // One 64 KiB step and one 40-byte index record less.
        assert_eq!(one.len(), out.len() - bundle::ALIGN - 40);
    }

    #[test]
    fn replacing_the_configuration_keeps_the_bundle() {
        let out = with_bundle(&image(&small()), &two()).unwrap();
        let mut toml = String::from("[interpreters.x]\npath = \"/x\"\n");
        for i in 0..300 {
            toml += &format!("[binaries.b{i}]\npath = \"/opt/b{i}\"\ninterpreter = \"x\"\n");
        }
        let config = binfmt_dispatcher_config::Config::parse("t", &toml).unwrap();
        let bigger = mark_embedded(binfmt_dispatcher_config::compile(&config).unwrap());
        assert!(bigger.len() > small().len() + 1000);
        let again = replace(&out, &bigger).unwrap();
        assert_eq!(config_of(&again).unwrap(), &bigger[..]);
        assert_eq!(bundled(&again).unwrap(), two());
        assert_eq!(Bundle::find(&again).unwrap().start, image(&bigger).len());
        assert_eq!(u64_at(&again, 64 + ph::FILESZ), Some(again.len() as u64));
        // And back: the same bytes as before.
        assert_eq!(replace(&again, &small()).unwrap(), out);
    }

    #[test]
    fn refuses_paths_it_cannot_record() {
        let img = image(&small());
        for path in ["qemu", "./qemu", "/a\0b"] {
            let bad = [Bundled {
                path: PathBuf::from(path),
                bytes: b"x",
            }];
            let why = with_bundle(&img, &bad).unwrap_err();
            assert!(why.contains("must be absolute"), "{why}");
        }
    }

    #[test]
    fn never_panics_on_a_damaged_bundle() {
        let out = with_bundle(&image(&small()), &two()).unwrap();
        // Every byte of the index and footer, and of the ELF and program
        // headers, changed; cuts around the footer.
        // (Index and footer: the last 104 bytes.)
        let tail = out.len() - 128..out.len();
        for at in (0..64 + ph::LEN).chain(tail) {
            for value in [0u8, 1, 0xff] {
                let mut bad = out.clone();
                bad[at] = value;
                if let Ok(images) = bundled(&bad) {
                    for i in &images {
                        assert!(i.bytes.len() <= bad.len());
                    }
                    // (A path damaged into a relative one, or one with a
                    // NUL, is refused.)
                    if let Ok(again) = with_bundle(&bad, &images) {
                        assert_eq!(bundled(&again).unwrap(), images);
                    }
                }
                let _ = replace(&bad, &small());
            }
        }
        for len in out.len() - 100..out.len() {
            assert!(find(&out[..len]).is_err());
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

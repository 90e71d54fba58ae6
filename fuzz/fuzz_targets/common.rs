//! Shared by the fuzz targets: making arbitrary bytes into a blob whose
//! checksums hold (so the fuzzer gets past them into the layout), and a
//! full walk over every record of a blob through the bounds-checked reader.

#![allow(dead_code)]

use binfmt_dispatcher_core::blob::{
    self, header, interp, override_bucket, rule, rule_bucket, rule_candidate, Array, Blob, CHUNK,
};

/// Rewrites `bytes` into a blob with a valid magic, version, length, chunk
/// table and checksums, keeping every other byte: the reader's structural
/// checks are then what stands between the bytes and a panic.
pub fn fixup(bytes: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    if b.len() < header::LEN {
        b.resize(header::LEN, 0);
    }
    let len = b.len();
    // The chunk count c satisfies c == ceil((len - 96 - 4c) / CHUNK); grow
    // the blob by a few bytes until one does.
    let count = loop {
        let len = b.len();
        let found = (0..=len / CHUNK + 1).find(|&c| {
            let start = header::LEN + 4 * c;
            start <= len && (len - start).div_ceil(CHUNK) == c
        });
        match found {
            Some(c) => break c,
            None => b.push(0),
        }
    };
    let _ = len;
    let len = b.len();
    b[..8].copy_from_slice(&blob::MAGIC);
    b[header::VERSION..header::VERSION + 4].copy_from_slice(&blob::VERSION.to_le_bytes());
    b[header::TOTAL_LEN..header::TOTAL_LEN + 4].copy_from_slice(&(len as u32).to_le_bytes());
    b[header::CHUNKS..header::CHUNKS + 4].copy_from_slice(&(header::LEN as u32).to_le_bytes());
    b[header::CHUNKS + 4..header::CHUNKS + 8].copy_from_slice(&(count as u32).to_le_bytes());
    blob::seal(&mut b);
    b
}

/// Whether a record of `len` bytes at `at` lies inside the blob: the walk
/// stops at the first that does not, as a reader propagating errors would
/// (the counts are arbitrary, up to 2^32).
fn inside(blob: &Blob<'_>, at: u32, len: usize) -> bool {
    (at as usize).saturating_add(len) <= blob.as_bytes().len()
}

/// How many elements of each array the walk reads: enough to see every
/// layout, few enough that a corrupt count of 2^32 over a 12 KiB blob does
/// not make each input cost milliseconds.
const MAX_ELEMENTS: u32 = 64;

/// Reads every `u32` of an array of them (bounded by the blob: a read past
/// its end stops the walk).
fn u32s(blob: &Blob<'_>, a: Array) -> blob::Result<()> {
    for i in 0..a.count.min(MAX_ELEMENTS) {
        blob.u32(
            a.off
                .checked_add(i.checked_mul(4).ok_or(blob::BlobError::OutOfBounds)?)
                .ok_or(blob::BlobError::OutOfBounds)?,
        )?;
    }
    Ok(())
}

/// Reads every string of an array of `Str`.
fn strs(blob: &Blob<'_>, a: Array) -> blob::Result<()> {
    for i in 0..a.count.min(MAX_ELEMENTS) {
        let at = blob.record(a, i, 8)?;
        let with_nul = blob.c_str(at, 0)?;
        assert_eq!(with_nul.last(), Some(&0));
        assert_eq!(blob.str(at, 0)?.len() + 1, with_nul.len());
    }
    Ok(())
}

/// Walks every record the header points at, every field of each, the way
/// `binfmtctl dump` and the trampoline read them. Errors are data; only a
/// panic is a finding.
pub fn walk_all(blob: &Blob<'_>) {
    let _ = walk_interpreters(blob);
    let _ = walk_rules(blob);
    let _ = walk_rule_index(blob);
    let _ = walk_candidates(blob, blob.header_array(header::RULES_ANY_MACHINE));
    let _ = u32s(blob, blob.header_array(header::RULES_ANY_MACHINE));
    let _ = walk_overrides(blob);
    let _ = blob.c_str(0, header::MUVM);
    let _ = blob.header(header::FLAGS);
    let _ = blob.header(header::LOG_LEVEL);
    let _ = blob.header(header::DEFAULT);
}

fn walk_interpreters(blob: &Blob<'_>) -> blob::Result<()> {
    let all = blob.header_array(header::INTERPRETERS);
    for i in 0..all.count {
        let at = blob.record(all, i, interp::LEN)?;
        if !inside(blob, at, interp::LEN) {
            break;
        }
        for s in [interp::ID, interp::NAME, interp::PATH, interp::INSTALL_HINT] {
            let _ = blob.str(at, s);
        }
        let _ = blob.field(at, interp::ARGV_STYLE);
        let _ = blob.field(at, interp::USE_MUVM);
        if let Ok(chain) = blob.array(at, interp::CHAIN) {
            let _ = u32s(blob, chain);
            if chain.count <= MAX_ELEMENTS {
                let _ = blob.u32s(chain).map(|c| c.count());
            }
        }
        for a in [interp::REQUIRED_PATHS, interp::ENV, interp::TEMPLATE] {
            if let Ok(a) = blob.array(at, a) {
                let _ = strs(blob, a);
            }
        }
    }
    Ok(())
}

fn walk_rules(blob: &Blob<'_>) -> blob::Result<()> {
    let all = blob.header_array(header::RULES);
    for i in 0..all.count {
        let at = blob.record(all, i, rule::LEN)?;
        if !inside(blob, at, rule::LEN) {
            break;
        }
        for f in (0..rule::INTERP_GLOB).step_by(4) {
            let _ = blob.field(at, f);
        }
        let _ = blob.str(at, rule::INTERP_GLOB);
        let _ = blob.str(at, rule::PATH_GLOB);
        if let Ok(r) = blob.record_bytes(at, rule::LEN) {
            let _ = blob.string(r.array(rule::INTERP_GLOB));
            if let Ok(glob) = blob.string(r.array(rule::PATH_GLOB)) {
                let _ = blob::glob_dir(glob);
            }
        }
    }
    Ok(())
}

fn walk_rule_index(blob: &Blob<'_>) -> blob::Result<()> {
    let all = blob.header_array(header::RULE_INDEX);
    for i in 0..all.count {
        let at = blob.record(all, i, rule_bucket::LEN)?;
        if !inside(blob, at, rule_bucket::LEN) {
            break;
        }
        let _ = blob.field(at, rule_bucket::KEY);
        if let Ok(list) = blob.array(at, rule_bucket::RULES) {
            let _ = walk_candidates(blob, list);
        }
    }
    Ok(())
}

/// A list of [`rule_candidate`] records, each read whole.
fn walk_candidates(blob: &Blob<'_>, list: Array) -> blob::Result<()> {
    for i in 0..list.count.min(MAX_ELEMENTS) {
        let at = blob.record(list, i, rule_candidate::LEN)?;
        let r = blob.record_bytes(at, rule_candidate::LEN)?;
        let _ = (r.u32(rule_candidate::RULE), r.u32(rule_candidate::DIR_LEN));
        let _ = r.u32(rule_candidate::DIR_HASH);
    }
    Ok(())
}

fn walk_overrides(blob: &Blob<'_>) -> blob::Result<()> {
    let all = blob.header_array(header::OVERRIDES);
    for i in 0..all.count {
        let at = blob.record(all, i, override_bucket::LEN)?;
        if !inside(blob, at, override_bucket::LEN) {
            break;
        }
        let _ = blob.field(at, override_bucket::HASH);
        let _ = blob.str(at, override_bucket::PATH);
        let _ = blob.field(at, override_bucket::INTERPRETER);
    }
    Ok(())
}

//! Shared by the fuzz targets: making arbitrary bytes into a blob whose
//! checksums hold (so the fuzzer gets past them into the layout), and a
//! full walk over every record of a blob through the bounds-checked reader.

#![allow(dead_code)]

use binfmt_dispatcher_core::blob::{self, header, Array, Blob, RuleCandidate, Str, Table, CHUNK};

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

/// How many elements of each array the walk reads: enough to see every
/// layout, few enough that a corrupt count of 2^32 over a 12 KiB blob does
/// not make each input cost milliseconds. (A table's records are read
/// until the first error, which a record past the blob's end is.)
const MAX_ELEMENTS: usize = 64;

/// A string as the views give it: its NUL last, its bytes before it.
fn check_str(s: Str<'_>) {
    assert_eq!(s.with_nul().last(), Some(&0));
    assert_eq!(s.as_bytes().len() + 1, s.with_nul().len());
    assert_eq!(s.is_empty(), s.as_bytes().is_empty());
}

/// Reads every string of an array of `Str`.
fn strs(table: Table<'_, '_, Str<'_>>) -> blob::Result<()> {
    for s in table.iter().take(MAX_ELEMENTS) {
        check_str(s?);
    }
    Ok(())
}

/// Walks every record the header points at, every field of each, the way
/// `binfmtctl dump` and the trampoline read them, and looks up what the
/// tables hold. Errors are data; only a panic is a finding.
pub fn walk_all(blob: &Blob<'_>) {
    let _ = walk_interpreters(blob);
    let _ = walk_rules(blob);
    let _ = walk_rule_index(blob);
    let _ = walk_candidates(blob, blob.rules_any_machine());
    let _ = walk_overrides(blob);
    let _ = blob.muvm().map(check_str);
    let _ = blob.missing_helper().map(check_str);
    let _ = (blob.flags(), blob.log_level(), blob.default_interpreter());
}

fn walk_interpreters(blob: &Blob<'_>) -> blob::Result<()> {
    for i in blob.interpreters().iter() {
        let i = i?;
        for s in [i.id(), i.name(), i.path(), i.install_hint()] {
            let _ = s.map(check_str);
        }
        let _ = (i.argv_style(), i.argv_style_code(), i.use_muvm());
        for index in i.chain().iter().take(MAX_ELEMENTS) {
            if index.is_err() {
                break;
            }
        }
        for table in [i.required_paths(), i.env(), i.template()] {
            let _ = strs(table);
        }
    }
    Ok(())
}

fn walk_rules(blob: &Blob<'_>) -> blob::Result<()> {
    for r in blob.rules().iter() {
        let r = r?;
        let _ = (r.interpreter(), r.conditions(), r.format(), r.machine());
        let _ = (r.class(), r.endian(), r.osabi(), r.flags(), r.flags_mask());
        let _ = (r.pe_machine(), r.dotnet());
        let _ = r.interp_glob().map(check_str);
        if let Ok(glob) = r.path_glob() {
            check_str(glob);
            let _ = blob::glob_dir_key(glob.as_bytes());
        }
    }
    Ok(())
}

fn walk_rule_index(blob: &Blob<'_>) -> blob::Result<()> {
    for bucket in blob.rule_index().iter() {
        let bucket = bucket?;
        let _ = walk_candidates(blob, bucket.candidates);
        // The probe for the bucket's machine.
        if let Ok(machine) = u16::try_from(bucket.key.wrapping_sub(1)) {
            let _ = blob.rules_for_machine(machine);
        }
    }
    Ok(())
}

/// A list of [`blob::RuleCandidate`] records, read whole as the decision
/// reads them, and one by one as a table.
fn walk_candidates(blob: &Blob<'_>, list: Array) -> blob::Result<()> {
    let table: Table<'_, '_, RuleCandidate> = Table::new(blob, list);
    let one_by_one = table.iter().take(MAX_ELEMENTS);
    if let Ok(whole) = blob.rule_candidates(list) {
        for (a, b) in whole.zip(one_by_one) {
            assert_eq!(Ok(a), b, "read whole or one by one, a record is the same");
        }
    }
    Ok(())
}

fn walk_overrides(blob: &Blob<'_>) -> blob::Result<()> {
    for bucket in blob.overrides().iter() {
        let bucket = bucket?;
        let _ = (bucket.hash(), bucket.interpreter(), bucket.path_offset());
        if let Ok(path) = bucket.path() {
            check_str(path);
            // The lookup of its path, through the probe.
            let _ = blob.find_override(path.as_bytes());
        }
    }
    Ok(())
}

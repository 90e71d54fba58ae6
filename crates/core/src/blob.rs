//! The compiled configuration: a flat, versioned, checksummed blob read in
//! place.
//!
//! This module is the one definition of its layout, for the writer
//! (`config::compile`) as for every reader, as glibc's dl-cache.h serves
//! both ldconfig and ld.so: the offsets of each record's fields
//! ([`header`], [`interp`], [`rule`], [`rule_bucket`], [`rule_candidate`],
//! [`override_bucket`]); the typed views readers go through
//! ([`Interpreter`], [`Rule`], [`Override`], [`RuleBucket`],
//! [`RuleCandidate`], in [`Table`]s); the `*Fields` structs the writer
//! encodes records from, at the same offsets; and the hash tables' keys and
//! probe sequence ([`probe`]), which the writer places entries along and
//! the reader looks them up along. The rule conditions are
//! `crate::decide::Condition`.
//!
//! `binfmtctl compile` writes it, the trampoline reads it without parsing,
//! copying or allocating. All integers are little-endian `u32`; everything
//! is addressed by offsets from the start of the blob; strings are
//! `(offset, length)` pairs whose bytes are followed by a NUL, so they can
//! be handed to `execve` as they are ([`Str`]). The layout is documented in
//! `docs/blob-format.md`.
//!
//! Integrity is checked lazily so that the cost of a lookup does not grow
//! with the size of the config: the header checksum covers the header and a
//! table of per-chunk checksums, and each [`CHUNK`]-byte chunk of the rest is
//! verified the first time a read touches it.

use core::cell::Cell;

mod fields;
mod view;

pub use fields::{HeaderFields, InterpreterFields, OverrideFields, RuleFields};
pub use view::{Interpreter, Iter, Override, Rule, RuleBucket, RuleCandidate, Table, View};

/// The first eight bytes of every blob.
pub const MAGIC: [u8; 8] = *b"BFMTDISP";
/// The layout version this code reads and writes.
pub const VERSION: u32 = 1;
/// Size of the data chunks that carry their own checksum.
pub const CHUNK: usize = 1024;
/// Marks an absent interpreter index.
pub const NONE: u32 = u32::MAX;

/// Byte offsets of the header fields.
pub mod header {
    /// `[u8; 8]`: [`super::MAGIC`].
    pub const MAGIC: usize = 0;
    /// `u32`: [`super::VERSION`].
    pub const VERSION: usize = 8;
    /// `u32`: checksum of bytes `[CHECKED_FROM, data start)`.
    pub const CHECKSUM: usize = 12;
    /// Where the header checksum starts.
    pub const CHECKED_FROM: usize = 16;
    /// `u32`: the length of the whole blob.
    pub const TOTAL_LEN: usize = 16;
    /// `u32`: [`super::Flags`] bits.
    pub const FLAGS: usize = 20;
    /// `u32`: the configured log level (`crate::decide::LogLevel`).
    pub const LOG_LEVEL: usize = 24;
    /// `u32`: index of the default interpreter, or [`super::NONE`].
    pub const DEFAULT: usize = 28;
    /// `Str`: the muvm executable.
    pub const MUVM: usize = 32;
    /// `Array` of [`super::interp`] records.
    pub const INTERPRETERS: usize = 40;
    /// `Array` of [`super::rule`] records, in priority order.
    pub const RULES: usize = 48;
    /// `Array` of [`super::rule_bucket`] records: machine -> candidate rules.
    pub const RULE_INDEX: usize = 56;
    /// `Array` of [`super::rule_candidate`] records: the rules that name no
    /// machine.
    pub const RULES_ANY_MACHINE: usize = 64;
    /// `Array` of [`super::override_bucket`] records, a power of two long.
    pub const OVERRIDES: usize = 72;
    /// `Str`: the missing-interpreter helper, executed when no interpreter
    /// of the chain exists (empty: none).
    pub const MISSING_HELPER: usize = 80;
    /// `Array` of `u32` chunk checksums.
    pub const CHUNKS: usize = 88;
    /// Length of the header.
    pub const LEN: usize = 96;
}

/// Bits of the header's flags field.
pub struct Flags;
impl Flags {
    /// Some override or rule looks at the binary's path, so the dispatcher
    /// must know its canonical path.
    pub const PATH_MATCHERS: u32 = 1;
    /// Some rule looks at `PT_INTERP`.
    pub const INTERP_MATCHERS: u32 = 2;
    /// The system's compiled configuration, embedded in a trampoline by
    /// `binfmtctl compile --embed`: that trampoline reads no system cache.
    pub const EMBEDDED: u32 = 4;
}

/// An interpreter record.
pub mod interp {
    /// `Str`: the configuration's identifier (`[interpreters.ID]`).
    pub const ID: usize = 0;
    /// `Str`: the human name (`name = ...`).
    pub const NAME: usize = 8;
    /// `Str`: the absolute path to execute.
    pub const PATH: usize = 16;
    /// `u32`: `crate::launch::ArgvStyle` code.
    pub const ARGV_STYLE: usize = 24;
    /// `u32`: 1 when it runs under muvm on hosts whose pages are not 4 KiB.
    pub const USE_MUVM: usize = 28;
    /// `Array` of `u32` interpreter indices: itself, then its fallbacks,
    /// flattened and deduplicated by the compiler.
    pub const CHAIN: usize = 32;
    /// `Array` of `Str`: paths that must exist for it to be used.
    pub const REQUIRED_PATHS: usize = 40;
    /// `Array` of `Str`: `KEY=VALUE` environment entries to set.
    pub const ENV: usize = 48;
    /// `Array` of `Str`: the argv template of the custom style.
    pub const TEMPLATE: usize = 56;
    /// `Str`: what to tell the user when it is missing.
    pub const INSTALL_HINT: usize = 64;
    /// Record length.
    pub const LEN: usize = 72;
}

/// A rule record. A condition whose bit is clear in `CONDITIONS` is ignored.
pub mod rule {
    /// `u32`: interpreter index.
    pub const INTERPRETER: usize = 0;
    /// `u32`: which conditions apply (`crate::decide::Condition` bits).
    pub const CONDITIONS: usize = 4;
    /// `u32`: `crate::probe::Format` code.
    pub const FORMAT: usize = 8;
    /// `u32`: ELF `e_machine`.
    pub const MACHINE: usize = 12;
    /// `u32`: ELF class (1 or 2).
    pub const CLASS: usize = 16;
    /// `u32`: ELF data encoding (1 little, 2 big).
    pub const ENDIAN: usize = 20;
    /// `u32`: ELF OS ABI.
    pub const OSABI: usize = 24;
    /// `u32`: required value of `e_flags & FLAGS_MASK`.
    pub const FLAGS: usize = 28;
    /// `u32`: mask applied to `e_flags`.
    pub const FLAGS_MASK: usize = 32;
    /// `Str`: glob on the `PT_INTERP` path.
    pub const INTERP_GLOB: usize = 36;
    /// `Str`: glob on the binary's path.
    pub const PATH_GLOB: usize = 44;
    /// `u32`: PE COFF `Machine`.
    pub const PE_MACHINE: usize = 52;
    /// `u32`: 1 when the rule wants a .NET assembly, 0 when it wants a PE
    /// image that is not one.
    pub const DOTNET: usize = 56;
    /// Record length.
    pub const LEN: usize = 60;
}

/// A bucket of the rule index, keyed by `e_machine + 1` (0: empty).
pub mod rule_bucket {
    /// `u32`: the key.
    pub const KEY: usize = 0;
    /// `Array` of [`super::rule_candidate`] records, by ascending rule
    /// number: the rules naming this machine merged with those naming none.
    pub const RULES: usize = 4;
    /// Record length.
    pub const LEN: usize = 12;
}

/// An entry of a rule list: a rule that may match, and the directory its
/// path glob requires, so that most rules are ruled out without reading
/// them.
pub mod rule_candidate {
    /// `u32`: the rule number.
    pub const RULE: usize = 0;
    /// `u32`: length of the literal directory the rule's path glob starts
    /// with (0: no such requirement).
    pub const DIR_LEN: usize = 4;
    /// `u32`: [`super::path_hash`] of that directory.
    pub const DIR_HASH: usize = 8;
    /// Record length.
    pub const LEN: usize = 12;
}

/// The directory a path glob requires literally: everything up to the last
/// `/` before its first wildcard (the whole glob's directory when it has
/// none). A path the glob matches lies in it (or is it, for `dir/**`).
pub fn glob_dir(glob: &[u8]) -> &[u8] {
    let literal = glob
        .iter()
        .position(|&b| b == b'*' || b == b'?')
        .unwrap_or(glob.len());
    let end = glob[..literal]
        .iter()
        .rposition(|&b| b == b'/')
        .unwrap_or(0);
    &glob[..end]
}

/// A path glob's [`glob_dir`] as rule candidates hold it: `(length,
/// path_hash)`, or `(0, 0)` when the glob requires no directory.
pub fn glob_dir_key(glob: &[u8]) -> (u32, u32) {
    match glob_dir(glob) {
        b"" => (0, 0),
        dir => (dir.len() as u32, path_hash(dir)),
    }
}

/// How many buckets a hash table of `entries` entries has: a power of two,
/// at least twice the entries, so that it is at most half full and a probe
/// for an absent key soon meets an empty bucket; none for no entries.
pub fn buckets_for(entries: usize) -> usize {
    match entries {
        0 => 0,
        n => (n * 2).next_power_of_two(),
    }
}

/// The buckets a probe from `home` visits in a table of `buckets` buckets
/// (a power of two): linear, wrapping, each once. The writer puts an entry
/// in the first empty one; the reader stops at the entry's key or at an
/// empty bucket, so both must walk this one sequence.
#[inline]
pub fn probe(home: u32, buckets: u32) -> impl Iterator<Item = u32> {
    let mask = buckets.wrapping_sub(1);
    (0..buckets).map(move |i| home.wrapping_add(i) & mask)
}

/// Where the probe for an override starts: its path's [`path_hash`].
#[inline]
pub fn override_home(path_hash: u32, buckets: u32) -> u32 {
    path_hash & buckets.wrapping_sub(1)
}

/// The rule index's key for ELF machine `machine`: `e_machine + 1`, since
/// 0 marks an empty bucket.
#[inline]
pub fn rule_index_key(machine: u16) -> u32 {
    u32::from(machine) + 1
}

/// Where the probe for a rule index key starts: a multiplicative hash, as
/// machine numbers cluster.
#[inline]
pub fn rule_index_home(key: u32, buckets: u32) -> u32 {
    key.wrapping_mul(0x9e37_79b1) & buckets.wrapping_sub(1)
}

/// A bucket of the binary-override hash table (all zero: empty).
pub mod override_bucket {
    /// `u32`: [`super::path_hash`] of the path, never 0.
    pub const HASH: usize = 0;
    /// `Str`: the binary's path.
    pub const PATH: usize = 4;
    /// `u32`: interpreter index.
    pub const INTERPRETER: usize = 12;
    /// Record length.
    pub const LEN: usize = 16;
}

/// Why a blob cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobError {
    /// Shorter than its header or than the length it claims.
    Truncated,
    /// Does not start with [`MAGIC`].
    BadMagic,
    /// Written for another layout version. Without the number, which no
    /// message shows: a fieldless error is one byte, and each of the exec
    /// path's `?` on a blob read passes it on in fewer instructions.
    Version,
    /// A checksum does not match.
    Checksum,
    /// An offset, length or index points outside the blob or its tables.
    OutOfBounds,
}

impl BlobError {
    /// A short description for messages.
    pub fn describe(self) -> &'static str {
        match self {
            BlobError::Truncated => "truncated",
            BlobError::BadMagic => "not a binfmt-dispatcher cache",
            BlobError::Version => "written for another version",
            BlobError::Checksum => "checksum mismatch (corrupt)",
            BlobError::OutOfBounds => "inconsistent (offset out of bounds)",
        }
    }
}

/// Shorthand for results of blob reads.
pub type Result<T> = core::result::Result<T, BlobError>;

/// Writes the checksums of a blob whose header (its `CHUNKS` array
/// included) and data are in place: each chunk's into the chunk table,
/// then the header's. The writer's last step; tests and fuzzing use it to
/// reseal blobs they edit. A blob too short for its chunk table is left
/// as it is.
pub fn seal(bytes: &mut [u8]) {
    if bytes.len() < header::LEN {
        return;
    }
    let count = le32(bytes, header::CHUNKS + 4) as usize;
    let data_start = header::LEN.saturating_add(count.saturating_mul(4));
    if data_start > bytes.len() {
        return;
    }
    for c in 0..count {
        let start = (data_start + c * CHUNK).min(bytes.len());
        let end = (start + CHUNK).min(bytes.len());
        let sum = checksum(&bytes[start..end]);
        bytes[header::LEN + 4 * c..header::LEN + 4 * c + 4].copy_from_slice(&sum.to_le_bytes());
    }
    let sum = checksum(&bytes[header::CHECKED_FROM..data_start]);
    bytes[header::CHECKSUM..header::CHECKSUM + 4].copy_from_slice(&sum.to_le_bytes());
}

/// The checksum used for the header and for each chunk: a word-at-a-time
/// multiplicative hash, enough to catch corruption, not an adversary (the
/// blob's owner and mode are what keep adversaries out).
pub fn checksum(bytes: &[u8]) -> u32 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let word = |w: &[u8]| u64::from_le_bytes(w.try_into().unwrap_or_default());
    let step = |h: u64, w: u64| (h ^ w).wrapping_mul(K).rotate_left(29);
    let seed = 0x243f_6a88_85a3_08d3 ^ bytes.len() as u64;
    // Four independent lanes over 32-byte blocks, so the multiplications
    // overlap instead of waiting on each other.
    let mut lanes = [
        seed,
        seed ^ K,
        seed.rotate_left(21),
        seed.rotate_left(42) ^ K,
    ];
    let mut blocks = bytes.chunks_exact(32);
    for block in &mut blocks {
        for (lane, w) in lanes.iter_mut().zip(block.chunks_exact(8)) {
            *lane = step(*lane, word(w));
        }
    }
    let mut h =
        lanes[0] ^ lanes[1].rotate_left(16) ^ lanes[2].rotate_left(32) ^ lanes[3].rotate_left(48);
    let mut words = blocks.remainder().chunks_exact(8);
    for w in &mut words {
        h = step(h, word(w));
    }
    let mut tail = [0u8; 8];
    tail[..words.remainder().len()].copy_from_slice(words.remainder());
    h = (h ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    h ^= h >> 32;
    h as u32
}

/// FNV-1a of a path, folded to 32 bits and never 0 (0 marks an empty bucket).
pub fn path_hash(path: &[u8]) -> u32 {
    path.iter()
        .fold(PATH_HASH_SEED, |h, &b| path_hash_step(h, b))
        .max(1)
}

/// The start of [`path_hash`], for hashing prefixes incrementally.
pub const PATH_HASH_SEED: u32 = 0x811c_9dc5;

/// One byte of [`path_hash`]; the hash of a prefix is the fold's value
/// after its bytes, `.max(1)`.
pub fn path_hash_step(h: u32, b: u8) -> u32 {
    (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
}

/// A `(offset, count)` pair naming `count` records of `stride` bytes; a
/// `Str` is one too, counting bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Array {
    /// Offset of the first record.
    pub off: u32,
    /// Number of records.
    pub count: u32,
}

/// A string of the blob: its bytes and the NUL after them, so that
/// `execve` takes it as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Str<'b>(&'b [u8]);

impl<'b> Str<'b> {
    /// Its bytes, without the NUL.
    #[inline]
    pub fn as_bytes(self) -> &'b [u8] {
        &self.0[..self.0.len().saturating_sub(1)]
    }

    /// Its bytes and the NUL.
    #[inline]
    pub fn with_nul(self) -> &'b [u8] {
        self.0
    }

    /// Whether it has no bytes but the NUL.
    #[inline]
    pub fn is_empty(self) -> bool {
        self.0.len() <= 1
    }
}

/// Words of the verified-chunk bitmap: 2 MiB of data; chunks past it are
/// verified on every touch. Small, because the reader lives on the
/// trampoline's stack.
const VERIFIED_WORDS: usize = 32;

/// A blob being read in place. Cheap to create: only the header and the
/// chunk table are verified up front.
pub struct Blob<'a> {
    bytes: &'a [u8],
    data_start: usize,
    chunk_sums: Array,
    /// One bit per data chunk already verified (chunks past the bitmap are
    /// verified on every touch).
    verified: [Cell<u64>; VERIFIED_WORDS],
}

impl<'a> Blob<'a> {
    /// Checks the header of `bytes` and returns a reader over it.
    pub fn open(bytes: &'a [u8]) -> Result<Blob<'a>> {
        if bytes.len() < header::LEN {
            return Err(if bytes.len() >= 8 && bytes[..8] != MAGIC {
                BlobError::BadMagic
            } else {
                BlobError::Truncated
            });
        }
        if bytes[..8] != MAGIC {
            return Err(BlobError::BadMagic);
        }
        let version = le32(bytes, header::VERSION);
        if version != VERSION {
            return Err(BlobError::Version);
        }
        let total = le32(bytes, header::TOTAL_LEN) as usize;
        if bytes.len() < total {
            return Err(BlobError::Truncated);
        }
        let bytes = &bytes[..total];
        let chunks = Array {
            off: le32(bytes, header::CHUNKS),
            count: le32(bytes, header::CHUNKS + 4),
        };
        // The chunk table follows the header; the data follows the table.
        if chunks.off as usize != header::LEN {
            return Err(BlobError::OutOfBounds);
        }
        let data_start = (chunks.count as usize)
            .checked_mul(4)
            .and_then(|n| n.checked_add(header::LEN))
            .filter(|&end| end <= total)
            .ok_or(BlobError::OutOfBounds)?;
        if total.saturating_sub(data_start).div_ceil(CHUNK) != chunks.count as usize {
            return Err(BlobError::OutOfBounds);
        }
        if checksum(&bytes[header::CHECKED_FROM..data_start]) != le32(bytes, header::CHECKSUM) {
            return Err(BlobError::Checksum);
        }
        Ok(Blob {
            bytes,
            data_start,
            chunk_sums: chunks,
            verified: [const { Cell::new(0) }; VERIFIED_WORDS],
        })
    }

    /// The whole blob.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// `len` bytes at `off`, bounds-checked and with the chunks they touch
    /// verified.
    pub fn bytes(&self, off: u32, len: u32) -> Result<&'a [u8]> {
        let start = off as usize;
        let end = start
            .checked_add(len as usize)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(BlobError::OutOfBounds)?;
        if end > self.data_start && len > 0 {
            let first = start.saturating_sub(self.data_start) / CHUNK;
            let last = (end - 1 - self.data_start) / CHUNK;
            for chunk in first..=last {
                self.verify_chunk(chunk)?;
            }
        }
        Ok(&self.bytes[start..end])
    }

    fn verify_chunk(&self, chunk: usize) -> Result<()> {
        let (word, bit) = (chunk / 64, 1u64 << (chunk % 64));
        let seen = self.verified.get(word);
        if seen.is_some_and(|w| w.get() & bit != 0) {
            return Ok(());
        }
        let start = self.data_start + chunk * CHUNK;
        let end = (start + CHUNK).min(self.bytes.len());
        let expected = le32(self.bytes, self.chunk_sums.off as usize + chunk * 4);
        if checksum(&self.bytes[start..end]) != expected {
            return Err(BlobError::Checksum);
        }
        if let Some(w) = seen {
            w.set(w.get() | bit);
        }
        Ok(())
    }

    /// Offset of record `index` of `array`, whose records are `stride`
    /// bytes.
    fn record(&self, array: Array, index: u32, stride: usize) -> Result<u32> {
        if index >= array.count {
            return Err(BlobError::OutOfBounds);
        }
        index
            .checked_mul(stride as u32)
            .and_then(|o| o.checked_add(array.off))
            .ok_or(BlobError::OutOfBounds)
    }

    /// Record `index` of `array`, whose records are `len` bytes, read (and
    /// verified) whole. One copy for every kind of record: the views are
    /// thin around it.
    #[inline(never)]
    fn table_record(&self, array: Array, index: u32, len: usize) -> Result<Record<'a>> {
        self.record_bytes(self.record(array, index, len)?, len)
    }

    /// The `len`-byte record at `off`, read (and verified) whole, so that
    /// its fields cost no further checks.
    fn record_bytes(&self, off: u32, len: usize) -> Result<Record<'a>> {
        Ok(Record(self.bytes(off, len as u32)?))
    }

    /// The `Str` field `field` of `record`, read. One copy, out of line:
    /// the views read strings in many places.
    #[inline(never)]
    fn record_string(&self, record: &'a [u8], field: usize) -> Result<Str<'a>> {
        self.string(Record(record).array(field))
    }

    /// The string `s` names, whose NUL is checked.
    pub fn string(&self, s: Array) -> Result<Str<'a>> {
        let with_nul = self.bytes(s.off, s.count.checked_add(1).ok_or(BlobError::OutOfBounds)?)?;
        match with_nul.last() {
            Some(0) => Ok(Str(with_nul)),
            _ => Err(BlobError::OutOfBounds),
        }
    }

    /// A header field, for the getters below.
    #[inline]
    fn header(&self, field: usize) -> u32 {
        le32(self.bytes, field)
    }

    /// A header `Array`, for the getters below.
    #[inline]
    fn header_array(&self, field: usize) -> Array {
        Array {
            off: self.header(field),
            count: self.header(field + 4),
        }
    }

    /// The header's [`Flags`] bits.
    #[inline]
    pub fn flags(&self) -> u32 {
        self.header(header::FLAGS)
    }

    /// Whether this is the system's configuration embedded in a trampoline
    /// by `binfmtctl compile --embed` ([`Flags::EMBEDDED`]).
    pub fn is_embedded(&self) -> bool {
        self.flags() & Flags::EMBEDDED != 0
    }

    /// The configured log level's code (`crate::decide::LogLevel::from_code`).
    #[inline]
    pub fn log_level(&self) -> u32 {
        self.header(header::LOG_LEVEL)
    }

    /// Index of the `[defaults] interpreter`, if there is one.
    #[inline]
    pub fn default_interpreter(&self) -> Option<u32> {
        Some(self.header(header::DEFAULT)).filter(|&i| i != NONE)
    }

    /// The muvm executable (empty: none configured).
    #[inline]
    pub fn muvm(&self) -> Result<Str<'a>> {
        self.string(self.header_array(header::MUVM))
    }

    /// The missing-interpreter helper (empty: none).
    #[inline]
    pub fn missing_helper(&self) -> Result<Str<'a>> {
        self.string(self.header_array(header::MISSING_HELPER))
    }

    /// The interpreter records, by index.
    #[inline]
    pub fn interpreters(&self) -> Table<'_, 'a, Interpreter<'_, 'a>> {
        Table::new(self, self.header_array(header::INTERPRETERS))
    }

    /// Interpreter `index`. One copy, out of line: the exec path looks
    /// interpreters up in many places.
    #[inline(never)]
    pub fn interpreter(&self, index: u32) -> Result<Interpreter<'_, 'a>> {
        self.interpreters().get(index)
    }

    /// The rule records, in priority order.
    #[inline]
    pub fn rules(&self) -> Table<'_, 'a, Rule<'_, 'a>> {
        Table::new(self, self.header_array(header::RULES))
    }

    /// The buckets of the rule index.
    #[inline]
    pub fn rule_index(&self) -> Table<'_, 'a, RuleBucket> {
        Table::new(self, self.header_array(header::RULE_INDEX))
    }

    /// The buckets of the override table.
    #[inline]
    pub fn overrides(&self) -> Table<'_, 'a, Override<'_, 'a>> {
        Table::new(self, self.header_array(header::OVERRIDES))
    }

    /// The list of rule candidates for ELF machine `machine`, by the rule
    /// index; or, for a machine the index does not hold, the rules that
    /// name no machine.
    pub fn rules_for_machine(&self, machine: u16) -> Result<Array> {
        let index = self.rule_index();
        if index.is_empty() {
            return Ok(self.rules_any_machine());
        }
        let key = rule_index_key(machine);
        for slot in probe(rule_index_home(key, index.len()), index.checked_buckets()?) {
            match index.get(slot)? {
                RuleBucket { key: 0, .. } => break,
                bucket if bucket.key == key => return Ok(bucket.candidates),
                _ => {}
            }
        }
        Ok(self.rules_any_machine())
    }

    /// The list of rule candidates of the rules that name no machine: what
    /// every binary that is not ELF is checked against.
    #[inline]
    pub fn rules_any_machine(&self) -> Array {
        self.header_array(header::RULES_ANY_MACHINE)
    }

    /// The candidates of `list`, read (and verified) in one piece.
    pub fn rule_candidates(&self, list: Array) -> Result<impl Iterator<Item = RuleCandidate> + 'a> {
        let len = list.count.checked_mul(rule_candidate::LEN as u32);
        let bytes = self.bytes(list.off, len.ok_or(BlobError::OutOfBounds)?)?;
        Ok(bytes
            .chunks_exact(rule_candidate::LEN)
            .map(|r| RuleCandidate::decode(Record(r))))
    }

    /// The override for `path`, by hash lookup.
    pub fn find_override(&self, path: &[u8]) -> Result<Option<Override<'_, 'a>>> {
        let table = self.overrides();
        if table.is_empty() {
            return Ok(None);
        }
        let hash = path_hash(path);
        // The table is at most half full, so the probe ends at an empty
        // bucket; its bound keeps a corrupt full table from looping.
        for slot in probe(override_home(hash, table.len()), table.checked_buckets()?) {
            let bucket = table.get(slot)?;
            match bucket.hash() {
                0 => return Ok(None),
                h if h == hash && bucket.path()?.as_bytes() == path => return Ok(Some(bucket)),
                _ => {}
            }
        }
        Ok(None)
    }
}

/// A fixed-size record read whole by [`Blob::record_bytes`]: the raw
/// fields the views read.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a>(&'a [u8]);

impl Record<'_> {
    /// The `u32` field at `field` (0 past the record's end).
    #[inline]
    pub fn u32(&self, field: usize) -> u32 {
        le32(self.0, field)
    }

    /// The `Array` (or `Str`) field at `field`.
    #[inline]
    pub fn array(&self, field: usize) -> Array {
        Array {
            off: self.u32(field),
            count: self.u32(field + 4),
        }
    }
}

/// The length the blob at the start of `bytes` declares in its header,
/// when `bytes` holds that many: a blob embedded in a trampoline can be
/// followed by other bytes (a bundle), which [`Blob::open`] ignores too.
pub fn declared_len(bytes: &[u8]) -> Option<usize> {
    let total = bytes.get(header::TOTAL_LEN..header::TOTAL_LEN + 4)?;
    let total = u32::from_le_bytes([total[0], total[1], total[2], total[3]]) as usize;
    (total <= bytes.len()).then_some(total)
}

/// The little-endian `u32` at `off`; callers guarantee the bounds.
fn le32(bytes: &[u8], off: usize) -> u32 {
    match bytes.get(off..off + 4) {
        Some(b) => u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_len_is_the_headers_when_it_fits() {
        let mut bytes = [0u8; 64];
        bytes[header::TOTAL_LEN..header::TOTAL_LEN + 4].copy_from_slice(&40u32.to_le_bytes());
        assert_eq!(
            declared_len(&bytes),
            Some(40),
            "trailing bytes are not the blob's"
        );
        assert_eq!(declared_len(&bytes[..40]), Some(40));
        assert_eq!(declared_len(&bytes[..39]), None, "longer than the bytes");
        assert_eq!(
            declared_len(&bytes[..header::TOTAL_LEN + 3]),
            None,
            "no length"
        );
    }

    #[test]
    fn checksum_sees_every_byte_and_the_length() {
        let base: [u8; 101] = core::array::from_fn(|i| (i * 7) as u8);
        let sum = checksum(&base);
        for i in 0..base.len() {
            let mut b = base;
            b[i] ^= 1;
            assert_ne!(checksum(&b), sum, "byte {i}");
        }
        assert_ne!(checksum(&base[..100]), sum);
        // Swapping two words of one block is seen too.
        let mut swapped = base;
        swapped[..8].copy_from_slice(&base[8..16]);
        swapped[8..16].copy_from_slice(&base[..8]);
        assert_ne!(checksum(&swapped), sum);
        assert_ne!(checksum(&[]), checksum(&[0]));
    }

    #[test]
    fn glob_dirs() {
        let cases: &[(&str, &str)] = &[
            ("/home/*/Games/**", "/home"),
            ("/opt/games/**", "/opt/games"),
            ("/usr/bin/foo", "/usr/bin"),
            ("/usr/bin/fo?", "/usr/bin"),
            ("/lib*/ld.so", ""),
            ("**/*.exe", ""),
            ("/x", ""),
        ];
        for (glob, dir) in cases {
            assert_eq!(glob_dir(glob.as_bytes()), dir.as_bytes(), "{glob}");
        }
    }

    #[test]
    fn path_hash_is_never_zero() {
        assert_ne!(path_hash(b""), 0);
        assert_ne!(path_hash(b"/usr/bin/x"), path_hash(b"/usr/bin/y"));
    }

    #[test]
    fn probes_visit_every_bucket_once_from_home() {
        let slots: std::vec::Vec<u32> = probe(override_home(0x1236, 8), 8).collect();
        assert_eq!(slots, [6, 7, 0, 1, 2, 3, 4, 5]);
        assert_eq!(probe(5, 0).count(), 0);
        assert_eq!(buckets_for(0), 0);
        assert_eq!(buckets_for(1), 2);
        assert_eq!(buckets_for(3), 8);
        assert_eq!(buckets_for(4), 8);
        assert_ne!(rule_index_key(0), 0);
    }

    #[test]
    fn glob_dir_keys_are_the_hash_of_the_directory() {
        assert_eq!(
            glob_dir_key(b"/opt/games/**"),
            (10, path_hash(b"/opt/games"))
        );
        assert_eq!(glob_dir_key(b"**/*.exe"), (0, 0));
        assert_eq!(glob_dir_key(b""), (0, 0));
    }

    #[test]
    fn short_or_foreign_bytes_are_rejected() {
        assert_eq!(Blob::open(b"").err(), Some(BlobError::Truncated));
        assert_eq!(Blob::open(b"BFMT").err(), Some(BlobError::Truncated));
        assert_eq!(Blob::open(&[0u8; 200]).err(), Some(BlobError::BadMagic));
        assert_eq!(
            Blob::open(b"#!/bin/sh\nexit 0\n").err(),
            Some(BlobError::BadMagic)
        );
    }
}

//! The typed views of the blob's records: what every reader goes
//! through instead of offsets. Each view holds its record read (and
//! verified) whole, so its fields cost no further checks; strings and
//! arrays are read, bounds-checked, when asked for.

use core::fmt;
use core::marker::PhantomData;

use super::fields::{put_array, put_u32};
use super::{
    glob_dir_key, interp, override_bucket, rule, rule_bucket, rule_candidate, Array, Blob,
    BlobError, Record, Result, Str,
};
use crate::decide::Condition;
use crate::launch::ArgvStyle;

/// A kind of record: its length, and how one read whole is seen.
pub trait View<'r, 'b>: Sized {
    /// Bytes per record.
    const LEN: usize;
    /// The view of record `index` of its table.
    fn view(blob: &'r Blob<'b>, index: u32, record: Record<'b>) -> Result<Self>;
}

/// An array of `u32` (an interpreter's chain).
impl<'r, 'b> View<'r, 'b> for u32 {
    const LEN: usize = 4;
    #[inline]
    fn view(_: &'r Blob<'b>, _: u32, record: Record<'b>) -> Result<u32> {
        Ok(record.u32(0))
    }
}

/// An array of `Str` (required paths, environment, template): each
/// string read with its NUL checked.
impl<'r, 'b> View<'r, 'b> for Str<'b> {
    const LEN: usize = 8;
    #[inline]
    fn view(blob: &'r Blob<'b>, _: u32, record: Record<'b>) -> Result<Str<'b>> {
        blob.record_string(record.0, 0)
    }
}

/// A record's bytes, as many as its kind has, so that reading a field
/// costs no bounds check.
#[derive(Clone, Copy, Debug)]
struct Fixed<'b, const N: usize>(&'b [u8; N]);

impl<'b, const N: usize> Fixed<'b, N> {
    /// `record`, which has `N` bytes or the blob is inconsistent.
    #[inline]
    fn of(record: Record<'b>) -> Result<Self> {
        record
            .0
            .try_into()
            .map(Fixed)
            .map_err(|_| BlobError::OutOfBounds)
    }

    #[inline(always)]
    fn u32(self, field: usize) -> u32 {
        Record(self.0).u32(field)
    }

    #[inline(always)]
    fn array(self, field: usize) -> Array {
        Record(self.0).array(field)
    }
}

/// An array of records in the blob, seen through `V`.
pub struct Table<'r, 'b, V> {
    blob: &'r Blob<'b>,
    array: Array,
    view: PhantomData<fn() -> V>,
}

impl<V> Clone for Table<'_, '_, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V> Copy for Table<'_, '_, V> {}

impl<'r, 'b, V: View<'r, 'b>> Table<'r, 'b, V> {
    /// The records `array` names, seen as `V`.
    #[inline]
    pub fn new(blob: &'r Blob<'b>, array: Array) -> Self {
        Table {
            blob,
            array,
            view: PhantomData,
        }
    }

    /// How many records it has.
    #[inline]
    pub fn len(&self) -> u32 {
        self.array.count
    }

    /// Whether it has none.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.array.count == 0
    }

    /// Where it is.
    #[inline]
    pub fn array(&self) -> Array {
        self.array
    }

    /// Record `index`, read (and verified) whole.
    #[inline]
    pub fn get(&self, index: u32) -> Result<V> {
        let record = self.blob.table_record(self.array, index, V::LEN)?;
        V::view(self.blob, index, record)
    }

    /// Every record, in order.
    #[inline]
    pub fn iter(&self) -> Iter<'r, 'b, V> {
        Iter {
            table: *self,
            next: 0,
        }
    }

    /// Its length as a hash table's: a power of two, or the blob is
    /// inconsistent.
    #[inline]
    pub(super) fn checked_buckets(&self) -> Result<u32> {
        match self.len() {
            n if n.is_power_of_two() => Ok(n),
            _ => Err(BlobError::OutOfBounds),
        }
    }
}

/// The records of a [`Table`], in order.
pub struct Iter<'r, 'b, V> {
    table: Table<'r, 'b, V>,
    next: u32,
}

impl<'r, 'b, V: View<'r, 'b>> Iterator for Iter<'r, 'b, V> {
    type Item = Result<V>;

    #[inline]
    fn next(&mut self) -> Option<Result<V>> {
        let index = self.next;
        if index >= self.table.len() {
            return None;
        }
        self.next += 1;
        Some(self.table.get(index))
    }
}

/// An interpreter record ([`interp`]).
#[derive(Clone, Copy)]
pub struct Interpreter<'r, 'b> {
    blob: &'r Blob<'b>,
    index: u32,
    record: Fixed<'b, { interp::LEN }>,
}

impl<'r, 'b> View<'r, 'b> for Interpreter<'r, 'b> {
    const LEN: usize = interp::LEN;
    #[inline]
    fn view(blob: &'r Blob<'b>, index: u32, record: Record<'b>) -> Result<Self> {
        Ok(Interpreter {
            blob,
            index,
            record: Fixed::of(record)?,
        })
    }
}

impl fmt::Debug for Interpreter<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interpreter")
            .field("index", &self.index)
            .field("record", &self.record)
            .finish()
    }
}

impl<'r, 'b> Interpreter<'r, 'b> {
    /// Its index in the interpreter table.
    #[inline]
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The configuration's identifier (`[interpreters.ID]`).
    #[inline]
    pub fn id(&self) -> Result<Str<'b>> {
        self.blob.record_string(self.record.0, interp::ID)
    }

    /// The human name.
    #[inline]
    pub fn name(&self) -> Result<Str<'b>> {
        self.blob.record_string(self.record.0, interp::NAME)
    }

    /// The absolute path to execute.
    #[inline]
    pub fn path(&self) -> Result<Str<'b>> {
        self.blob.record_string(self.record.0, interp::PATH)
    }

    /// How it is told the guest's argv; an unknown code makes the blob
    /// inconsistent.
    #[inline]
    pub fn argv_style(&self) -> Result<ArgvStyle> {
        ArgvStyle::from_code(self.argv_style_code()).ok_or(BlobError::OutOfBounds)
    }

    /// The argv style's code as stored.
    #[inline]
    pub fn argv_style_code(&self) -> u32 {
        self.record.u32(interp::ARGV_STYLE)
    }

    /// The `use_muvm` field as stored: 1 when it runs under muvm on hosts
    /// whose pages are not 4 KiB.
    #[inline]
    pub fn use_muvm(&self) -> u32 {
        self.record.u32(interp::USE_MUVM)
    }

    /// The interpreter indices to try: itself, then its fallbacks.
    #[inline]
    pub fn chain(&self) -> Table<'r, 'b, u32> {
        Table::new(self.blob, self.record.array(interp::CHAIN))
    }

    /// Paths that must exist for it to be used.
    #[inline]
    pub fn required_paths(&self) -> Table<'r, 'b, Str<'b>> {
        Table::new(self.blob, self.record.array(interp::REQUIRED_PATHS))
    }

    /// `KEY=VALUE` entries to set in its environment.
    #[inline]
    pub fn env(&self) -> Table<'r, 'b, Str<'b>> {
        Table::new(self.blob, self.record.array(interp::ENV))
    }

    /// The argv template of the custom style.
    #[inline]
    pub fn template(&self) -> Table<'r, 'b, Str<'b>> {
        Table::new(self.blob, self.record.array(interp::TEMPLATE))
    }

    /// What to tell the user when it is missing.
    #[inline]
    pub fn install_hint(&self) -> Result<Str<'b>> {
        self.blob.record_string(self.record.0, interp::INSTALL_HINT)
    }
}

/// A rule record ([`rule`]). Each field holds what one condition compares
/// with, and applies only when the condition's bit is set in
/// [`Rule::conditions`](super::Rule::conditions).
#[derive(Clone, Copy)]
pub struct Rule<'r, 'b> {
    blob: &'r Blob<'b>,
    number: u32,
    record: Fixed<'b, { rule::LEN }>,
}

impl<'r, 'b> View<'r, 'b> for Rule<'r, 'b> {
    const LEN: usize = rule::LEN;
    #[inline]
    fn view(blob: &'r Blob<'b>, number: u32, record: Record<'b>) -> Result<Self> {
        Ok(Rule {
            blob,
            number,
            record: Fixed::of(record)?,
        })
    }
}

impl<'b> Rule<'_, 'b> {
    /// Its number: its place in priority order, from 0.
    #[inline]
    pub fn number(&self) -> u32 {
        self.number
    }

    /// The index of the interpreter it chooses.
    #[inline]
    pub fn interpreter(&self) -> u32 {
        self.record.u32(rule::INTERPRETER)
    }

    /// Which conditions apply: [`Condition`] bits.
    #[inline]
    pub fn conditions(&self) -> u32 {
        self.record.u32(rule::CONDITIONS)
    }

    /// Whether condition `c` applies.
    #[inline]
    pub fn has(&self, c: Condition) -> bool {
        self.conditions() & c.bit() != 0
    }

    /// `crate::probe::Format` code.
    #[inline]
    pub fn format(&self) -> u32 {
        self.record.u32(rule::FORMAT)
    }

    /// ELF `e_machine`.
    #[inline]
    pub fn machine(&self) -> u32 {
        self.record.u32(rule::MACHINE)
    }

    /// Class: 1 (32 bits) or 2 (64 bits).
    #[inline]
    pub fn class(&self) -> u32 {
        self.record.u32(rule::CLASS)
    }

    /// ELF data encoding: 1 little, 2 big.
    #[inline]
    pub fn endian(&self) -> u32 {
        self.record.u32(rule::ENDIAN)
    }

    /// ELF OS ABI.
    #[inline]
    pub fn osabi(&self) -> u32 {
        self.record.u32(rule::OSABI)
    }

    /// Required value of `e_flags & flags_mask()`.
    #[inline]
    pub fn flags(&self) -> u32 {
        self.record.u32(rule::FLAGS)
    }

    /// Mask applied to `e_flags`.
    #[inline]
    pub fn flags_mask(&self) -> u32 {
        self.record.u32(rule::FLAGS_MASK)
    }

    /// Glob on the `PT_INTERP` path.
    #[inline]
    pub fn interp_glob(&self) -> Result<Str<'b>> {
        self.blob.record_string(self.record.0, rule::INTERP_GLOB)
    }

    /// Glob on the binary's path.
    #[inline]
    pub fn path_glob(&self) -> Result<Str<'b>> {
        self.blob.record_string(self.record.0, rule::PATH_GLOB)
    }

    /// PE COFF `Machine`.
    #[inline]
    pub fn pe_machine(&self) -> u32 {
        self.record.u32(rule::PE_MACHINE)
    }

    /// 1 when it wants a .NET assembly, 0 when a PE image that is not one.
    #[inline]
    pub fn dotnet(&self) -> u32 {
        self.record.u32(rule::DOTNET)
    }
}

/// A bucket of the override table ([`override_bucket`]).
#[derive(Clone, Copy)]
pub struct Override<'r, 'b> {
    blob: &'r Blob<'b>,
    slot: u32,
    record: Fixed<'b, { override_bucket::LEN }>,
}

impl<'r, 'b> View<'r, 'b> for Override<'r, 'b> {
    const LEN: usize = override_bucket::LEN;
    #[inline]
    fn view(blob: &'r Blob<'b>, slot: u32, record: Record<'b>) -> Result<Self> {
        Ok(Override {
            blob,
            slot,
            record: Fixed::of(record)?,
        })
    }
}

impl<'b> Override<'_, 'b> {
    /// Its bucket's number.
    #[inline]
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// Whether the bucket is empty (its hash is 0).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.hash() == 0
    }

    /// [`path_hash`](super::path_hash) of its path.
    #[inline]
    pub fn hash(&self) -> u32 {
        self.record.u32(override_bucket::HASH)
    }

    /// The binary's path.
    #[inline]
    pub fn path(&self) -> Result<Str<'b>> {
        self.blob
            .record_string(self.record.0, override_bucket::PATH)
    }

    /// Where its path's bytes are: the writer interns strings in order, so
    /// this tells which entries it wrote first.
    #[inline]
    pub fn path_offset(&self) -> u32 {
        self.record.u32(override_bucket::PATH)
    }

    /// The index of the interpreter it chooses.
    #[inline]
    pub fn interpreter(&self) -> u32 {
        self.record.u32(override_bucket::INTERPRETER)
    }
}

/// A bucket of the rule index ([`rule_bucket`]), as read and as written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleBucket {
    /// [`rule_index_key`](super::rule_index_key) of its machine; 0: the bucket is empty.
    pub key: u32,
    /// The list of [`RuleCandidate`]s for that machine.
    pub candidates: Array,
}

impl<'r, 'b> View<'r, 'b> for RuleBucket {
    const LEN: usize = rule_bucket::LEN;
    #[inline]
    fn view(_: &'r Blob<'b>, _: u32, record: Record<'b>) -> Result<Self> {
        Ok(RuleBucket {
            key: record.u32(rule_bucket::KEY),
            candidates: record.array(rule_bucket::RULES),
        })
    }
}

impl RuleBucket {
    /// Its bytes, for the writer.
    pub fn encode(&self) -> [u8; rule_bucket::LEN] {
        let mut r = [0; rule_bucket::LEN];
        put_u32(&mut r, rule_bucket::KEY, self.key);
        put_array(&mut r, rule_bucket::RULES, self.candidates);
        r
    }
}

/// An entry of a rule list ([`rule_candidate`]), as read and as written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleCandidate {
    /// The rule's number.
    pub rule: u32,
    /// Length of the directory its path glob requires (0: none).
    pub dir_len: u32,
    /// [`path_hash`](super::path_hash) of that directory.
    pub dir_hash: u32,
}

impl<'r, 'b> View<'r, 'b> for RuleCandidate {
    const LEN: usize = rule_candidate::LEN;
    #[inline]
    fn view(_: &'r Blob<'b>, _: u32, record: Record<'b>) -> Result<Self> {
        Ok(RuleCandidate::decode(record))
    }
}

impl RuleCandidate {
    /// Rule `rule`, whose path glob is `path_glob` (empty: none).
    pub fn of(rule: u32, path_glob: &[u8]) -> RuleCandidate {
        let (dir_len, dir_hash) = glob_dir_key(path_glob);
        RuleCandidate {
            rule,
            dir_len,
            dir_hash,
        }
    }

    #[inline]
    pub(super) fn decode(record: Record<'_>) -> RuleCandidate {
        RuleCandidate {
            rule: record.u32(rule_candidate::RULE),
            dir_len: record.u32(rule_candidate::DIR_LEN),
            dir_hash: record.u32(rule_candidate::DIR_HASH),
        }
    }

    /// Its bytes, for the writer.
    pub fn encode(&self) -> [u8; rule_candidate::LEN] {
        let mut r = [0; rule_candidate::LEN];
        put_u32(&mut r, rule_candidate::RULE, self.rule);
        put_u32(&mut r, rule_candidate::DIR_LEN, self.dir_len);
        put_u32(&mut r, rule_candidate::DIR_HASH, self.dir_hash);
        r
    }
}

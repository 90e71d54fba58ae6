//! The writer's side of the layout: each record's fields as
//! `config::compile` fills them in, encoded at the offsets the views
//! ([`super::view`]) read them from.

use super::{header, interp, override_bucket, rule, Array, MAGIC, VERSION};

/// The header's fields, as the writer fills them in: [`HeaderFields::encode`]
/// puts them where [`Blob`](super::Blob) reads them. The checksums are [`seal`](super::seal)'s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeaderFields {
    /// The length of the whole blob.
    pub total_len: u32,
    /// [`Flags`](super::Flags) bits.
    pub flags: u32,
    /// The log level's code.
    pub log_level: u32,
    /// The default interpreter's index, or [`NONE`](super::NONE).
    pub default_interpreter: u32,
    /// The muvm executable.
    pub muvm: Array,
    /// The interpreter records.
    pub interpreters: Array,
    /// The rule records.
    pub rules: Array,
    /// The rule index's buckets.
    pub rule_index: Array,
    /// The rule candidates of the rules that name no machine.
    pub rules_any_machine: Array,
    /// The override buckets.
    pub overrides: Array,
    /// The missing-interpreter helper.
    pub missing_helper: Array,
    /// How many chunks the data after the chunk table is cut into.
    pub chunks: u32,
}

impl HeaderFields {
    /// The header's bytes, its checksum left to [`seal`](super::seal).
    pub fn encode(&self) -> [u8; header::LEN] {
        let mut h = [0; header::LEN];
        h[header::MAGIC..header::MAGIC + MAGIC.len()].copy_from_slice(&MAGIC);
        put_u32(&mut h, header::VERSION, VERSION);
        put_u32(&mut h, header::TOTAL_LEN, self.total_len);
        put_u32(&mut h, header::FLAGS, self.flags);
        put_u32(&mut h, header::LOG_LEVEL, self.log_level);
        put_u32(&mut h, header::DEFAULT, self.default_interpreter);
        put_array(&mut h, header::MUVM, self.muvm);
        put_array(&mut h, header::INTERPRETERS, self.interpreters);
        put_array(&mut h, header::RULES, self.rules);
        put_array(&mut h, header::RULE_INDEX, self.rule_index);
        put_array(&mut h, header::RULES_ANY_MACHINE, self.rules_any_machine);
        put_array(&mut h, header::OVERRIDES, self.overrides);
        put_array(&mut h, header::MISSING_HELPER, self.missing_helper);
        let chunk_table = Array {
            off: header::LEN as u32,
            count: self.chunks,
        };
        put_array(&mut h, header::CHUNKS, chunk_table);
        h
    }
}

/// An interpreter record's fields, as the writer fills them in:
/// [`InterpreterFields::encode`] puts them where [`Interpreter`](super::Interpreter) reads them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InterpreterFields {
    /// `Str`: see [`Interpreter::id`](super::Interpreter::id).
    pub id: Array,
    /// `Str`: see [`Interpreter::name`](super::Interpreter::name).
    pub name: Array,
    /// `Str`: see [`Interpreter::path`](super::Interpreter::path).
    pub path: Array,
    /// `ArgvStyle` code.
    pub argv_style: u32,
    /// 1: runs under muvm on hosts whose pages are not 4 KiB.
    pub use_muvm: u32,
    /// `u32` interpreter indices: see [`Interpreter::chain`](super::Interpreter::chain).
    pub chain: Array,
    /// `Str`s: see [`Interpreter::required_paths`](super::Interpreter::required_paths).
    pub required_paths: Array,
    /// `Str`s: see [`Interpreter::env`](super::Interpreter::env).
    pub env: Array,
    /// `Str`s: see [`Interpreter::template`](super::Interpreter::template).
    pub template: Array,
    /// `Str`: see [`Interpreter::install_hint`](super::Interpreter::install_hint).
    pub install_hint: Array,
}

impl InterpreterFields {
    /// The record's bytes.
    pub fn encode(&self) -> [u8; interp::LEN] {
        let mut r = [0; interp::LEN];
        put_array(&mut r, interp::ID, self.id);
        put_array(&mut r, interp::NAME, self.name);
        put_array(&mut r, interp::PATH, self.path);
        put_u32(&mut r, interp::ARGV_STYLE, self.argv_style);
        put_u32(&mut r, interp::USE_MUVM, self.use_muvm);
        put_array(&mut r, interp::CHAIN, self.chain);
        put_array(&mut r, interp::REQUIRED_PATHS, self.required_paths);
        put_array(&mut r, interp::ENV, self.env);
        put_array(&mut r, interp::TEMPLATE, self.template);
        put_array(&mut r, interp::INSTALL_HINT, self.install_hint);
        r
    }
}

/// A rule record's fields, as the writer fills them in:
/// [`RuleFields::encode`] puts them where [`Rule`](super::Rule) reads them. A field
/// whose condition the rule does not have holds 0 (an empty `Str`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleFields {
    /// See [`Rule::interpreter`](super::Rule::interpreter).
    pub interpreter: u32,
    /// See [`Rule::conditions`](super::Rule::conditions).
    pub conditions: u32,
    /// See [`Rule::format`](super::Rule::format).
    pub format: u32,
    /// See [`Rule::machine`](super::Rule::machine).
    pub machine: u32,
    /// See [`Rule::class`](super::Rule::class).
    pub class: u32,
    /// See [`Rule::endian`](super::Rule::endian).
    pub endian: u32,
    /// See [`Rule::osabi`](super::Rule::osabi).
    pub osabi: u32,
    /// See [`Rule::flags`](super::Rule::flags).
    pub flags: u32,
    /// See [`Rule::flags_mask`](super::Rule::flags_mask).
    pub flags_mask: u32,
    /// `Str`: see [`Rule::interp_glob`](super::Rule::interp_glob).
    pub interp_glob: Array,
    /// `Str`: see [`Rule::path_glob`](super::Rule::path_glob).
    pub path_glob: Array,
    /// See [`Rule::pe_machine`](super::Rule::pe_machine).
    pub pe_machine: u32,
    /// See [`Rule::dotnet`](super::Rule::dotnet).
    pub dotnet: u32,
}

impl RuleFields {
    /// The record's bytes.
    pub fn encode(&self) -> [u8; rule::LEN] {
        let mut r = [0; rule::LEN];
        put_u32(&mut r, rule::INTERPRETER, self.interpreter);
        put_u32(&mut r, rule::CONDITIONS, self.conditions);
        put_u32(&mut r, rule::FORMAT, self.format);
        put_u32(&mut r, rule::MACHINE, self.machine);
        put_u32(&mut r, rule::CLASS, self.class);
        put_u32(&mut r, rule::ENDIAN, self.endian);
        put_u32(&mut r, rule::OSABI, self.osabi);
        put_u32(&mut r, rule::FLAGS, self.flags);
        put_u32(&mut r, rule::FLAGS_MASK, self.flags_mask);
        put_array(&mut r, rule::INTERP_GLOB, self.interp_glob);
        put_array(&mut r, rule::PATH_GLOB, self.path_glob);
        put_u32(&mut r, rule::PE_MACHINE, self.pe_machine);
        put_u32(&mut r, rule::DOTNET, self.dotnet);
        r
    }
}

/// An override bucket's fields, as the writer fills them in:
/// [`OverrideFields::encode`] puts them where [`Override`](super::Override) reads them. All
/// zero: an empty bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OverrideFields {
    /// [`path_hash`](super::path_hash) of the path; never 0.
    pub hash: u32,
    /// `Str`: the binary's path.
    pub path: Array,
    /// The interpreter's index.
    pub interpreter: u32,
}

impl OverrideFields {
    /// The record's bytes.
    pub fn encode(&self) -> [u8; override_bucket::LEN] {
        let mut r = [0; override_bucket::LEN];
        put_u32(&mut r, override_bucket::HASH, self.hash);
        put_array(&mut r, override_bucket::PATH, self.path);
        put_u32(&mut r, override_bucket::INTERPRETER, self.interpreter);
        r
    }
}

/// Writes `value` at `field` of `record`: the writer's [`Record::u32`].
pub(super) fn put_u32(record: &mut [u8], field: usize, value: u32) {
    record[field..field + 4].copy_from_slice(&value.to_le_bytes());
}

/// Writes `array` at `field` of `record`: the writer's [`Record::array`].
pub(super) fn put_array(record: &mut [u8], field: usize, array: Array) {
    put_u32(record, field, array.off);
    put_u32(record, field + 4, array.count);
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use crate::launch::ArgvStyle;

    /// A blob of `data` behind a header `head` (its lengths filled in);
    /// the data starts at [`DATA`].
    fn blob_with(head: HeaderFields, data: &[u8]) -> std::vec::Vec<u8> {
        assert!(
            (1..=CHUNK).contains(&data.len()),
            "one chunk, so the data starts at DATA"
        );
        let head = HeaderFields {
            total_len: DATA + data.len() as u32,
            chunks: 1,
            ..head
        };
        let mut bytes = head.encode().to_vec();
        bytes.resize(DATA as usize, 0);
        bytes.extend_from_slice(data);
        seal(&mut bytes);
        bytes
    }

    /// Where the data of a one-chunk blob starts.
    const DATA: u32 = header::LEN as u32 + 4;

    /// Ten strings `s0`..`s9` at the start of the data, then `tail`;
    /// `s(i)` names string i.
    fn strings_then(tail: &[u8]) -> std::vec::Vec<u8> {
        let mut data: std::vec::Vec<u8> = (0..10).flat_map(|i| [b's', b'0' + i, 0]).collect();
        data.extend_from_slice(tail);
        data
    }

    fn s(i: u32) -> Array {
        Array {
            off: DATA + 3 * i,
            count: 2,
        }
    }

    /// Where `strings_then`'s tail starts.
    const TAIL: u32 = DATA + 30;

    #[test]
    fn the_header_reads_what_the_writer_wrote() {
        let head = HeaderFields {
            flags: Flags::PATH_MATCHERS | Flags::EMBEDDED,
            log_level: 4,
            default_interpreter: 7,
            muvm: s(1),
            missing_helper: s(2),
            interpreters: Array { off: 1, count: 2 },
            rules: Array { off: 3, count: 4 },
            rule_index: Array { off: 5, count: 6 },
            rules_any_machine: Array { off: 7, count: 8 },
            overrides: Array { off: 9, count: 10 },
            ..HeaderFields::default()
        };
        let bytes = blob_with(head, &strings_then(b""));
        let blob = Blob::open(&bytes).unwrap();
        assert_eq!(blob.flags(), head.flags);
        assert!(blob.is_embedded());
        assert_eq!(blob.log_level(), 4);
        assert_eq!(blob.default_interpreter(), Some(7));
        assert_eq!(blob.muvm().unwrap().as_bytes(), b"s1");
        assert_eq!(blob.missing_helper().unwrap().with_nul(), b"s2\0");
        assert_eq!(blob.interpreters().array(), head.interpreters);
        assert_eq!(blob.rules().array(), head.rules);
        assert_eq!(blob.rule_index().array(), head.rule_index);
        assert_eq!(blob.rules_any_machine(), head.rules_any_machine);
        assert_eq!(blob.overrides().array(), head.overrides);
        let none = blob_with(
            HeaderFields {
                default_interpreter: NONE,
                ..head
            },
            &strings_then(b""),
        );
        assert_eq!(Blob::open(&none).unwrap().default_interpreter(), None);
    }

    #[test]
    fn an_interpreter_reads_what_the_writer_wrote() {
        // After the strings: a `Str` array of s7 and s8, a chain [5, 6].
        let mut tail = std::vec::Vec::new();
        for a in [s(7), s(8)] {
            tail.extend_from_slice(&a.off.to_le_bytes());
            tail.extend_from_slice(&a.count.to_le_bytes());
        }
        tail.extend_from_slice(&[5, 0, 0, 0, 6, 0, 0, 0]);
        let strs = |n| Array {
            off: TAIL,
            count: n,
        };
        let fields = InterpreterFields {
            id: s(0),
            name: s(1),
            path: s(2),
            argv_style: ArgvStyle::Fex as u32,
            use_muvm: 1,
            chain: Array {
                off: TAIL + 16,
                count: 2,
            },
            required_paths: strs(1),
            env: strs(2),
            template: Array {
                off: TAIL + 8,
                count: 1,
            },
            install_hint: s(3),
        };
        tail.extend_from_slice(&fields.encode());
        let table = Array {
            off: TAIL + 24,
            count: 1,
        };
        let head = HeaderFields {
            interpreters: table,
            ..HeaderFields::default()
        };
        let bytes = blob_with(head, &strings_then(&tail));
        let blob = Blob::open(&bytes).unwrap();
        let i = blob.interpreter(0).unwrap();
        fn text(s: Result<Str<'_>>) -> &[u8] {
            s.unwrap().as_bytes()
        }
        assert_eq!(i.index(), 0);
        assert_eq!(text(i.id()), b"s0");
        assert_eq!(text(i.name()), b"s1");
        assert_eq!(text(i.path()), b"s2");
        assert_eq!(i.argv_style(), Ok(ArgvStyle::Fex));
        assert_eq!(i.use_muvm(), 1);
        let chain: std::vec::Vec<u32> = i.chain().iter().map(|c| c.unwrap()).collect();
        assert_eq!(chain, [5, 6]);
        let all = |t: Table<'_, '_, Str<'_>>| -> std::vec::Vec<std::vec::Vec<u8>> {
            t.iter().map(|s| s.unwrap().as_bytes().to_vec()).collect()
        };
        assert_eq!(all(i.required_paths()), [b"s7"]);
        assert_eq!(all(i.env()), [b"s7", b"s8"]);
        assert_eq!(all(i.template()), [b"s8"]);
        assert_eq!(text(i.install_hint()), b"s3");
        assert_eq!(blob.interpreter(1).err(), Some(BlobError::OutOfBounds));
    }

    #[test]
    fn a_rule_and_an_override_read_what_the_writer_wrote() {
        let rule_fields = RuleFields {
            interpreter: 1,
            conditions: 2,
            format: 3,
            machine: 4,
            class: 5,
            endian: 6,
            osabi: 7,
            flags: 8,
            flags_mask: 9,
            interp_glob: s(4),
            path_glob: s(5),
            pe_machine: 10,
            dotnet: 11,
        };
        let override_fields = OverrideFields {
            hash: 12,
            path: s(6),
            interpreter: 13,
        };
        let mut tail = rule_fields.encode().to_vec();
        tail.extend_from_slice(&override_fields.encode());
        let head = HeaderFields {
            rules: Array {
                off: TAIL,
                count: 1,
            },
            overrides: Array {
                off: TAIL + rule::LEN as u32,
                count: 1,
            },
            ..HeaderFields::default()
        };
        let bytes = blob_with(head, &strings_then(&tail));
        let blob = Blob::open(&bytes).unwrap();
        let r = blob.rules().get(0).unwrap();
        let got = [
            r.interpreter(),
            r.conditions(),
            r.format(),
            r.machine(),
            r.class(),
            r.endian(),
            r.osabi(),
            r.flags(),
            r.flags_mask(),
            r.pe_machine(),
            r.dotnet(),
        ];
        assert_eq!(got, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
        assert_eq!(r.interp_glob().unwrap().as_bytes(), b"s4");
        assert_eq!(r.path_glob().unwrap().as_bytes(), b"s5");
        let o = blob.overrides().get(0).unwrap();
        assert_eq!((o.slot(), o.hash(), o.interpreter()), (0, 12, 13));
        assert_eq!(o.path().unwrap().as_bytes(), b"s6");
        assert_eq!(o.path_offset(), s(6).off);
        assert!(!o.is_empty());
    }

    #[test]
    fn small_records_decode_what_they_encode() {
        let c = RuleCandidate {
            rule: 1,
            dir_len: 2,
            dir_hash: 3,
        };
        assert_eq!(RuleCandidate::decode(Record(&c.encode())), c);
        let b = RuleBucket {
            key: 4,
            candidates: Array { off: 5, count: 6 },
        };
        let bytes = b.encode();
        let bucket_bytes = blob_with(
            HeaderFields {
                rule_index: Array {
                    off: DATA,
                    count: 1,
                },
                ..HeaderFields::default()
            },
            &bytes,
        );
        let blob = Blob::open(&bucket_bytes).unwrap();
        assert_eq!(blob.rule_index().get(0), Ok(b));
    }

    #[test]
    fn every_byte_of_a_record_is_some_field() {
        // Fields of all-nonzero bytes leave no zero byte where the writer
        // forgot a field; the views reading them back (above) rule out
        // fields written over each other.
        let a = Array {
            off: 0x0101_0101,
            count: 0x0202_0202,
        };
        let v = 0x0303_0303;
        let interp = InterpreterFields {
            id: a,
            name: a,
            path: a,
            argv_style: v,
            use_muvm: v,
            chain: a,
            required_paths: a,
            env: a,
            template: a,
            install_hint: a,
        };
        assert!(!interp.encode().contains(&0));
        let rule = RuleFields {
            interpreter: v,
            conditions: v,
            format: v,
            machine: v,
            class: v,
            endian: v,
            osabi: v,
            flags: v,
            flags_mask: v,
            interp_glob: a,
            path_glob: a,
            pe_machine: v,
            dotnet: v,
        };
        assert!(!rule.encode().contains(&0));
        let o = OverrideFields {
            hash: v,
            path: a,
            interpreter: v,
        };
        assert!(!o.encode().contains(&0));
        let c = RuleCandidate {
            rule: v,
            dir_len: v,
            dir_hash: v,
        };
        assert!(!c.encode().contains(&0));
        let b = RuleBucket {
            key: v,
            candidates: a,
        };
        assert!(!b.encode().contains(&0));
        let head = HeaderFields {
            total_len: v,
            flags: v,
            log_level: v,
            default_interpreter: v,
            muvm: a,
            interpreters: a,
            rules: a,
            rule_index: a,
            rules_any_machine: a,
            overrides: a,
            missing_helper: a,
            chunks: v,
        };
        // Only the checksum, which seal writes, is left.
        let bytes = head.encode();
        let zeros: std::vec::Vec<usize> = (0..header::LEN).filter(|&i| bytes[i] == 0).collect();
        assert!(
            zeros
                .iter()
                .all(|i| (header::CHECKSUM..header::CHECKSUM + 4).contains(i)
                    || (header::VERSION + 1..header::VERSION + 4).contains(i)
                    || (header::CHUNKS + 1..header::CHUNKS + 4).contains(i)),
            "{zeros:?}"
        );
    }
}

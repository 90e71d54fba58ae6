//! A merged [`Config`] into blob bytes. The layout is
//! `binfmt_dispatcher_core::blob`'s: records are encoded through its
//! `*Fields` structs, hash tables filled along its `probe`, rule conditions
//! set by `decide::Condition`; this module decides only what goes where.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::format;
use std::string::String;
use std::vec::Vec;

use super::{Config, ConfigError, Interpreter, Loc, Rule};
use binfmt_dispatcher_core::blob::{
    self, header, Array, Flags, HeaderFields, InterpreterFields, OverrideFields, RuleBucket,
    RuleCandidate, RuleFields, CHUNK, NONE,
};
use binfmt_dispatcher_core::decide::{Condition, LogLevel};
use binfmt_dispatcher_core::launch::ArgvStyle;

/// Validates `config` and lays it out as a blob.
pub fn compile(config: &Config) -> Result<Vec<u8>, ConfigError> {
    let ids: BTreeMap<&str, u32> = config
        .interpreters
        .keys()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i as u32))
        .collect();
    validate(config, &ids)?;
    // The data's offsets depend on where it starts, which depends on the
    // size of the chunk table, which depends on the data's length: lay out
    // once to learn the length, then again at the real base.
    let chunks = layout(config, &ids, 0).1.len().div_ceil(CHUNK);
    let base = header::LEN + chunks * 4;
    let (tables, data) = layout(config, &ids, base as u32);
    let default = config.default_interpreter.as_ref();
    let head = HeaderFields {
        total_len: (base + data.len()) as u32,
        flags: flags(config),
        log_level: config.log_level.unwrap_or(LogLevel::Warn) as u32,
        default_interpreter: default.map_or(NONE, |d| ids[d.value.as_str()]),
        chunks: chunks as u32,
        ..tables
    };
    let mut out = Vec::with_capacity(base + data.len());
    out.extend_from_slice(&head.encode());
    out.resize(base, 0); // the chunk checksums, set by seal
    out.extend_from_slice(&data);
    blob::seal(&mut out);
    Ok(out)
}

/// The header's flags: what the trampoline must look up before deciding.
fn flags(config: &Config) -> u32 {
    let mut flags = 0;
    if !config.binaries.is_empty() || config.rules.iter().any(|r| r.path.is_some()) {
        flags |= Flags::PATH_MATCHERS;
    }
    if config.rules.iter().any(|r| r.interp.is_some()) {
        flags |= Flags::INTERP_MATCHERS;
    }
    flags
}

fn err(loc: &Loc, message: String) -> ConfigError {
    ConfigError {
        loc: loc.clone(),
        message,
    }
}

fn validate(config: &Config, ids: &BTreeMap<&str, u32>) -> Result<(), ConfigError> {
    let known = |what: &str, r: &super::Spanned<String>| {
        if ids.contains_key(r.value.as_str()) {
            Ok(())
        } else {
            Err(err(
                &r.loc,
                format!(
                    "{what} names interpreter `{}`, which no [interpreters.*] table defines",
                    r.value
                ),
            ))
        }
    };
    if let Some(d) = &config.default_interpreter {
        known("[defaults] interpreter", d)?;
    }
    for (id, i) in &config.interpreters {
        if i.path.is_none() {
            return Err(err(&i.loc, format!("[interpreters.{id}] has no path")));
        }
        for f in i.fallback.iter().flatten() {
            known(&format!("[interpreters.{id}] fallback"), f)?;
        }
        if style(i) == ArgvStyle::Custom && i.template.is_none() {
            return Err(err(
                &i.loc,
                format!("[interpreters.{id}] has argv = \"custom\" but no template"),
            ));
        }
    }
    let mut paths: HashMap<&str, &str> = HashMap::new();
    for (id, b) in &config.binaries {
        let Some(path) = &b.path else {
            return Err(err(&b.loc, format!("[binaries.{id}] has no path")));
        };
        let Some(i) = &b.interpreter else {
            return Err(err(&b.loc, format!("[binaries.{id}] has no interpreter")));
        };
        known(&format!("[binaries.{id}] interpreter"), i)?;
        if let Some(other) = paths.insert(path.value.as_str(), id.as_str()) {
            return Err(err(
                &path.loc,
                format!(
                    "[binaries.{id}] path `{}` is also [binaries.{other}]'s",
                    path.value
                ),
            ));
        }
    }
    for r in &config.rules {
        known("[[rules]] interpreter", &r.interpreter)?;
    }
    Ok(())
}

/// The interpreter's argv style: configured, or guessed from its path.
pub fn style(i: &Interpreter) -> ArgvStyle {
    i.argv.unwrap_or_else(|| {
        ArgvStyle::guess(i.path.as_ref().map_or(&b""[..], |p| p.value.as_bytes()))
    })
}

/// The interpreter indices to try for `start`: itself, then its fallbacks'
/// chains in order, each interpreter once.
fn chain(config: &Config, ids: &BTreeMap<&str, u32>, start: &str) -> Vec<u32> {
    fn visit<'c>(
        config: &'c Config,
        id: &'c str,
        seen: &mut BTreeSet<&'c str>,
        out: &mut Vec<&'c str>,
    ) {
        if !seen.insert(id) {
            return;
        }
        out.push(id);
        if let Some(i) = config.interpreters.get(id) {
            for f in i.fallback.iter().flatten() {
                visit(config, &f.value, seen, out);
            }
        }
    }
    let mut order = Vec::new();
    visit(config, start, &mut BTreeSet::new(), &mut order);
    order.iter().map(|id| ids[id]).collect()
}

/// Appends data at a known base offset.
struct Data {
    base: u32,
    bytes: Vec<u8>,
    strings: HashMap<Vec<u8>, u32>,
}

impl Data {
    fn at(&self) -> u32 {
        self.base + self.bytes.len() as u32
    }

    fn u32(&mut self, v: u32) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    /// Interns a string; returns its `Str`.
    fn str(&mut self, s: &[u8]) -> Array {
        let count = s.len() as u32;
        if let Some(&off) = self.strings.get(s) {
            return Array { off, count };
        }
        let off = self.at();
        self.bytes.extend_from_slice(s);
        self.bytes.push(0);
        self.strings.insert(s.to_vec(), off);
        Array { off, count }
    }

    /// Writes an array of `u32` now.
    fn u32s(&mut self, list: &[u32]) -> Array {
        let off = self.at();
        list.iter().for_each(|&v| self.u32(v));
        Array {
            off,
            count: list.len() as u32,
        }
    }

    /// Interns the strings, then writes the array of their `Str`s.
    fn strs<S: AsRef<[u8]>>(&mut self, list: &[S]) -> Array {
        let refs: Vec<Array> = list.iter().map(|s| self.str(s.as_ref())).collect();
        let off = self.at();
        for s in &refs {
            self.u32(s.off);
            self.u32(s.count);
        }
        Array {
            off,
            count: list.len() as u32,
        }
    }

    /// Writes records encoded by `encode`; returns their array.
    fn records<T, const LEN: usize>(&mut self, list: &[T], encode: fn(&T) -> [u8; LEN]) -> Array {
        let off = self.at();
        list.iter()
            .for_each(|r| self.bytes.extend_from_slice(&encode(r)));
        Array {
            off,
            count: list.len() as u32,
        }
    }
}

/// Whether `r` has condition `c`.
fn has(r: &Rule, c: Condition) -> bool {
    match c {
        Condition::Format => r.format.is_some(),
        Condition::Machine => r.machine.is_some(),
        Condition::Class => r.class.is_some(),
        Condition::Endian => r.endian.is_some(),
        Condition::Osabi => r.osabi.is_some(),
        Condition::Flags => r.flags.is_some(),
        Condition::Interp => r.interp.is_some(),
        Condition::Path => r.path.is_some(),
        Condition::PeMachine => r.pe_machine.is_some(),
        Condition::Dotnet => r.dotnet.is_some(),
    }
}

/// The record of rule `r`, its strings interned in `d`: each field holds
/// its condition's operand, or 0 when the rule does not have it.
fn rule_fields(d: &mut Data, ids: &BTreeMap<&str, u32>, r: &Rule) -> RuleFields {
    let (flags, flags_mask) = r.flags.unwrap_or((0, 0));
    RuleFields {
        interpreter: ids[r.interpreter.value.as_str()],
        conditions: Condition::ALL
            .into_iter()
            .filter(|&c| has(r, c))
            .fold(0, |bits, c| bits | c.bit()),
        format: r.format.map_or(0, |f| f as u32),
        machine: r.machine.map_or(0, u32::from),
        class: r.class.map_or(0, u32::from),
        endian: r.endian.map_or(0, u32::from),
        osabi: r.osabi.map_or(0, u32::from),
        flags,
        flags_mask,
        interp_glob: d.str(r.interp.as_deref().unwrap_or("").as_bytes()),
        path_glob: d.str(r.path.as_deref().unwrap_or("").as_bytes()),
        pe_machine: r.pe_machine.map_or(0, u32::from),
        dotnet: u32::from(r.dotnet.unwrap_or(false)),
    }
}

/// The record of interpreter `id`, its strings and arrays written to `d`.
fn interpreter_fields(
    d: &mut Data,
    config: &Config,
    ids: &BTreeMap<&str, u32>,
    id: &str,
    i: &Interpreter,
) -> InterpreterFields {
    let env: Vec<String> = i
        .env
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    InterpreterFields {
        id: d.str(id.as_bytes()),
        name: d.str(i.name.as_deref().unwrap_or(id).as_bytes()),
        path: d.str(i.path.as_ref().map_or("", |p| &p.value).as_bytes()),
        argv_style: style(i) as u32,
        use_muvm: u32::from(i.use_muvm.unwrap_or(false)),
        chain: d.u32s(&chain(config, ids, id)),
        required_paths: d.strs(i.required_paths.as_deref().unwrap_or(&[])),
        env: d.strs(&env),
        template: d.strs(i.template.as_ref().map_or(&[][..], |t| &t.value)),
        install_hint: d.str(i.install_hint.as_deref().unwrap_or("").as_bytes()),
    }
}

/// Writes the candidate list of the rules `keep` takes, in priority order:
/// each with the directory its path glob requires, so the trampoline skips
/// most rules without reading them.
fn candidates(d: &mut Data, rules: &[Rule], keep: &dyn Fn(&Rule) -> bool) -> Array {
    let list: Vec<RuleCandidate> = rules
        .iter()
        .enumerate()
        .filter(|(_, r)| keep(r))
        .map(|(n, r)| RuleCandidate::of(n as u32, r.path.as_deref().unwrap_or("").as_bytes()))
        .collect();
    d.records(&list, RuleCandidate::encode)
}

/// A hash table of `entries`, each put in the first empty bucket of the
/// probe from its home (`home(entry, buckets)`): where the reader's probe
/// for its key will find it.
fn hash_table<T: Copy + Default>(entries: &[T], home: impl Fn(&T, u32) -> u32) -> Vec<T> {
    let buckets = blob::buckets_for(entries.len());
    let mut table: Vec<Option<T>> = std::vec![None; buckets];
    for e in entries {
        let slot = blob::probe(home(e, buckets as u32), buckets as u32)
            .find(|&s| table[s as usize].is_none())
            .expect("a table at most half full has an empty bucket");
        table[slot as usize] = Some(*e);
    }
    table.into_iter().map(Option::unwrap_or_default).collect()
}

/// Lays out the data that follows the chunk table, at offset `base`.
/// Returns the header's arrays, and the data.
fn layout(config: &Config, ids: &BTreeMap<&str, u32>, base: u32) -> (HeaderFields, Vec<u8>) {
    let mut d = Data {
        base,
        bytes: Vec::new(),
        strings: HashMap::new(),
    };
    let muvm = d.str(config.muvm_path.as_deref().unwrap_or("").as_bytes());
    let missing_helper = d.str(config.missing_helper.as_deref().unwrap_or("").as_bytes());
    let interpreters: Vec<InterpreterFields> = config
        .interpreters
        .iter()
        .map(|(id, i)| interpreter_fields(&mut d, config, ids, id, i))
        .collect();
    let rules: Vec<RuleFields> = config
        .rules
        .iter()
        .map(|r| rule_fields(&mut d, ids, r))
        .collect();
    let rules_any_machine = candidates(&mut d, &config.rules, &|r| r.machine.is_none());
    let machines: BTreeSet<u16> = config.rules.iter().filter_map(|r| r.machine).collect();
    let buckets: Vec<RuleBucket> = machines
        .iter()
        .map(|&m| RuleBucket {
            key: blob::rule_index_key(m),
            candidates: candidates(&mut d, &config.rules, &|r| {
                r.machine.is_none_or(|rm| rm == m)
            }),
        })
        .collect();
    let overrides: Vec<OverrideFields> = config
        .binaries
        .values()
        .filter_map(|b| Some((b.path.as_ref()?, b.interpreter.as_ref()?)))
        .map(|(p, i)| OverrideFields {
            hash: blob::path_hash(p.value.as_bytes()),
            path: d.str(p.value.as_bytes()),
            interpreter: ids[i.value.as_str()],
        })
        .collect();

    let interpreters = d.records(&interpreters, InterpreterFields::encode);
    let rules = d.records(&rules, RuleFields::encode);
    let rule_index = hash_table(&buckets, |b, n| blob::rule_index_home(b.key, n));
    let rule_index = d.records(&rule_index, RuleBucket::encode);
    let overrides = hash_table(&overrides, |o, n| blob::override_home(o.hash, n));
    let overrides = d.records(&overrides, OverrideFields::encode);
    let tables = HeaderFields {
        muvm,
        interpreters,
        rules,
        rule_index,
        rules_any_machine,
        overrides,
        missing_helper,
        ..HeaderFields::default()
    };
    (tables, d.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use binfmt_dispatcher_core::blob::Blob;
    use std::fmt::Write;

    /// The machine of rule `m` of [`crowded`]: 40 numbers, many of them
    /// sharing a home bucket of the rule index.
    fn machine(m: u32) -> u16 {
        ((m * m * 31 + 7) % 60000) as u16
    }

    /// 300 overrides (many sharing a home bucket) and rules over 40
    /// machines, compiled.
    fn crowded() -> (Config, Vec<u8>) {
        let mut toml = String::new();
        for i in 0..7 {
            let _ = write!(toml, "[interpreters.i{i}]\npath = \"/usr/bin/i{i}\"\n");
        }
        for n in 0..300 {
            let _ = write!(
                toml,
                "[binaries.b{n}]\npath = \"/games/{}/bin\"\ninterpreter = \"i{}\"\n",
                n * 7919 % 1000,
                n % 7
            );
        }
        for m in 0..40 {
            let _ = write!(
                toml,
                "[[rules]]\nmachine = {}\ninterpreter = \"i{}\"\n",
                machine(m),
                m % 7
            );
        }
        toml.push_str("[[rules]]\npath = \"/opt/**\"\ninterpreter = \"i0\"\n");
        let config = Config::parse("crowded", &toml).unwrap();
        let bytes = compile(&config).unwrap();
        (config, bytes)
    }

    #[test]
    fn the_reader_finds_every_override_where_the_writer_put_it() {
        let (config, bytes) = crowded();
        let blob = Blob::open(&bytes).unwrap();
        let ids: Vec<&String> = config.interpreters.keys().collect();
        for b in config.binaries.values() {
            let path = b.path.as_ref().unwrap().value.as_bytes();
            let found = blob.find_override(path).unwrap().expect("placed, so found");
            assert_eq!(found.path().unwrap().as_bytes(), path);
            let id = ids[found.interpreter() as usize];
            assert_eq!(id, &b.interpreter.as_ref().unwrap().value);
        }
        assert!(blob.find_override(b"/games/1001/bin").unwrap().is_none());
        // Some entries were moved along the probe past their home bucket,
        // so the test saw the probe, not only home buckets.
        let table = blob.overrides();
        let moved = table
            .iter()
            .map(Result::unwrap)
            .filter(|o| !o.is_empty())
            .filter(|o| o.slot() != blob::override_home(o.hash(), table.len()))
            .count();
        assert!(moved > 10, "{moved} entries away from home");
    }

    #[test]
    fn the_reader_finds_every_machine_of_the_rule_index() {
        let (config, bytes) = crowded();
        let blob = Blob::open(&bytes).unwrap();
        let no_machine = blob.rules_any_machine();
        let last = config.rules.len() as u32 - 1;
        for m in 0..40 {
            let list = blob.rules_for_machine(machine(m)).unwrap();
            assert_ne!(list, no_machine, "rule {m}'s machine");
            let rules: Vec<u32> = blob
                .rule_candidates(list)
                .unwrap()
                .map(|c| c.rule)
                .collect();
            // Its own rule, then the path rule that names no machine.
            assert_eq!(rules, [m, last], "rule {m}'s machine");
        }
        assert_eq!(blob.rules_for_machine(1).unwrap(), no_machine);
        let index = blob.rule_index();
        let moved = index
            .iter()
            .map(Result::unwrap)
            .enumerate()
            .filter(|&(_, b)| b.key != 0)
            .filter(|&(slot, b)| slot as u32 != blob::rule_index_home(b.key, index.len()))
            .count();
        assert!(moved > 0, "no machine away from home");
    }

    #[test]
    fn each_condition_key_sets_its_bit_and_only_it() {
        for c in Condition::ALL {
            let value = match c {
                Condition::Format => "\"elf\"",
                Condition::Machine => "62",
                Condition::Class => "64",
                Condition::Endian => "\"little\"",
                Condition::Osabi => "3",
                Condition::Flags => "1\nflags_mask = 3",
                Condition::Interp => "\"/lib/ld-*\"",
                Condition::Path => "\"/opt/**\"",
                Condition::PeMachine => "\"x86_64\"",
                Condition::Dotnet => "true",
            };
            let toml = format!(
                "[interpreters.a]\npath = \"/a\"\n[[rules]]\n{} = {value}\ninterpreter = \"a\"\n",
                c.key()
            );
            let bytes = compile(&Config::parse("one condition", &toml).unwrap()).unwrap();
            let blob = Blob::open(&bytes).unwrap();
            let rule = blob.rules().get(0).unwrap();
            assert_eq!(rule.conditions(), c.bit(), "{}", c.key());
        }
    }

    #[test]
    fn hash_tables_put_entries_with_one_home_on_its_probe() {
        // Five entries whose home is bucket 14 of 16: 14, 15, then around.
        let table = hash_table(&[1u32, 2, 3, 4, 5], |_, n| {
            assert_eq!(n, 16);
            14
        });
        let expected = [3, 4, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2];
        assert_eq!(table, expected);
        assert!(hash_table::<u32>(&[], |_, _| 0).is_empty());
    }
}

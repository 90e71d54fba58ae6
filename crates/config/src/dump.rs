//! A blob back to TOML that compiles to the same bytes (`binfmtctl dump`).
//!
//! Reads the blob only through its typed views ([`Interpreter`], [`Rule`],
//! [`Override`]) and the one table of rule conditions ([`Condition`]).
//! What the blob does not keep is made up so that it compiles the same:
//! `[binaries.*]` get IDs (`NN-NAME`) that sort in the order the compiler
//! laid them out, rules are written with the conditions they compiled to
//! (an `arch` shorthand where one fits), and each interpreter's `fallback`
//! is its flattened chain, which compiles to the same chain unless
//! fallbacks form a cycle.
//!
//! The text is a toml_edit document as toml_edit formats it: a blank line
//! before every table but the first, strings in double quotes unless they
//! hold quotes or backslashes (then single) or line breaks (then triple);
//! flags and masks in hexadecimal.

use std::fmt;
use std::format;
use std::string::{String, ToString};
use std::vec::Vec;

use binfmt_dispatcher_core::blob::{
    self, Blob, BlobError, Interpreter, Override, Rule, Str, Table as BlobTable,
};
use binfmt_dispatcher_core::decide::{Condition, LogLevel};
use binfmt_dispatcher_core::launch::ArgvStyle;
use binfmt_dispatcher_core::probe::{self, Arch, Format};
use toml_edit::{value, Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table, Value};
use toml_writer::{ToTomlValue as _, TomlStringBuilder};

/// Why a blob cannot be written back as TOML.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DumpError {
    /// The blob is inconsistent.
    Blob(BlobError),
    /// A field holds a value no configuration compiles to.
    Invalid(String),
}

impl fmt::Display for DumpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DumpError::Blob(e) => write!(f, "{}", e.describe()),
            DumpError::Invalid(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for DumpError {}

impl From<BlobError> for DumpError {
    fn from(e: BlobError) -> Self {
        DumpError::Blob(e)
    }
}

type Res<T> = Result<T, DumpError>;

fn invalid<T>(message: String) -> Res<T> {
    Err(DumpError::Invalid(message))
}

/// `s` as a TOML basic string: always in double quotes, with JSON's
/// escapes only, so that it is a JSON string too (JSON output uses it).
pub fn quote(s: &str) -> String {
    TomlStringBuilder::new(s).as_basic().to_toml_value()
}

fn text(s: Str<'_>) -> Res<&str> {
    core::str::from_utf8(s.as_bytes())
        .map_err(|_| DumpError::Invalid("a string is not UTF-8".to_string()))
}

/// `n` in hexadecimal: flags and masks are bit patterns.
fn hex(n: u32) -> Item {
    let hex: Value = format!("{n:#x}")
        .parse()
        .expect("a hexadecimal integer is a TOML value");
    value(hex)
}

/// The strings of a `Str` array.
fn strs(all: BlobTable<'_, '_, Str<'_>>) -> Res<Vec<String>> {
    all.iter().map(|s| Ok(text(s?)?.to_string())).collect()
}

/// The ID of interpreter `index`.
fn id_of(blob: &Blob<'_>, index: u32) -> Res<String> {
    Ok(text(blob.interpreter(index)?.id()?)?.to_string())
}

/// Writes `blob` as a TOML configuration that compiles to the same bytes:
/// the tables in the order of the schema, a blank line before each but
/// the first.
pub fn dump(blob: &Blob<'_>) -> Res<String> {
    let mut doc = DocumentMut::new();
    doc["defaults"] = Item::Table(defaults(blob)?);
    let muvm = text(blob.muvm()?)?;
    if !muvm.is_empty() {
        let mut table = Table::new();
        table["path"] = value(muvm);
        doc["muvm"] = Item::Table(table);
    }
    doc["interpreters"] = Item::Table(interpreters(blob)?);
    doc["binaries"] = Item::Table(binaries(blob)?);
    let mut tables = ArrayOfTables::new();
    for rule in blob.rules().iter() {
        let rule = rule?;
        let mut table = rule_table(&rule)?;
        table["interpreter"] = value(id_of(blob, rule.interpreter())?);
        tables.push(table);
    }
    doc["rules"] = Item::ArrayOfTables(tables);
    Ok(doc.to_string())
}

/// `[defaults]`.
fn defaults(blob: &Blob<'_>) -> Res<Table> {
    let level = blob.log_level();
    let level = LogLevel::from_code(level)
        .ok_or_else(|| DumpError::Invalid(format!("unknown log level {level}")))?;
    let mut table = Table::new();
    if let Some(default) = blob.default_interpreter() {
        table["interpreter"] = value(id_of(blob, default)?);
    }
    table["log_level"] = value(level.name());
    let helper = text(blob.missing_helper()?)?;
    if !helper.is_empty() {
        table["missing_helper"] = value(helper);
    }
    Ok(table)
}

/// `[interpreters.*]`, under an implicit `[interpreters]`.
fn interpreters(blob: &Blob<'_>) -> Res<Table> {
    let mut tables = Table::new();
    tables.set_implicit(true);
    for interpreter in blob.interpreters().iter() {
        let i = interpreter?;
        let id = text(i.id()?)?;
        let mut table = Table::new();
        let name = text(i.name()?)?;
        if name != id {
            table["name"] = value(name);
        }
        table["path"] = value(text(i.path()?)?);
        let code = i.argv_style_code();
        let style = ArgvStyle::from_code(code)
            .ok_or_else(|| DumpError::Invalid(format!("[interpreters.{id}]: argv style {code}")))?;
        table["argv"] = value(style.name());
        let template = strs(i.template())?;
        if !template.is_empty() || style == ArgvStyle::Custom {
            table["template"] = value(Array::from_iter(template));
        }
        match i.use_muvm() {
            0 => {}
            1 => table["use_muvm"] = value(true),
            n => return invalid(format!("[interpreters.{id}]: use_muvm {n}")),
        }
        lists_and_hint(blob, &i, id, &mut table)?;
        tables[id] = Item::Table(table);
    }
    Ok(tables)
}

/// The rest of interpreter `i` (whose ID is `id`): `required_paths`,
/// `fallback` (its chain after itself), `env` and `install_hint`.
fn lists_and_hint(
    blob: &Blob<'_>,
    i: &Interpreter<'_, '_>,
    id: &str,
    table: &mut Table,
) -> Res<()> {
    let required = strs(i.required_paths())?;
    if !required.is_empty() {
        table["required_paths"] = value(Array::from_iter(required));
    }
    let chain = i.chain();
    if !chain.is_empty() && chain.get(0)? != i.index() {
        return invalid(format!("[interpreters.{id}]: its chain starts elsewhere"));
    }
    let fallback = chain
        .iter()
        .skip(1)
        .map(|next| id_of(blob, next?))
        .collect::<Res<Array>>()?;
    if !fallback.is_empty() {
        table["fallback"] = value(fallback);
    }
    let env = strs(i.env())?;
    if !env.is_empty() {
        let mut pairs = InlineTable::new();
        for e in &env {
            let Some((k, v)) = e.split_once('=') else {
                return invalid(format!("[interpreters.{id}]: env entry `{e}` has no `=`"));
            };
            pairs.insert(k, v.into());
        }
        table["env"] = value(pairs);
    }
    let hint = text(i.install_hint()?)?;
    if !hint.is_empty() {
        table["install_hint"] = value(hint);
    }
    Ok(())
}

/// `[binaries.*]`, under an implicit `[binaries]`, in the order the
/// compiler interned their paths, with made-up IDs that sort so.
fn binaries(blob: &Blob<'_>) -> Res<Table> {
    let table = blob.overrides();
    let mut entries = Vec::new();
    for bucket in table.iter() {
        let bucket = bucket?;
        if !bucket.is_empty() {
            entries.push(bucket);
        }
    }
    let order = insertion_order(&entries, table.len());
    let width = order.len().to_string().len();
    let mut tables = Table::new();
    tables.set_implicit(true);
    for (n, entry) in order.into_iter().map(|i| &entries[i]).enumerate() {
        let path = text(entry.path()?)?;
        let mut binary = Table::new();
        binary["path"] = value(path);
        binary["interpreter"] = value(id_of(blob, entry.interpreter())?);
        tables[&format!("{:0width$}-{}", n + 1, id_base(path))] = Item::Table(binary);
    }
    Ok(tables)
}

/// The last component of `path`, with what an ID cannot hold unquoted
/// made `_`.
fn id_base(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or("");
    base.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The indices of the override `entries` (of a table of `buckets`) in an
/// order the compiler could have inserted them in: each after the entries
/// its probe passed over (so the table comes out the same), and otherwise
/// by the offset of its path (so the paths are interned in the same order;
/// a path shared with an earlier string has a smaller offset and can go
/// anywhere the table allows).
fn insertion_order(entries: &[Override<'_, '_>], buckets: u32) -> Vec<usize> {
    use std::collections::{BTreeMap, BTreeSet};
    let by_slot: BTreeMap<u32, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.slot(), i))
        .collect();
    let mut before: Vec<usize> = std::vec![0; entries.len()];
    let mut after: Vec<Vec<usize>> = std::vec![Vec::new(); entries.len()];
    for (i, e) in entries.iter().enumerate() {
        let home = blob::override_home(e.hash(), buckets);
        for slot in blob::probe(home, buckets).take_while(|&s| s != e.slot()) {
            if let Some(&j) = by_slot.get(&slot) {
                before[i] += 1;
                after[j].push(i);
            }
        }
    }
    let key = |i: usize| (entries[i].path_offset(), i);
    let mut ready: BTreeSet<(u32, usize)> = (0..entries.len())
        .filter(|&i| before[i] == 0)
        .map(key)
        .collect();
    let mut order = Vec::with_capacity(entries.len());
    while let Some((_, i)) = ready.pop_first() {
        order.push(i);
        for &k in &after[i] {
            before[k] -= 1;
            if before[k] == 0 {
                ready.insert(key(k));
            }
        }
    }
    // A corrupt table can hold a cycle: the rest by offset.
    let mut rest: Vec<usize> = (0..entries.len()).filter(|i| !order.contains(i)).collect();
    rest.sort_by_key(|&i| entries[i].path_offset());
    order.extend(rest);
    order
}

/// The conditions of rule `number` (0-based) as TOML key-value pairs
/// separated by commas, for messages (`binfmtctl explain`); strings as
/// basic strings, which never span lines.
pub fn describe_rule(blob: &Blob<'_>, number: u32) -> Res<String> {
    let table = rule_table(&blob.rules().get(number)?)?;
    let pairs: Vec<String> = table
        .iter()
        .map(|(k, v)| match v.as_str() {
            Some(s) => format!("{k} = {}", quote(s)),
            None => format!("{k} = {v}"),
        })
        .collect();
    Ok(if pairs.is_empty() {
        "no conditions".to_string()
    } else {
        pairs.join(", ")
    })
}

/// The conditions of `rule`: an `arch` shorthand where one fits, then each
/// condition by its key, in [`Condition::ALL`]'s order (the schema's),
/// but those the `arch` stands for.
fn rule_table(rule: &Rule<'_, '_>) -> Res<Table> {
    let n = rule.number() + 1;
    let cond = rule.conditions();
    if cond & !Condition::ALL_BITS != 0 {
        return invalid(format!("[[rules]] #{n}: unknown condition bits {cond:#x}"));
    }
    let mut table = Table::new();
    let arch = arch_of(rule);
    if let Some(a) = arch {
        table["arch"] = value(a.name);
    }
    for c in Condition::of(cond) {
        if arch.is_some_and(|a| stands_for(a, c)) {
            continue;
        }
        table[c.key()] = condition_value(rule, c, n)?;
        if c == Condition::Flags {
            table["flags_mask"] = hex(rule.flags_mask());
        }
    }
    Ok(table)
}

/// The QEMU target whose `arch` shorthand gives `rule`'s machine, class and
/// endian, and its flags if the target has any.
fn arch_of(rule: &Rule<'_, '_>) -> Option<&'static Arch> {
    let header = [Condition::Machine, Condition::Class, Condition::Endian];
    if !header.into_iter().all(|c| rule.has(c)) {
        return None;
    }
    probe::ARCHES.iter().find(|a| {
        u32::from(a.machine) == rule.machine()
            && u32::from(a.class) == rule.class()
            && u32::from(a.endian) == rule.endian()
            && (a.flags_mask == 0
                || (rule.has(Condition::Flags)
                    && a.flags == rule.flags()
                    && a.flags_mask == rule.flags_mask()))
    })
}

/// Whether `arch`, written, stands for condition `c`.
fn stands_for(arch: &Arch, c: Condition) -> bool {
    match c {
        Condition::Machine | Condition::Class | Condition::Endian => true,
        Condition::Flags => arch.flags_mask != 0,
        _ => false,
    }
}

/// What condition `c` of `rule` (number `n`, 1-based) compares with, as
/// its key's value (`flags` without its mask).
fn condition_value(rule: &Rule<'_, '_>, c: Condition, n: u32) -> Res<Item> {
    Ok(match c {
        Condition::Format => match Format::from_code(rule.format()) {
            Some(f) if f != Format::Unknown => value(f.name()),
            _ => return invalid(format!("[[rules]] #{n}: unknown format")),
        },
        Condition::Machine => machine(rule.machine(), n)?,
        Condition::Class => match u8::try_from(rule.class()) {
            Ok(probe::ELFCLASS32) => value(32),
            Ok(probe::ELFCLASS64) => value(64),
            _ => return invalid(format!("[[rules]] #{n}: class {}", rule.class())),
        },
        Condition::Endian => match u8::try_from(rule.endian()) {
            Ok(probe::ELFDATA2LSB) => value("little"),
            Ok(probe::ELFDATA2MSB) => value("big"),
            _ => return invalid(format!("[[rules]] #{n}: endian {}", rule.endian())),
        },
        Condition::Osabi => value(i64::from(rule.osabi())),
        Condition::Flags => hex(rule.flags()),
        Condition::Interp => value(text(rule.interp_glob()?)?),
        Condition::Path => value(text(rule.path_glob()?)?),
        Condition::PeMachine => pe_machine(rule.pe_machine(), n)?,
        Condition::Dotnet => match rule.dotnet() {
            d @ (0 | 1) => value(d == 1),
            d => return invalid(format!("[[rules]] #{n}: dotnet {d}")),
        },
    })
}

/// ELF machine `m`: by name when the name means it, else its number.
fn machine(m: u32, n: u32) -> Res<Item> {
    let Ok(m) = u16::try_from(m) else {
        return invalid(format!("[[rules]] #{n}: machine {m}"));
    };
    Ok(
        match probe::machine_name(m).filter(|&name| probe::machine_by_name(name) == Some(m)) {
            Some(name) => value(name),
            None => value(i64::from(m)),
        },
    )
}

/// PE machine `m`: by name when it has one, else in hexadecimal.
fn pe_machine(m: u32, n: u32) -> Res<Item> {
    let Ok(m) = u16::try_from(m) else {
        return invalid(format!("[[rules]] #{n}: PE machine {m}"));
    };
    Ok(match probe::pe_machine_name(m) {
        Some(name) => value(name),
        None => hex(u32::from(m)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{compile, Config};
    use std::fmt::Write;

    fn round_trip(name: &str, toml: &str) {
        let first = compile(&Config::parse(name, toml).unwrap()).unwrap();
        let text = dump(&Blob::open(&first).unwrap()).unwrap();
        let second = compile(&Config::parse("dump", &text).unwrap_or_else(|e| {
            panic!("{name}: the dump does not parse: {e}\n{text}");
        }))
        .unwrap_or_else(|e| panic!("{name}: the dump does not compile: {e}\n{text}"));
        assert!(
            first == second,
            "{name}: the dump compiles differently:\n{text}"
        );
        // And the dump of the dump is the dump.
        assert_eq!(dump(&Blob::open(&second).unwrap()).unwrap(), text);
    }

    #[test]
    fn default_config_round_trips() {
        let toml = include_str!("../../../data/binfmt-dispatcher.toml");
        round_trip("data/binfmt-dispatcher.toml", toml);
    }

    #[test]
    fn every_key_round_trips() {
        round_trip("every-key", EVERY_KEY);
    }

    #[test]
    fn empty_config_round_trips() {
        round_trip("empty", "");
    }

    #[test]
    fn many_colliding_and_shared_override_paths_round_trip() {
        let mut toml = std::string::String::new();
        for i in 0..100 {
            let _ = write!(toml, "[interpreters.i{i}]\npath = \"/usr/bin/i{i}\"\n");
        }
        // IDs in an order unrelated to the paths'; half of the paths are
        // strings interned before the overrides (interpreters' paths).
        for n in 0..250 {
            let path = match n {
                0..100 => format!("/usr/bin/i{}", (n * 13) % 100),
                _ => format!("/games/{}/bin", (n * 7919) % 1000),
            };
            let id = format!("id{}", (n * 37) % 251);
            let _ = write!(
                toml,
                "[binaries.{id}]\npath = \"{path}\"\ninterpreter = \"i{}\"\n",
                n % 100
            );
        }
        round_trip("many", &toml);
    }

    #[test]
    fn the_dump_reads_like_a_written_file() {
        let toml = r#"
[interpreters.fex]
path = "/usr/bin/FEXInterpreter"
required_paths = ["/etc/fex \"quoted\"", "/etc/fex"]
env = { FEX_TSOENABLED = "1", "ODD KEY" = "a=b" }
install_hint = "Install FEX-Emu:\n\tdnf install fex-emu"
[binaries.game]
path = "/home/ann/Games/game.x86_64"
interpreter = "fex"
[[rules]]
machine = 4660
flags = 0x20
flags_mask = 0x30
interpreter = "fex"
"#;
        let blob = compile(&Config::parse("t", toml).unwrap()).unwrap();
        let expected = r#"[defaults]
log_level = "warn"

[interpreters.fex]
path = "/usr/bin/FEXInterpreter"
argv = "fex"
required_paths = ['/etc/fex "quoted"', "/etc/fex"]
env = { FEX_TSOENABLED = "1", "ODD KEY" = "a=b" }
install_hint = """
Install FEX-Emu:
\tdnf install fex-emu"""

[binaries.1-game_x86_64]
path = "/home/ann/Games/game.x86_64"
interpreter = "fex"

[[rules]]
machine = 4660
flags = 0x20
flags_mask = 0x30
interpreter = "fex"
"#;
        assert_eq!(dump(&Blob::open(&blob).unwrap()).unwrap(), expected);
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
        assert_eq!(quote("'\u{7f}"), "\"'\\u007F\"");
    }

    /// A configuration that uses every key (also the version 1 format's
    /// test, and binfmtctl's).
    pub(crate) const EVERY_KEY: &str = include_str!("../tests/v1/every-key.toml");
}

//! A blob back to TOML that compiles to the same bytes (`binfmtctl dump`).
//!
//! Reads the blob only through [`Blob`]'s reader. What the blob does not
//! keep is made up so that it compiles the same: `[binaries.*]` get IDs
//! (`NN-NAME`) that sort in the order the compiler laid them out, rules are
//! written with the conditions they compiled to (an `arch` shorthand where
//! one fits), and each interpreter's `fallback` is its flattened chain,
//! which compiles to the same chain unless fallbacks form a cycle.
//!
//! The text is a toml_edit document as toml_edit formats it: a blank line
//! before every table but the first, strings in double quotes unless they
//! hold quotes or backslashes (then single) or line breaks (then triple);
//! flags and masks in hexadecimal.

use std::fmt;
use std::format;
use std::string::{String, ToString};
use std::vec::Vec;

use binfmt_dispatcher_core::blob::{header, interp, override_bucket, rule, Blob, BlobError, NONE};
use binfmt_dispatcher_core::decide::{Cond, LogLevel};
use binfmt_dispatcher_core::launch::ArgvStyle;
use binfmt_dispatcher_core::probe::{self, Format};
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

fn text(bytes: &[u8]) -> Res<&str> {
    core::str::from_utf8(bytes).map_err(|_| DumpError::Invalid("a string is not UTF-8".to_string()))
}

/// `n` in hexadecimal: flags and masks are bit patterns.
fn hex(n: u32) -> Item {
    let hex: Value = format!("{n:#x}")
        .parse()
        .expect("a hexadecimal integer is a TOML value");
    value(hex)
}

/// The strings of a `Str` array.
fn strs(blob: &Blob<'_>, record: u32, field: usize) -> Res<Vec<String>> {
    let a = blob.array(record, field)?;
    (0..a.count)
        .map(|i| Ok(text(blob.str(a.off + i * 8, 0)?)?.to_string()))
        .collect()
}

/// The ID of interpreter `index`.
fn id_of(blob: &Blob<'_>, index: u32) -> Res<String> {
    let record = blob.record(blob.header_array(header::INTERPRETERS), index, interp::LEN)?;
    Ok(text(blob.str(record, interp::ID)?)?.to_string())
}

/// Writes `blob` as a TOML configuration that compiles to the same bytes:
/// the tables in the order of the schema, a blank line before each but
/// the first.
pub fn dump(blob: &Blob<'_>) -> Res<String> {
    let mut doc = DocumentMut::new();
    doc["defaults"] = Item::Table(defaults(blob)?);
    let muvm = text(blob.str(0, header::MUVM)?)?;
    if !muvm.is_empty() {
        let mut table = Table::new();
        table["path"] = value(muvm);
        doc["muvm"] = Item::Table(table);
    }
    doc["interpreters"] = Item::Table(interpreters(blob)?);
    doc["binaries"] = Item::Table(binaries(blob)?);
    let rules = blob.header_array(header::RULES);
    let mut tables = ArrayOfTables::new();
    for n in 0..rules.count {
        let r = blob.record(rules, n, rule::LEN)?;
        let mut table = rule_table(blob, r, n + 1)?;
        table["interpreter"] = value(id_of(blob, blob.field(r, rule::INTERPRETER)?)?);
        tables.push(table);
    }
    doc["rules"] = Item::ArrayOfTables(tables);
    Ok(doc.to_string())
}

/// `[defaults]`.
fn defaults(blob: &Blob<'_>) -> Res<Table> {
    let level = blob.header(header::LOG_LEVEL);
    let level = LogLevel::from_code(level)
        .ok_or_else(|| DumpError::Invalid(format!("unknown log level {level}")))?;
    let mut table = Table::new();
    let default = blob.header(header::DEFAULT);
    if default != NONE {
        table["interpreter"] = value(id_of(blob, default)?);
    }
    table["log_level"] = value(level.name());
    let helper = text(blob.str(0, header::MISSING_HELPER)?)?;
    if !helper.is_empty() {
        table["missing_helper"] = value(helper);
    }
    Ok(table)
}

/// `[interpreters.*]`, under an implicit `[interpreters]`.
fn interpreters(blob: &Blob<'_>) -> Res<Table> {
    let all = blob.header_array(header::INTERPRETERS);
    let mut tables = Table::new();
    tables.set_implicit(true);
    for index in 0..all.count {
        let r = blob.record(all, index, interp::LEN)?;
        let id = text(blob.str(r, interp::ID)?)?;
        let mut table = Table::new();
        let name = text(blob.str(r, interp::NAME)?)?;
        if name != id {
            table["name"] = value(name);
        }
        table["path"] = value(text(blob.str(r, interp::PATH)?)?);
        let code = blob.field(r, interp::ARGV_STYLE)?;
        let style = ArgvStyle::from_code(code)
            .ok_or_else(|| DumpError::Invalid(format!("[interpreters.{id}]: argv style {code}")))?;
        table["argv"] = value(style.name());
        let template = strs(blob, r, interp::TEMPLATE)?;
        if !template.is_empty() || style == ArgvStyle::Custom {
            table["template"] = value(Array::from_iter(template));
        }
        match blob.field(r, interp::USE_MUVM)? {
            0 => {}
            1 => table["use_muvm"] = value(true),
            n => return invalid(format!("[interpreters.{id}]: use_muvm {n}")),
        }
        lists_and_hint(blob, r, index, id, &mut table)?;
        tables[id] = Item::Table(table);
    }
    Ok(tables)
}

/// The rest of interpreter `index` (at `r`): `required_paths`,
/// `fallback` (its chain after itself), `env` and `install_hint`.
fn lists_and_hint(blob: &Blob<'_>, r: u32, index: u32, id: &str, table: &mut Table) -> Res<()> {
    let required = strs(blob, r, interp::REQUIRED_PATHS)?;
    if !required.is_empty() {
        table["required_paths"] = value(Array::from_iter(required));
    }
    let chain = blob.array(r, interp::CHAIN)?;
    if chain.count > 0 && blob.u32(chain.off)? != index {
        return invalid(format!("[interpreters.{id}]: its chain starts elsewhere"));
    }
    let fallback = (1..chain.count)
        .map(|i| id_of(blob, blob.u32(chain.off + i * 4)?))
        .collect::<Res<Array>>()?;
    if !fallback.is_empty() {
        table["fallback"] = value(fallback);
    }
    let env = strs(blob, r, interp::ENV)?;
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
    let hint = text(blob.str(r, interp::INSTALL_HINT)?)?;
    if !hint.is_empty() {
        table["install_hint"] = value(hint);
    }
    Ok(())
}

/// `[binaries.*]`, under an implicit `[binaries]`, in the order the
/// compiler interned their paths, with made-up IDs that sort so.
fn binaries(blob: &Blob<'_>) -> Res<Table> {
    let table = blob.header_array(header::OVERRIDES);
    let mut binaries = Vec::new();
    for slot in 0..table.count {
        let b = blob.record(table, slot, override_bucket::LEN)?;
        if blob.field(b, override_bucket::HASH)? == 0 {
            continue;
        }
        let at = blob.array(b, override_bucket::PATH)?.off;
        let path = text(blob.str(b, override_bucket::PATH)?)?;
        let interpreter = id_of(blob, blob.field(b, override_bucket::INTERPRETER)?)?;
        binaries.push((
            at,
            path,
            interpreter,
            slot,
            blob.field(b, override_bucket::HASH)?,
        ));
    }
    let binaries = insertion_order(binaries, table.count);
    let width = binaries.len().to_string().len();
    let mut tables = Table::new();
    tables.set_implicit(true);
    for (n, (_, path, interpreter, _, _)) in binaries.into_iter().enumerate() {
        let base: String = path
            .rsplit('/')
            .next()
            .unwrap_or("")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mut entry = Table::new();
        entry["path"] = value(path);
        entry["interpreter"] = value(interpreter);
        tables[&format!("{:0width$}-{base}", n + 1)] = Item::Table(entry);
    }
    Ok(tables)
}

/// The override entries `(path offset, path, interpreter, slot, hash)` in
/// an order the compiler could have inserted them in: each after the
/// entries its linear probe passed over (so the table comes out the same),
/// and otherwise by the offset of its path (so the paths are interned in
/// the same order; a path shared with an earlier string has a smaller
/// offset and can go anywhere the table allows).
#[allow(clippy::type_complexity)]
fn insertion_order<'b>(
    entries: Vec<(u32, &'b str, String, u32, u32)>,
    buckets: u32,
) -> Vec<(u32, &'b str, String, u32, u32)> {
    use std::collections::{BTreeMap, BTreeSet};
    let by_slot: BTreeMap<u32, usize> = entries.iter().enumerate().map(|(i, e)| (e.3, i)).collect();
    let mut before: Vec<usize> = std::vec![0; entries.len()];
    let mut after: Vec<Vec<usize>> = std::vec![Vec::new(); entries.len()];
    for (i, e) in entries.iter().enumerate() {
        let mut slot = e.4 & buckets.wrapping_sub(1);
        while slot != e.3 {
            if let Some(&j) = by_slot.get(&slot) {
                before[i] += 1;
                after[j].push(i);
            }
            slot = (slot + 1) & buckets.wrapping_sub(1);
        }
    }
    let mut ready: BTreeSet<(u32, usize)> = (0..entries.len())
        .filter(|&i| before[i] == 0)
        .map(|i| (entries[i].0, i))
        .collect();
    let mut order = Vec::with_capacity(entries.len());
    while let Some((_, i)) = ready.pop_first() {
        order.push(i);
        for &k in &after[i] {
            before[k] -= 1;
            if before[k] == 0 {
                ready.insert((entries[k].0, k));
            }
        }
    }
    // A corrupt table can hold a cycle: the rest by offset.
    let mut rest: Vec<usize> = (0..entries.len()).filter(|i| !order.contains(i)).collect();
    rest.sort_by_key(|&i| entries[i].0);
    order.extend(rest);
    let mut slots: Vec<Option<(u32, &'b str, String, u32, u32)>> =
        entries.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// The conditions of rule `number` (0-based) as TOML key-value pairs
/// separated by commas, for messages (`binfmtctl explain`); strings as
/// basic strings, which never span lines.
pub fn describe_rule(blob: &Blob<'_>, number: u32) -> Res<String> {
    let r = blob.record(blob.header_array(header::RULES), number, rule::LEN)?;
    let table = rule_table(blob, r, number + 1)?;
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

/// The conditions of the rule at `r` (number `n`, 1-based).
fn rule_table(blob: &Blob<'_>, r: u32, n: u32) -> Res<Table> {
    let cond = blob.field(r, rule::CONDITIONS)?;
    if cond & !Cond::ALL != 0 {
        return invalid(format!("[[rules]] #{n}: unknown condition bits {cond:#x}"));
    }
    let has = |bit| cond & bit != 0;
    let field = |f| blob.field(r, f);
    let mut table = Table::new();
    let flags_done = header_conditions(blob, r, n, cond, &mut table)?;
    if has(Cond::OSABI) {
        table["osabi"] = value(i64::from(field(rule::OSABI)?));
    }
    if has(Cond::FLAGS) && !flags_done {
        table["flags"] = hex(field(rule::FLAGS)?);
        table["flags_mask"] = hex(field(rule::FLAGS_MASK)?);
    }
    if has(Cond::INTERP) {
        table["interp"] = value(text(blob.str(r, rule::INTERP_GLOB)?)?);
    }
    if has(Cond::PATH) {
        table["path"] = value(text(blob.str(r, rule::PATH_GLOB)?)?);
    }
    if has(Cond::PE_MACHINE) {
        let m = field(rule::PE_MACHINE)?;
        let m = u16::try_from(m)
            .map_err(|_| DumpError::Invalid(format!("[[rules]] #{n}: PE machine {m}")))?;
        table["pe_machine"] = match probe::pe_machine_name(m) {
            Some(name) => value(name),
            None => hex(u32::from(m)),
        };
    }
    if has(Cond::DOTNET) {
        match field(rule::DOTNET)? {
            d @ (0 | 1) => table["dotnet"] = value(d == 1),
            d => return invalid(format!("[[rules]] #{n}: dotnet {d}")),
        }
    }
    Ok(table)
}

/// The rule's conditions on the ELF header (an `arch` shorthand where one
/// fits, else `machine`, `class` and `endian`) and its `format`, into
/// `table`. True when the `arch` written stands for the flags too.
fn header_conditions(blob: &Blob<'_>, r: u32, n: u32, cond: u32, table: &mut Table) -> Res<bool> {
    let has = |bit| cond & bit != 0;
    let field = |f| blob.field(r, f);
    let (machine, class, endian) = (
        field(rule::MACHINE)?,
        field(rule::CLASS)?,
        field(rule::ENDIAN)?,
    );
    let (flags, mask) = (field(rule::FLAGS)?, field(rule::FLAGS_MASK)?);
    let mut arch = None;
    if has(Cond::MACHINE) && has(Cond::CLASS) && has(Cond::ENDIAN) {
        let fits = |a: &&probe::Arch| {
            u32::from(a.machine) == machine
                && u32::from(a.class) == class
                && u32::from(a.endian) == endian
                && (a.flags_mask == 0
                    || (has(Cond::FLAGS) && a.flags == flags && a.flags_mask == mask))
        };
        arch = probe::ARCHES.iter().find(fits);
    }
    if let Some(a) = arch {
        table["arch"] = value(a.name);
    }
    if has(Cond::FORMAT) {
        match Format::from_code(field(rule::FORMAT)?) {
            Some(f) if f != Format::Unknown => table["format"] = value(f.name()),
            _ => return invalid(format!("[[rules]] #{n}: unknown format")),
        }
    }
    if arch.is_none() {
        elf_conditions(n, cond, (machine, class, endian), table)?;
    }
    Ok(arch.is_some_and(|a| a.flags_mask != 0))
}

/// `machine` (by name when the name means it), `class` and `endian`.
fn elf_conditions(n: u32, cond: u32, header: (u32, u32, u32), table: &mut Table) -> Res<()> {
    let (machine, class, endian) = header;
    if cond & Cond::MACHINE != 0 {
        let m = u16::try_from(machine)
            .map_err(|_| DumpError::Invalid(format!("[[rules]] #{n}: machine {machine}")))?;
        table["machine"] =
            match probe::machine_name(m).filter(|&name| probe::machine_by_name(name) == Some(m)) {
                Some(name) => value(name),
                None => value(i64::from(m)),
            };
    }
    if cond & Cond::CLASS != 0 {
        table["class"] = match u8::try_from(class) {
            Ok(probe::ELFCLASS32) => value(32),
            Ok(probe::ELFCLASS64) => value(64),
            _ => return invalid(format!("[[rules]] #{n}: class {class}")),
        };
    }
    if cond & Cond::ENDIAN != 0 {
        table["endian"] = match u8::try_from(endian) {
            Ok(probe::ELFDATA2LSB) => value("little"),
            Ok(probe::ELFDATA2MSB) => value("big"),
            _ => return invalid(format!("[[rules]] #{n}: endian {endian}")),
        };
    }
    Ok(())
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

    /// A configuration that uses every key.
    pub(crate) const EVERY_KEY: &str = r#"
[defaults]
interpreter = "fex"
log_level = "debug"
missing_helper = "/usr/libexec/binfmt-dispatcher/missing-interpreter"

[muvm]
path = "/usr/bin/muvm"

[interpreters.fex]
name = "FEX"
path = "/usr/bin/FEXInterpreter"
required_paths = ["/usr/share/fex-emu/RootFS/default.erofs", "/etc/fex \"quoted\""]
use_muvm = true
fallback = ["box64", "qemu-x86_64"]
argv = "fex"
env = { FEX_TSOENABLED = "1", "ODD KEY" = "a=b" }
install_hint = "Install FEX-Emu:\n\tdnf install fex-emu"

[interpreters.box64]
path = "/usr/bin/box64"
fallback = ["qemu-x86_64"]

[interpreters.qemu-x86_64]
name = "QEMU"
path = "/usr/bin/qemu-x86_64-static"

[interpreters."my emu"]
path = "/opt/emu/bin/emu"
argv = "custom"
template = ["{interpreter}", "--fd={execfd}", "--name", "{argv0}", "{binary}", "{args}"]

[interpreters.odd]
path = "/opt/odd"
argv = "plain"
use_muvm = false
env = {}
required_paths = []

[binaries.zz-steam]
path = "/usr/bin/steam"
interpreter = "fex"

[binaries.aa-game]
path = "/home/ann/Games/game.x86_64"
interpreter = "box64"

[binaries.mm-emu-itself]
path = "/opt/emu/bin/emu"
interpreter = "odd"

[[rules]]
arch = "aarch64"
interpreter = "qemu-x86_64"

[[rules]]
arch = "mipsn32el"
path = "/opt/mips/**"
interpreter = "my emu"

[[rules]]
format = "elf"
machine = "x86_64"
class = 64
endian = "little"
osabi = 3
flags = 0x20
interp = "/lib*/ld-linux-x86-64.so.*"
path = "/home/*/Games/**"
interpreter = "fex"

[[rules]]
machine = 4660
flags = 0x1
flags_mask = 0x3
interpreter = "box64"

[[rules]]
arch = "arm"
flags = 0x5000000
interpreter = "odd"

[[rules]]
path = "**/*.exe"
interpreter = "my emu"

[[rules]]
format = "pe"
pe_machine = "x86_64"
class = 64
dotnet = true
interpreter = "odd"

[[rules]]
pe_machine = 0x1234
dotnet = false
interpreter = "odd"

[[rules]]
format = "java"
interpreter = "odd"

[[rules]]
format = "macho"
class = 64
interpreter = "odd"
"#;
}

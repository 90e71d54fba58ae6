//! A blob back to TOML that compiles to the same bytes (`binfmtctl dump`).
//!
//! Reads the blob only through [`Blob`]'s reader. What the blob does not
//! keep is made up so that it compiles the same: `[binaries.*]` get IDs
//! (`NN-NAME`) that sort in the order the compiler laid them out, rules are
//! written with the conditions they compiled to (an `arch` shorthand where
//! one fits), and each interpreter's `fallback` is its flattened chain,
//! which compiles to the same chain unless fallbacks form a cycle.

use std::fmt::{self, Write};
use std::format;
use std::string::{String, ToString};
use std::vec::Vec;

use binfmt_dispatcher_core::blob::{header, interp, override_bucket, rule, Blob, BlobError, NONE};
use binfmt_dispatcher_core::decide::{Cond, LogLevel};
use binfmt_dispatcher_core::launch::ArgvStyle;
use binfmt_dispatcher_core::probe::{self, Format};

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

/// `s` as a TOML basic string; its escapes are JSON's too, so JSON output
/// uses it as well.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `s` as a TOML key: bare when it can be.
pub fn key(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        s.to_string()
    } else {
        quote(s)
    }
}

fn text(bytes: &[u8]) -> Res<&str> {
    core::str::from_utf8(bytes).map_err(|_| DumpError::Invalid("a string is not UTF-8".to_string()))
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// The strings of a `Str` array.
fn strs(blob: &Blob<'_>, record: u32, field: usize) -> Res<Vec<String>> {
    let a = blob.array(record, field)?;
    (0..a.count)
        .map(|i| Ok(text(blob.str(a.off + i * 8, 0)?)?.to_string()))
        .collect()
}

/// Writes `blob` as a TOML configuration that compiles to the same bytes.
pub fn dump(blob: &Blob<'_>) -> Res<String> {
    let mut out = String::new();
    let all = blob.header_array(header::INTERPRETERS);
    let id_of = |index: u32| -> Res<String> {
        let record = blob.record(all, index, interp::LEN)?;
        Ok(text(blob.str(record, interp::ID)?)?.to_string())
    };

    // [defaults]
    let level = blob.header(header::LOG_LEVEL);
    let level = LogLevel::from_code(level)
        .ok_or_else(|| DumpError::Invalid(format!("unknown log level {level}")))?;
    out.push_str("[defaults]\n");
    let default = blob.header(header::DEFAULT);
    if default != NONE {
        let _ = writeln!(out, "interpreter = {}", quote(&id_of(default)?));
    }
    let _ = writeln!(out, "log_level = {}", quote(level.name()));
    let helper = text(blob.str(0, header::MISSING_HELPER)?)?;
    if !helper.is_empty() {
        let _ = writeln!(out, "missing_helper = {}", quote(helper));
    }

    // [muvm]
    let muvm = text(blob.str(0, header::MUVM)?)?;
    if !muvm.is_empty() {
        let _ = write!(out, "\n[muvm]\npath = {}\n", quote(muvm));
    }

    // [interpreters.*]
    for index in 0..all.count {
        let r = blob.record(all, index, interp::LEN)?;
        let id = text(blob.str(r, interp::ID)?)?;
        let _ = writeln!(out, "\n[interpreters.{}]", key(id));
        let name = text(blob.str(r, interp::NAME)?)?;
        if name != id {
            let _ = writeln!(out, "name = {}", quote(name));
        }
        let _ = writeln!(out, "path = {}", quote(text(blob.str(r, interp::PATH)?)?));
        let code = blob.field(r, interp::ARGV_STYLE)?;
        let style = ArgvStyle::from_code(code)
            .ok_or_else(|| DumpError::Invalid(format!("[interpreters.{id}]: argv style {code}")))?;
        let _ = writeln!(out, "argv = {}", quote(style.name()));
        let template = strs(blob, r, interp::TEMPLATE)?;
        if !template.is_empty() || style == ArgvStyle::Custom {
            let _ = writeln!(out, "template = {}", list(&template));
        }
        match blob.field(r, interp::USE_MUVM)? {
            0 => {}
            1 => out.push_str("use_muvm = true\n"),
            n => return invalid(format!("[interpreters.{id}]: use_muvm {n}")),
        }
        let required = strs(blob, r, interp::REQUIRED_PATHS)?;
        if !required.is_empty() {
            let _ = writeln!(out, "required_paths = {}", list(&required));
        }
        let chain = blob.array(r, interp::CHAIN)?;
        let mut fallback = Vec::new();
        for i in 0..chain.count {
            let member = blob.u32(chain.off + i * 4)?;
            if i == 0 {
                if member != index {
                    return invalid(format!("[interpreters.{id}]: its chain starts elsewhere"));
                }
                continue;
            }
            fallback.push(id_of(member)?);
        }
        if !fallback.is_empty() {
            let _ = writeln!(out, "fallback = {}", list(&fallback));
        }
        let env = strs(blob, r, interp::ENV)?;
        if !env.is_empty() {
            let mut pairs = Vec::new();
            for e in &env {
                let Some((k, v)) = e.split_once('=') else {
                    return invalid(format!("[interpreters.{id}]: env entry `{e}` has no `=`"));
                };
                pairs.push(format!("{} = {}", key(k), quote(v)));
            }
            let _ = writeln!(out, "env = {{ {} }}", pairs.join(", "));
        }
        let hint = text(blob.str(r, interp::INSTALL_HINT)?)?;
        if !hint.is_empty() {
            let _ = writeln!(out, "install_hint = {}", quote(hint));
        }
    }

    // [binaries.*], in the order the compiler interned their paths.
    let table = blob.header_array(header::OVERRIDES);
    let mut binaries = Vec::new();
    for slot in 0..table.count {
        let b = blob.record(table, slot, override_bucket::LEN)?;
        if blob.field(b, override_bucket::HASH)? == 0 {
            continue;
        }
        let at = blob.array(b, override_bucket::PATH)?.off;
        let path = text(blob.str(b, override_bucket::PATH)?)?;
        let interpreter = id_of(blob.field(b, override_bucket::INTERPRETER)?)?;
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
    for (n, (_, path, interpreter, _, _)) in binaries.iter().enumerate() {
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
        let _ = write!(
            out,
            "\n[binaries.{:0width$}-{base}]\npath = {}\ninterpreter = {}\n",
            n + 1,
            quote(path),
            quote(interpreter)
        );
    }

    // [[rules]], in priority order.
    let rules = blob.header_array(header::RULES);
    for n in 0..rules.count {
        let r = blob.record(rules, n, rule::LEN)?;
        out.push_str(&rule_toml(blob, r, n + 1)?);
        let _ = writeln!(
            out,
            "interpreter = {}",
            quote(&id_of(blob.field(r, rule::INTERPRETER)?)?)
        );
    }
    Ok(out)
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
/// separated by commas, for messages (`binfmtctl explain`).
pub fn describe_rule(blob: &Blob<'_>, number: u32) -> Res<String> {
    let r = blob.record(blob.header_array(header::RULES), number, rule::LEN)?;
    let toml = rule_toml(blob, r, number + 1)?;
    let pairs: Vec<&str> = toml
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('['))
        .collect();
    Ok(if pairs.is_empty() {
        "no conditions".to_string()
    } else {
        pairs.join(", ")
    })
}

/// The conditions of the rule at `r` (number `n`, 1-based), as TOML.
fn rule_toml(blob: &Blob<'_>, r: u32, n: u32) -> Res<String> {
    let mut out = "\n[[rules]]\n".to_string();
    let cond = blob.field(r, rule::CONDITIONS)?;
    if cond & !Cond::ALL != 0 {
        return invalid(format!("[[rules]] #{n}: unknown condition bits {cond:#x}"));
    }
    let has = |bit| cond & bit != 0;
    let field = |f| blob.field(r, f);
    let (machine, class, endian) = (
        field(rule::MACHINE)?,
        field(rule::CLASS)?,
        field(rule::ENDIAN)?,
    );
    let (flags, mask) = (field(rule::FLAGS)?, field(rule::FLAGS_MASK)?);
    let mut flags_done = false;
    let mut arch_done = false;
    if has(Cond::MACHINE) && has(Cond::CLASS) && has(Cond::ENDIAN) {
        let fits = |a: &&probe::Arch| {
            u32::from(a.machine) == machine
                && u32::from(a.class) == class
                && u32::from(a.endian) == endian
                && (a.flags_mask == 0
                    || (has(Cond::FLAGS) && a.flags == flags && a.flags_mask == mask))
        };
        if let Some(a) = probe::ARCHES.iter().find(fits) {
            let _ = writeln!(out, "arch = {}", quote(a.name));
            arch_done = true;
            flags_done = a.flags_mask != 0;
        }
    }
    if has(Cond::FORMAT) {
        match Format::from_code(field(rule::FORMAT)?) {
            Some(f) if f != Format::Unknown => {
                let _ = writeln!(out, "format = {}", quote(f.name()));
            }
            _ => return invalid(format!("[[rules]] #{n}: unknown format")),
        }
    }
    if !arch_done {
        if has(Cond::MACHINE) {
            let m = u16::try_from(machine)
                .map_err(|_| DumpError::Invalid(format!("[[rules]] #{n}: machine {machine}")))?;
            match probe::machine_name(m).filter(|&name| probe::machine_by_name(name) == Some(m)) {
                Some(name) => {
                    let _ = writeln!(out, "machine = {}", quote(name));
                }
                None => {
                    let _ = writeln!(out, "machine = {m}");
                }
            }
        }
        if has(Cond::CLASS) {
            match u8::try_from(class) {
                Ok(probe::ELFCLASS32) => out.push_str("class = 32\n"),
                Ok(probe::ELFCLASS64) => out.push_str("class = 64\n"),
                _ => return invalid(format!("[[rules]] #{n}: class {class}")),
            }
        }
        if has(Cond::ENDIAN) {
            match u8::try_from(endian) {
                Ok(probe::ELFDATA2LSB) => out.push_str("endian = \"little\"\n"),
                Ok(probe::ELFDATA2MSB) => out.push_str("endian = \"big\"\n"),
                _ => return invalid(format!("[[rules]] #{n}: endian {endian}")),
            }
        }
    }
    if has(Cond::OSABI) {
        let _ = writeln!(out, "osabi = {}", field(rule::OSABI)?);
    }
    if has(Cond::FLAGS) && !flags_done {
        let _ = writeln!(out, "flags = {flags:#x}\nflags_mask = {mask:#x}");
    }
    if has(Cond::INTERP) {
        let _ = writeln!(
            out,
            "interp = {}",
            quote(text(blob.str(r, rule::INTERP_GLOB)?)?)
        );
    }
    if has(Cond::PATH) {
        let _ = writeln!(
            out,
            "path = {}",
            quote(text(blob.str(r, rule::PATH_GLOB)?)?)
        );
    }
    if has(Cond::PE_MACHINE) {
        let m = field(rule::PE_MACHINE)?;
        let m = u16::try_from(m)
            .map_err(|_| DumpError::Invalid(format!("[[rules]] #{n}: PE machine {m}")))?;
        match probe::pe_machine_name(m) {
            Some(name) => {
                let _ = writeln!(out, "pe_machine = {}", quote(name));
            }
            None => {
                let _ = writeln!(out, "pe_machine = {m:#x}");
            }
        }
    }
    if has(Cond::DOTNET) {
        match field(rule::DOTNET)? {
            0 => out.push_str("dotnet = false\n"),
            1 => out.push_str("dotnet = true\n"),
            d => return invalid(format!("[[rules]] #{n}: dotnet {d}")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{compile, Config};

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
    fn quoting() {
        assert_eq!(quote("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
        assert_eq!(key("fex-i386_2"), "fex-i386_2");
        assert_eq!(key("has space"), "\"has space\"");
        assert_eq!(key(""), "\"\"");
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

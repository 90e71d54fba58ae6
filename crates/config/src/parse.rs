//! One TOML layer into a [`Config`], with every error located.

use std::collections::BTreeMap;
use std::format;
use std::string::{String, ToString};
use std::vec::Vec;

use toml_edit::{Document, Item, Table, Value};

use super::{Binary, Config, ConfigError, Interpreter, Loc, Rule, Spanned};
use binfmt_dispatcher_core::decide::{Condition, LogLevel};
use binfmt_dispatcher_core::launch::{ArgvStyle, PLACEHOLDERS};
use binfmt_dispatcher_core::probe::{self, Format};

/// A parse in progress: the file's name and text, for locations.
struct Layer<'a> {
    file: &'a str,
    text: &'a str,
    /// Byte offsets where lines start, for span -> line:column.
    line_starts: Vec<usize>,
}

type Res<T> = Result<T, ConfigError>;

impl Layer<'_> {
    fn loc(&self, span: Option<std::ops::Range<usize>>) -> Loc {
        let at = span.map_or(0, |s| s.start).min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= at);
        let line_start = self.line_starts[line - 1];
        let column = self
            .text
            .get(line_start..at)
            .map_or(1, |s| s.chars().count() + 1);
        Loc {
            file: self.file.to_string(),
            line,
            column,
        }
    }

    fn error(&self, span: Option<std::ops::Range<usize>>, message: String) -> ConfigError {
        ConfigError {
            loc: self.loc(span),
            message,
        }
    }

    /// Rejects keys of `table` not in `known`.
    fn known_keys(&self, table: &Table, what: &str, known: &[&str]) -> Res<()> {
        for (key, _) in table.iter() {
            if !known.contains(&key) {
                let span = table.key(key).and_then(|k| k.span());
                return Err(self.error(
                    span,
                    format!(
                        "unknown key `{key}` in {what} (known: {})",
                        known.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    fn table<'t>(&self, item: &'t Item, what: &str) -> Res<&'t Table> {
        item.as_table()
            .ok_or_else(|| self.error(item.span(), format!("{what} must be a table")))
    }

    fn string(&self, item: &Item, what: &str) -> Res<Spanned<String>> {
        match item.as_str() {
            Some(s) => Ok(Spanned {
                value: s.to_string(),
                loc: self.loc(item.span()),
            }),
            None => Err(self.error(item.span(), format!("{what} must be a string"))),
        }
    }

    fn path(&self, item: &Item, what: &str) -> Res<Spanned<String>> {
        let s = self.string(item, what)?;
        if !s.value.starts_with('/') {
            return Err(self.error(
                item.span(),
                format!("{what} must be an absolute path, not `{}`", s.value),
            ));
        }
        if s.value.contains('\0') {
            return Err(self.error(item.span(), format!("{what} contains a NUL byte")));
        }
        Ok(s)
    }

    fn bool(&self, item: &Item, what: &str) -> Res<bool> {
        item.as_bool()
            .ok_or_else(|| self.error(item.span(), format!("{what} must be true or false")))
    }

    fn integer(&self, item: &Item, what: &str, max: u64) -> Res<u64> {
        match item.as_integer() {
            Some(i) if (0..=max as i64).contains(&i) => Ok(i as u64),
            _ => Err(self.error(
                item.span(),
                format!("{what} must be an integer from 0 to {max}"),
            )),
        }
    }

    fn strings(&self, item: &Item, what: &str) -> Res<Spanned<Vec<Spanned<String>>>> {
        let array = item.as_array().ok_or_else(|| {
            self.error(item.span(), format!("{what} must be an array of strings"))
        })?;
        let mut out = Vec::new();
        for v in array.iter() {
            match v {
                Value::String(s) => out.push(Spanned {
                    value: s.value().to_string(),
                    loc: self.loc(v.span()),
                }),
                _ => {
                    return Err(self.error(v.span(), format!("{what} must be an array of strings")));
                }
            }
        }
        Ok(Spanned {
            value: out,
            loc: self.loc(item.span()),
        })
    }

    fn paths(&self, item: &Item, what: &str) -> Res<Vec<String>> {
        let list = self.strings(item, what)?;
        let mut out = Vec::new();
        for s in list.value {
            if !s.value.starts_with('/') || s.value.contains('\0') {
                return Err(ConfigError {
                    loc: s.loc,
                    message: format!("{what} must hold absolute paths, not `{}`", s.value),
                });
            }
            out.push(s.value);
        }
        Ok(out)
    }
}

/// Parses one layer.
pub(super) fn layer(file: &str, text: &str) -> Res<Config> {
    let line_starts = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let l = Layer {
        file,
        text,
        line_starts,
    };
    let doc = Document::parse(text).map_err(|e| ConfigError {
        loc: l.loc(e.span()),
        message: format!("TOML syntax error: {}", e.message().trim_end()),
    })?;
    let root = doc.as_table();
    l.known_keys(
        root,
        "the top level",
        &["defaults", "muvm", "interpreters", "binaries", "rules"],
    )?;
    let mut config = Config::default();
    if let Some(item) = root.get("defaults") {
        let t = l.table(item, "[defaults]")?;
        l.known_keys(
            t,
            "[defaults]",
            &["interpreter", "log_level", "missing_helper"],
        )?;
        if let Some(i) = t.get("missing_helper") {
            config.missing_helper = Some(match i.as_str() {
                Some("") => String::new(),
                _ => l.path(i, "[defaults] missing_helper")?.value,
            });
        }
        if let Some(i) = t.get("interpreter") {
            config.default_interpreter = Some(l.string(i, "[defaults] interpreter")?);
        }
        if let Some(i) = t.get("log_level") {
            let s = l.string(i, "[defaults] log_level")?;
            let level = LogLevel::from_name(s.value.as_bytes()).ok_or_else(|| {
                l.error(
                    i.span(),
                    format!(
                        "[defaults] log_level `{}` is not one of off, error, warn, info, debug, trace",
                        s.value
                    ),
                )
            })?;
            config.log_level = Some(level);
        }
    }
    if let Some(item) = root.get("muvm") {
        let t = l.table(item, "[muvm]")?;
        l.known_keys(t, "[muvm]", &["path"])?;
        if let Some(i) = t.get("path") {
            config.muvm_path = Some(l.path(i, "[muvm] path")?.value);
        }
    }
    if let Some(item) = root.get("interpreters") {
        let t = l.table(item, "[interpreters]")?;
        for (id, item) in t.iter() {
            let what = format!("[interpreters.{id}]");
            let loc = l.loc(t.key(id).and_then(|k| k.span()));
            config
                .interpreters
                .insert(id.to_string(), interpreter(&l, item, &what, loc)?);
        }
    }
    if let Some(item) = root.get("binaries") {
        let t = l.table(item, "[binaries]")?;
        for (id, item) in t.iter() {
            let what = format!("[binaries.{id}]");
            let b = l.table(item, &what)?;
            l.known_keys(b, &what, &["path", "interpreter"])?;
            let mut binary = Binary {
                loc: l.loc(t.key(id).and_then(|k| k.span())),
                ..Binary::default()
            };
            if let Some(i) = b.get("path") {
                binary.path = Some(l.path(i, &format!("{what} path"))?);
            }
            if let Some(i) = b.get("interpreter") {
                binary.interpreter = Some(l.string(i, &format!("{what} interpreter"))?);
            }
            config.binaries.insert(id.to_string(), binary);
        }
    }
    if let Some(item) = root.get("rules") {
        let array = item.as_array_of_tables().ok_or_else(|| {
            l.error(
                item.span(),
                "rules must be written as [[rules]] tables".to_string(),
            )
        })?;
        for (n, t) in array.iter().enumerate() {
            config.rules.push(rule(&l, t, n + 1)?);
        }
    }
    Ok(config)
}

fn interpreter(l: &Layer<'_>, item: &Item, what: &str, loc: Loc) -> Res<Interpreter> {
    let t = l.table(item, what)?;
    l.known_keys(
        t,
        what,
        &[
            "name",
            "path",
            "required_paths",
            "use_muvm",
            "fallback",
            "argv",
            "template",
            "env",
            "install_hint",
        ],
    )?;
    let key = |k: &str| format!("{what} {k}");
    let mut i = Interpreter {
        loc,
        ..Interpreter::default()
    };
    if let Some(v) = t.get("name") {
        i.name = Some(l.string(v, &key("name"))?.value);
    }
    if let Some(v) = t.get("path") {
        i.path = Some(l.path(v, &key("path"))?);
    }
    if let Some(v) = t.get("required_paths") {
        i.required_paths = Some(l.paths(v, &key("required_paths"))?);
    }
    if let Some(v) = t.get("use_muvm") {
        i.use_muvm = Some(l.bool(v, &key("use_muvm"))?);
    }
    if let Some(v) = t.get("fallback") {
        i.fallback = Some(l.strings(v, &key("fallback"))?.value);
    }
    if let Some(v) = t.get("argv") {
        let s = l.string(v, &key("argv"))?;
        let names: Vec<&str> = ArgvStyle::NAMES.iter().map(|(n, _)| *n).collect();
        i.argv = Some(ArgvStyle::from_name(&s.value).ok_or_else(|| {
            l.error(
                v.span(),
                format!(
                    "{} `{}` is not one of {}",
                    key("argv"),
                    s.value,
                    names.join(", ")
                ),
            )
        })?);
    }
    if let Some(v) = t.get("template") {
        let list = l.strings(v, &key("template"))?;
        for token in &list.value {
            check_placeholders(&token.value).map_err(|m| ConfigError {
                loc: token.loc.clone(),
                message: format!("{}: {m}", key("template")),
            })?;
        }
        i.template = Some(Spanned {
            value: list.value.into_iter().map(|s| s.value).collect(),
            loc: list.loc,
        });
    }
    if let Some(v) = t.get("env") {
        let table = v
            .as_table_like()
            .ok_or_else(|| l.error(v.span(), format!("{} must be a table", key("env"))))?;
        let mut env = BTreeMap::new();
        for (k, value) in table.iter() {
            let s = l.string(value, &format!("{} {k}", key("env")))?;
            if k.is_empty() || k.contains('=') || k.contains('\0') || s.value.contains('\0') {
                return Err(l.error(
                    value.span(),
                    format!("{}: `{k}` is not a valid variable", key("env")),
                ));
            }
            env.insert(k.to_string(), s.value);
        }
        i.env = Some(env);
    }
    if let Some(v) = t.get("install_hint") {
        i.install_hint = Some(l.string(v, &key("install_hint"))?.value);
    }
    Ok(i)
}

/// Checks that every `{...}` in a template token is a known placeholder.
fn check_placeholders(token: &str) -> Result<(), String> {
    if token.contains('\0') {
        return Err("a template entry contains a NUL byte".to_string());
    }
    if token.contains("{args}") && token != "{args}" {
        return Err("{args} must be a template entry of its own".to_string());
    }
    let mut rest = token;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            return Err(format!("unclosed `{{` in `{token}`"));
        };
        let name = &rest[open..open + close + 1];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder `{name}` (known: {})",
                PLACEHOLDERS.join(", ")
            ));
        }
        rest = &rest[open + close + 1..];
    }
    Ok(())
}

/// The keys of a `[[rules]]` table: the `arch` shorthand, each condition's
/// (`flags` with its `flags_mask`), and `interpreter`.
fn rule_keys() -> Vec<&'static str> {
    let mut keys = std::vec!["arch"];
    for c in Condition::ALL {
        keys.push(c.key());
        if c == Condition::Flags {
            keys.push("flags_mask");
        }
    }
    keys.push("interpreter");
    keys
}

fn rule(l: &Layer<'_>, t: &Table, number: usize) -> Res<Rule> {
    let what = format!("[[rules]] #{number}");
    l.known_keys(t, &what, &rule_keys())?;
    let key = |k: &str| format!("{what} {k}");
    let interpreter = match t.get("interpreter") {
        Some(v) => l.string(v, &key("interpreter"))?,
        None => {
            return Err(l.error(t.span(), format!("{what} has no interpreter")));
        }
    };
    let mut r = Rule {
        interpreter,
        ..Rule::default()
    };
    if let Some(v) = t.get("arch") {
        let s = l.string(v, &key("arch"))?;
        let a = probe::arch_by_name(&s.value).ok_or_else(|| {
            l.error(
                v.span(),
                format!(
                    "{} `{}` is not a QEMU linux-user target name",
                    key("arch"),
                    s.value
                ),
            )
        })?;
        r.arch = Some(s.value);
        r.machine = Some(a.machine);
        r.class = Some(a.class);
        r.endian = Some(a.endian);
        if a.flags_mask != 0 {
            r.flags = Some((a.flags, a.flags_mask));
        }
    }
    if let Some(v) = t.get("format") {
        let s = l.string(v, &key("format"))?;
        r.format = Some(Format::from_name(&s.value).ok_or_else(|| {
            l.error(
                v.span(),
                format!(
                    "{} `{}` is not one of elf, pe, java, macho, jar",
                    key("format"),
                    s.value
                ),
            )
        })?);
    }
    if let Some(v) = t.get("machine") {
        r.machine = Some(match v.as_str() {
            Some(name) => probe::machine_by_name(name).ok_or_else(|| {
                l.error(
                    v.span(),
                    format!(
                        "{} `{name}` is not a known ELF machine name; give its number",
                        key("machine")
                    ),
                )
            })?,
            None => l.integer(v, &key("machine"), u64::from(u16::MAX))? as u16,
        });
    }
    if let Some(v) = t.get("class") {
        r.class = Some(match v.as_integer() {
            Some(32) => probe::ELFCLASS32,
            Some(64) => probe::ELFCLASS64,
            _ => return Err(l.error(v.span(), format!("{} must be 32 or 64", key("class")))),
        });
    }
    if let Some(v) = t.get("endian") {
        r.endian = Some(match v.as_str() {
            Some("little") => probe::ELFDATA2LSB,
            Some("big") => probe::ELFDATA2MSB,
            _ => {
                return Err(l.error(
                    v.span(),
                    format!("{} must be \"little\" or \"big\"", key("endian")),
                ));
            }
        });
    }
    if let Some(v) = t.get("osabi") {
        r.osabi = Some(l.integer(v, &key("osabi"), 255)? as u8);
    }
    match (t.get("flags"), t.get("flags_mask")) {
        (None, None) => {}
        (Some(f), m) => {
            let flags = l.integer(f, &key("flags"), u64::from(u32::MAX))? as u32;
            let mask = match m {
                Some(m) => l.integer(m, &key("flags_mask"), u64::from(u32::MAX))? as u32,
                None => flags,
            };
            r.flags = Some((flags, mask));
        }
        (None, Some(m)) => {
            return Err(l.error(m.span(), format!("{} flags_mask needs flags", what)));
        }
    }
    if let Some(v) = t.get("interp") {
        r.interp = Some(l.string(v, &key("interp"))?.value);
    }
    if let Some(v) = t.get("path") {
        let s = l.string(v, &key("path"))?;
        if !s.value.starts_with('/') && !s.value.starts_with("**") {
            return Err(l.error(
                v.span(),
                format!(
                    "{} must be an absolute path glob, not `{}`",
                    key("path"),
                    s.value
                ),
            ));
        }
        r.path = Some(s.value);
    }
    if let Some(v) = t.get("pe_machine") {
        r.pe_machine = Some(match v.as_str() {
            Some(name) => probe::pe_machine_by_name(name).ok_or_else(|| {
                let known: Vec<&str> = probe::PE_MACHINES.iter().map(|(n, _)| *n).collect();
                l.error(
                    v.span(),
                    format!(
                        "{} `{name}` is not a known PE machine name ({}); give its number",
                        key("pe_machine"),
                        known.join(", ")
                    ),
                )
            })?,
            None => l.integer(v, &key("pe_machine"), u64::from(u16::MAX))? as u16,
        });
    }
    if let Some(v) = t.get("dotnet") {
        r.dotnet = Some(l.bool(v, &key("dotnet"))?);
    }
    // Conditions of different formats can never hold at once.
    let elf_only = r.machine.is_some()
        || r.endian.is_some()
        || r.osabi.is_some()
        || r.flags.is_some()
        || r.interp.is_some();
    let pe_only = r.pe_machine.is_some() || r.dotnet.is_some();
    let clash = match r.format {
        _ if elf_only && pe_only => Some("ELF conditions with PE ones"),
        Some(f) if f != Format::Elf && elf_only => Some("a non-ELF format with ELF conditions"),
        Some(f) if f != Format::Pe && pe_only => Some("a non-PE format with PE conditions"),
        Some(Format::JavaClass | Format::Jar) if r.class.is_some() => Some("java with a class"),
        _ => None,
    };
    if let Some(clash) = clash {
        return Err(l.error(
            t.span(),
            format!("{what} combines {clash}; it can never match"),
        ));
    }
    Ok(r)
}

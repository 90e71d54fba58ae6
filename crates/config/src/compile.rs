//! A merged [`Config`] into blob bytes (the layout is in `binfmt_dispatcher_core::blob`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::format;
use std::string::String;
use std::vec::Vec;

use super::{Config, ConfigError, Interpreter, Loc, Rule};
use binfmt_dispatcher_core::blob::{
    self, header, interp, override_bucket, rule, rule_bucket, Flags, CHUNK, NONE,
};
use binfmt_dispatcher_core::decide::{rule_key_slot, Cond, LogLevel};
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
    let (head, data) = layout(config, &ids, base as u32);

    let mut out = Vec::with_capacity(base + data.len());
    out.extend_from_slice(&blob::MAGIC);
    put(&mut out, blob::VERSION);
    put(&mut out, 0); // the header checksum, set below
    put(&mut out, (base + data.len()) as u32);
    let mut flags = 0;
    if !config.binaries.is_empty() || config.rules.iter().any(|r| r.path.is_some()) {
        flags |= Flags::PATH_MATCHERS;
    }
    if config.rules.iter().any(|r| r.interp.is_some()) {
        flags |= Flags::INTERP_MATCHERS;
    }
    put(&mut out, flags);
    put(&mut out, config.log_level.unwrap_or(LogLevel::Warn) as u32);
    let default = config.default_interpreter.as_ref();
    put(&mut out, default.map_or(NONE, |d| ids[d.value.as_str()]));
    out.extend_from_slice(&head);
    put(&mut out, header::LEN as u32);
    put(&mut out, chunks as u32);
    debug_assert_eq!(out.len(), header::LEN);
    out.resize(base, 0); // the chunk checksums, set by seal
    out.extend_from_slice(&data);
    blob::seal(&mut out);
    Ok(out)
}

fn put(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
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

    /// Interns a string; returns its `(offset, length)`.
    fn str(&mut self, s: &[u8]) -> (u32, u32) {
        if let Some(&off) = self.strings.get(s) {
            return (off, s.len() as u32);
        }
        let off = self.at();
        self.bytes.extend_from_slice(s);
        self.bytes.push(0);
        self.strings.insert(s.to_vec(), off);
        (off, s.len() as u32)
    }

    /// Writes an array of `u32` now; returns its `(offset, count)`.
    fn u32s(&mut self, list: &[u32]) -> (u32, u32) {
        let off = self.at();
        list.iter().for_each(|&v| self.u32(v));
        (off, list.len() as u32)
    }

    /// Interns the strings, then writes the array of their `Str`s.
    fn strs<S: AsRef<[u8]>>(&mut self, list: &[S]) -> (u32, u32) {
        let refs: Vec<(u32, u32)> = list.iter().map(|s| self.str(s.as_ref())).collect();
        let off = self.at();
        for (o, l) in &refs {
            self.u32(*o);
            self.u32(*l);
        }
        (off, list.len() as u32)
    }

    fn pair(&mut self, (a, b): (u32, u32)) {
        self.u32(a);
        self.u32(b);
    }
}

/// The rule's condition bits and fields.
fn conditions(r: &Rule) -> u32 {
    let mut c = 0;
    let mut set = |bit, present: bool| {
        if present {
            c |= bit
        }
    };
    set(Cond::FORMAT, r.format.is_some());
    set(Cond::MACHINE, r.machine.is_some());
    set(Cond::CLASS, r.class.is_some());
    set(Cond::ENDIAN, r.endian.is_some());
    set(Cond::OSABI, r.osabi.is_some());
    set(Cond::FLAGS, r.flags.is_some());
    set(Cond::INTERP, r.interp.is_some());
    set(Cond::PATH, r.path.is_some());
    set(Cond::PE_MACHINE, r.pe_machine.is_some());
    set(Cond::DOTNET, r.dotnet.is_some());
    c
}

/// Lays out the data that follows the chunk table, at offset `base`.
/// Returns the header fields from `MUVM` up to `CHUNKS`, and the data.
fn layout(config: &Config, ids: &BTreeMap<&str, u32>, base: u32) -> (Vec<u8>, Vec<u8>) {
    let mut d = Data {
        base,
        bytes: Vec::new(),
        strings: HashMap::new(),
    };
    let muvm = d.str(config.muvm_path.as_deref().unwrap_or("").as_bytes());
    let helper = d.str(config.missing_helper.as_deref().unwrap_or("").as_bytes());

    // Variable-length parts of the interpreters.
    struct Parts {
        id: (u32, u32),
        name: (u32, u32),
        path: (u32, u32),
        chain: (u32, u32),
        required: (u32, u32),
        env: (u32, u32),
        template: (u32, u32),
        hint: (u32, u32),
    }
    let mut parts = Vec::new();
    for (id, i) in &config.interpreters {
        let env: Vec<String> = i
            .env
            .iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        parts.push(Parts {
            id: d.str(id.as_bytes()),
            name: d.str(i.name.as_deref().unwrap_or(id).as_bytes()),
            path: d.str(i.path.as_ref().map_or("", |p| &p.value).as_bytes()),
            chain: d.u32s(&chain(config, ids, id)),
            required: d.strs(i.required_paths.as_deref().unwrap_or(&[])),
            env: d.strs(&env),
            template: d.strs(i.template.as_ref().map_or(&[][..], |t| &t.value)),
            hint: d.str(i.install_hint.as_deref().unwrap_or("").as_bytes()),
        });
    }

    // Rule strings and the rule index's lists.
    let rule_strs: Vec<((u32, u32), (u32, u32))> = config
        .rules
        .iter()
        .map(|r| {
            (
                d.str(r.interp.as_deref().unwrap_or("").as_bytes()),
                d.str(r.path.as_deref().unwrap_or("").as_bytes()),
            )
        })
        .collect();
    let machines: BTreeSet<u16> = config.rules.iter().filter_map(|r| r.machine).collect();
    // Each list entry: the rule number and the directory its path glob
    // requires, so the trampoline skips most rules without reading them.
    let candidates = |d: &mut Data, keep: &dyn Fn(&Rule) -> bool| {
        let entries: Vec<u32> = config
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| keep(r))
            .flat_map(|(n, r)| {
                let dir = r
                    .path
                    .as_deref()
                    .map_or(&b""[..], |g| blob::glob_dir(g.as_bytes()));
                let hash = if dir.is_empty() {
                    0
                } else {
                    blob::path_hash(dir)
                };
                [n as u32, dir.len() as u32, hash]
            })
            .collect();
        let (off, words) = d.u32s(&entries);
        (off, words / 3)
    };
    let any_list = candidates(&mut d, &|r: &Rule| r.machine.is_none());
    let lists: Vec<(u16, (u32, u32))> = machines
        .iter()
        .map(|&m| {
            (
                m,
                candidates(&mut d, &|r: &Rule| r.machine.is_none_or(|rm| rm == m)),
            )
        })
        .collect();

    // Override paths.
    let overrides: Vec<((u32, u32), u32, u32)> = config
        .binaries
        .values()
        .filter_map(|b| Some((b.path.as_ref()?, b.interpreter.as_ref()?)))
        .map(|(p, i)| {
            (
                d.str(p.value.as_bytes()),
                blob::path_hash(p.value.as_bytes()),
                ids[i.value.as_str()],
            )
        })
        .collect();

    // Fixed-size records.
    let interps_at = d.at();
    for (p, i) in parts.iter().zip(config.interpreters.values()) {
        d.pair(p.id);
        d.pair(p.name);
        d.pair(p.path);
        d.u32(style(i) as u32);
        d.u32(u32::from(i.use_muvm.unwrap_or(false)));
        d.pair(p.chain);
        d.pair(p.required);
        d.pair(p.env);
        d.pair(p.template);
        d.pair(p.hint);
    }
    let rules_at = d.at();
    for (r, (interp_glob, path_glob)) in config.rules.iter().zip(&rule_strs) {
        d.u32(ids[r.interpreter.value.as_str()]);
        d.u32(conditions(r));
        d.u32(r.format.map_or(0, |f| f as u32));
        d.u32(r.machine.map_or(0, u32::from));
        d.u32(r.class.map_or(0, u32::from));
        d.u32(r.endian.map_or(0, u32::from));
        d.u32(r.osabi.map_or(0, u32::from));
        let (flags, mask) = r.flags.unwrap_or((0, 0));
        d.u32(flags);
        d.u32(mask);
        d.pair(*interp_glob);
        d.pair(*path_glob);
        d.u32(r.pe_machine.map_or(0, u32::from));
        d.u32(u32::from(r.dotnet.unwrap_or(false)));
    }
    let index_buckets = if lists.is_empty() {
        0
    } else {
        (lists.len() * 2).next_power_of_two()
    };
    let mut table = std::vec![None; index_buckets];
    for (m, list) in &lists {
        let key = u32::from(*m) + 1;
        let mut slot = rule_key_slot(key, index_buckets as u32) as usize;
        while table[slot].is_some() {
            slot = (slot + 1) % index_buckets;
        }
        table[slot] = Some((key, *list));
    }
    let index_at = d.at();
    for b in &table {
        let (key, list) = b.unwrap_or((0, (0, 0)));
        d.u32(key);
        d.pair(list);
    }
    let override_buckets = if overrides.is_empty() {
        0
    } else {
        (overrides.len() * 2).next_power_of_two()
    };
    let mut table = std::vec![None; override_buckets];
    for o in &overrides {
        let mut slot = o.1 as usize & (override_buckets - 1);
        while table[slot].is_some() {
            slot = (slot + 1) & (override_buckets - 1);
        }
        table[slot] = Some(*o);
    }
    let overrides_at = d.at();
    for b in &table {
        let (path, hash, i) = b.unwrap_or(((0, 0), 0, 0));
        d.u32(hash);
        d.pair(path);
        d.u32(i);
    }

    // The header fields from MUVM on.
    let mut head = Vec::new();
    let mut pair = |(a, b): (u32, u32)| {
        head.extend_from_slice(&a.to_le_bytes());
        head.extend_from_slice(&b.to_le_bytes());
    };
    pair(muvm);
    pair((interps_at, parts.len() as u32));
    pair((rules_at, config.rules.len() as u32));
    pair((index_at, index_buckets as u32));
    pair(any_list);
    pair((overrides_at, override_buckets as u32));
    pair(helper);
    debug_assert_eq!(head.len(), header::CHUNKS - header::MUVM);
    debug_assert_eq!(index_at - rules_at, (config.rules.len() * rule::LEN) as u32);
    debug_assert_eq!(rules_at - interps_at, (parts.len() * interp::LEN) as u32);
    debug_assert_eq!(
        d.at() - overrides_at,
        (override_buckets * override_bucket::LEN) as u32
    );
    debug_assert_eq!(
        overrides_at - index_at,
        (index_buckets * rule_bucket::LEN) as u32
    );
    (head, d.bytes)
}

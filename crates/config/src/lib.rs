//! The configuration: layered TOML files, merged key by key, validated, and
//! compiled into the blob the trampoline reads (see [`compile`]).
//!
//! The schema is the original binfmt-dispatcher's (`[defaults]`, `[muvm]`,
//! `[interpreters.ID]`, `[binaries.ID]`) plus `[[rules]]` and new
//! interpreter keys; `docs/binfmt-dispatcher.toml.example` documents every
//! key. Every error names the file, line and column it comes from.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod compile;
mod dump;
mod files;
mod parse;

pub use compile::compile;
pub use dump::{describe_rule, dump, quote, DumpError};
pub use files::{load_layers, CompileError};

use std::collections::BTreeMap;
use std::fmt;
use std::string::String;
use std::vec::Vec;

use binfmt_dispatcher_core::decide::LogLevel;
use binfmt_dispatcher_core::launch::ArgvStyle;

/// Where in which file something was written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Loc {
    /// The file's name as given.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A configuration error: where and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Where it was found.
    pub loc: Loc,
    /// What is wrong, one line.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.loc, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// A value and where it was written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// Where it came from.
    pub loc: Loc,
}

/// `[interpreters.ID]`: every field optional in a layer; later layers fill
/// or replace fields one by one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interpreter {
    /// `name`: the human name.
    pub name: Option<String>,
    /// `path`: the executable, absolute.
    pub path: Option<Spanned<String>>,
    /// `required_paths`: paths that must exist for it to be used.
    pub required_paths: Option<Vec<String>>,
    /// `use_muvm`: run it under muvm on hosts whose pages are not 4 KiB.
    pub use_muvm: Option<bool>,
    /// `fallback`: interpreters to try when this one cannot be used.
    pub fallback: Option<Vec<Spanned<String>>>,
    /// `argv`: how it is told the guest's argv (guessed from the path).
    pub argv: Option<ArgvStyle>,
    /// `template`: the argv of the `custom` style.
    pub template: Option<Spanned<Vec<String>>>,
    /// `env`: environment variables to set for it.
    pub env: Option<BTreeMap<String, String>>,
    /// `install_hint`: what to tell the user when it is missing.
    pub install_hint: Option<String>,
    /// Where the table was (first) written.
    pub loc: Loc,
}

/// `[binaries.ID]`: one binary sent to one interpreter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Binary {
    /// `path`: the binary's absolute path.
    pub path: Option<Spanned<String>>,
    /// `interpreter`: the interpreter's ID.
    pub interpreter: Option<Spanned<String>>,
    /// Where the table was written.
    pub loc: Loc,
}

/// `[[rules]]`: conditions on the header and path, and an interpreter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rule {
    /// `arch`: a QEMU target name, shorthand for machine, class, endian, flags.
    pub arch: Option<String>,
    /// `format`: `"elf"`, `"pe"`, `"java"`, `"macho"` or `"jar"`.
    pub format: Option<binfmt_dispatcher_core::probe::Format>,
    /// `machine`: ELF `e_machine`, by name or number.
    pub machine: Option<u16>,
    /// `class`: 32 or 64 (stored as ELFCLASS32 / ELFCLASS64); for PE,
    /// PE32 or PE32+.
    pub class: Option<u8>,
    /// `endian`: `"little"` or `"big"` (stored as ELFDATA2LSB / MSB).
    pub endian: Option<u8>,
    /// `osabi`: ELF OS ABI.
    pub osabi: Option<u8>,
    /// `flags` and `flags_mask`: `e_flags & mask == flags`.
    pub flags: Option<(u32, u32)>,
    /// `interp`: glob on the PT_INTERP path.
    pub interp: Option<String>,
    /// `path`: glob on the binary's path.
    pub path: Option<String>,
    /// `pe_machine`: PE COFF `Machine`, by name or number.
    pub pe_machine: Option<u16>,
    /// `dotnet`: whether the PE image must be (or must not be) a .NET
    /// assembly.
    pub dotnet: Option<bool>,
    /// `interpreter`: the interpreter's ID.
    pub interpreter: Spanned<String>,
}

/// A merged configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// `[defaults] interpreter`.
    pub default_interpreter: Option<Spanned<String>>,
    /// `[defaults] log_level`.
    pub log_level: Option<LogLevel>,
    /// `[muvm] path`.
    pub muvm_path: Option<String>,
    /// `[defaults] missing_helper`: executed when no interpreter of the
    /// chain exists; `""` turns an earlier layer's off.
    pub missing_helper: Option<String>,
    /// `[interpreters.*]` by ID.
    pub interpreters: BTreeMap<String, Interpreter>,
    /// `[binaries.*]` by ID.
    pub binaries: BTreeMap<String, Binary>,
    /// `[[rules]]`, highest priority first: a later layer's rules come before
    /// an earlier one's, each layer's in the order written.
    pub rules: Vec<Rule>,
}

impl Config {
    /// Parses one layer. `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Config, ConfigError> {
        parse::layer(file, text)
    }

    /// Parses the layers in order and merges them, later winning key by key.
    pub fn parse_layers<'a>(
        layers: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        for (file, text) in layers {
            config.merge(Config::parse(file, text)?);
        }
        Ok(config)
    }

    /// Lays `later` over `self`.
    pub fn merge(&mut self, later: Config) {
        fn take<T>(slot: &mut Option<T>, later: Option<T>) {
            if later.is_some() {
                *slot = later;
            }
        }
        take(&mut self.default_interpreter, later.default_interpreter);
        take(&mut self.log_level, later.log_level);
        take(&mut self.muvm_path, later.muvm_path);
        take(&mut self.missing_helper, later.missing_helper);
        for (id, new) in later.interpreters {
            let old = self.interpreters.entry(id).or_insert_with(|| Interpreter {
                loc: new.loc.clone(),
                ..Interpreter::default()
            });
            take(&mut old.name, new.name);
            take(&mut old.path, new.path);
            take(&mut old.required_paths, new.required_paths);
            take(&mut old.use_muvm, new.use_muvm);
            take(&mut old.fallback, new.fallback);
            take(&mut old.argv, new.argv);
            take(&mut old.template, new.template);
            take(&mut old.env, new.env);
            take(&mut old.install_hint, new.install_hint);
        }
        for (id, new) in later.binaries {
            let old = self.binaries.entry(id).or_insert_with(|| Binary {
                loc: new.loc.clone(),
                ..Binary::default()
            });
            take(&mut old.path, new.path);
            take(&mut old.interpreter, new.interpreter);
        }
        let mut rules = later.rules;
        rules.append(&mut self.rules);
        self.rules = rules;
    }
}

/// For build scripts: compiles the configuration the programs carry built
/// in, `BINFMT_DISPATCHER_BAKE`'s file (a relative path is taken from the
/// workspace `root`, where `cargo build` is run) or data/binfmt-dispatcher.toml,
/// into `$OUT_DIR/baked.blob`, telling cargo when to do it again. The
/// trampoline and binfmtctl both bake it, so binfmtctl's copy is exactly
/// the trampoline's. Exits 1 with one line on a configuration error.
pub fn bake_for_build_script(root: &std::path::Path) {
    const BAKE_VAR: &str = "BINFMT_DISPATCHER_BAKE";
    println!("cargo:rerun-if-env-changed={BAKE_VAR}");
    let source = match std::env::var_os(BAKE_VAR) {
        Some(path) => root.join(path),
        None => root.join("data/binfmt-dispatcher.toml"),
    };
    println!("cargo:rerun-if-changed={}", source.display());
    let fail = |message: String| -> ! {
        eprintln!("error: cannot bake the default configuration: {message}");
        std::process::exit(1)
    };
    let text = std::fs::read_to_string(&source)
        .unwrap_or_else(|e| fail(format!("{}: {e}", source.display())));
    let blob = Config::parse(&source.display().to_string(), &text)
        .and_then(|c| compile(&c))
        .unwrap_or_else(|e| fail(e.to_string()));
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("baked.blob"), blob).unwrap_or_else(|e| fail(e.to_string()));
}

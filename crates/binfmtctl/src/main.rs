//! binfmtctl: the binfmt-dispatcher companion. It compiles the layered TOML
//! configuration into the cache the trampoline reads, explains what the
//! trampoline would do with a binary, dumps a cache back to TOML, checks
//! the installation, registers the dispatcher in binfmt_misc, runs foreign
//! programs in a private binfmt_misc and measures the dispatch overhead.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use binfmt_dispatcher_config::{self as config, CompileError};
use binfmt_dispatcher_core::blob::Blob;
use clap::{CommandFactory, Parser};

use binfmtctl::cli::{Cli, Command, Shell};
use binfmtctl::locations::Locations;
use binfmtctl::{bench, binfmt_misc, bundle, check, embed, explain, files, locations, register};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = cli.root.clone();
    let loc = Locations::new(cli.root);
    let result = match cli.command {
        // clap keeps --embed and --user apart.
        Command::Compile {
            output,
            configs,
            embed: Some(dispatcher),
            binfmt_misc,
            ..
        } => compile_embedded(&loc, &dispatcher, output, &configs, &binfmt_misc),
        Command::Compile {
            user,
            output,
            configs,
            ..
        } => compile(&loc, user, output, &configs),
        Command::Explain(args) => explain::run(&loc, &args),
        Command::Dump { file } => dump(&loc, file.as_deref()),
        Command::Check(args) => check::run(&loc, &args),
        Command::Bundle(args) => bundle::run(&loc, &args),
        Command::Register(args) => register::register(root.as_deref(), &args),
        Command::Unregister(args) => register::unregister(root.as_deref(), &args),
        Command::Status(args) => register::status(&args),
        Command::BinfmtD(args) => register::binfmt_d(&args),
        Command::Run(args) => register::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Completions { shell } => {
            let shell = match shell {
                Shell::Bash => clap_complete::Shell::Bash,
                Shell::Zsh => clap_complete::Shell::Zsh,
                Shell::Fish => clap_complete::Shell::Fish,
            };
            clap_complete::generate(shell, &mut Cli::command(), "binfmtctl", &mut io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    };
    result.unwrap_or_else(|message| {
        eprintln!("binfmtctl: {message}");
        ExitCode::from(1)
    })
}

/// `binfmtctl compile`.
fn compile(
    loc: &Locations,
    user: bool,
    output: Option<PathBuf>,
    configs: &[PathBuf],
) -> Result<ExitCode, String> {
    if let Some(output) = output {
        let config = config::load_layers(configs).map_err(|e| e.to_string())?;
        let blob = config::compile(&config).map_err(|e| CompileError::Config(e).to_string())?;
        files::write_atomically(&output, &blob)
            .map_err(|e| format!("{}: {e}", output.display()))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut layers = loc.system_layers().map_err(|e| e.to_string())?;
    let output = if user {
        let config = locations::user_config().ok_or(
            "cannot find the user's configuration: neither XDG_CONFIG_HOME nor HOME is set",
        )?;
        let cache = locations::user_cache()
            .ok_or("cannot find the user's cache: neither XDG_CACHE_HOME nor HOME is set")?;
        if !config.is_file() {
            // Without a user layer the system cache says it all, and a user
            // cache would only shadow it (and go stale when it changes).
            remove_stale(&cache, &format!("there is no {}", config.display()))?;
            return Ok(ExitCode::SUCCESS);
        }
        layers.push(config);
        cache
    } else {
        loc.system_cache()
    };
    if layers.is_empty() {
        remove_stale(
            &output,
            &format!(
                "there is no {} nor any {}/*.toml",
                loc.system_config().display(),
                loc.vendor_dir().display()
            ),
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let config = config::load_layers(&layers).map_err(|e| e.to_string())?;
    let blob = config::compile(&config).map_err(|e| CompileError::Config(e).to_string())?;
    files::write_atomically(&output, &blob).map_err(|e| format!("{}: {e}", output.display()))?;
    Ok(ExitCode::SUCCESS)
}

/// `binfmtctl compile --embed`.
fn compile_embedded(
    loc: &Locations,
    dispatcher: &Path,
    output: Option<PathBuf>,
    configs: &[PathBuf],
    binfmt_misc: &Path,
) -> Result<ExitCode, String> {
    let layers = match output {
        Some(_) => configs.to_vec(),
        None => loc.system_layers().map_err(|e| e.to_string())?,
    };
    if layers.is_empty() {
        return Err(format!(
            "there is no {} nor any {}/*.toml: nothing to embed",
            loc.system_config().display(),
            loc.vendor_dir().display()
        ));
    }
    let config = config::load_layers(&layers).map_err(|e| e.to_string())?;
    let blob = config::compile(&config).map_err(|e| CompileError::Config(e).to_string())?;
    let image = fs::read(dispatcher).map_err(|e| format!("{}: {e}", dispatcher.display()))?;
    let embedded = embed::replace(&image, &embed::mark_embedded(blob))
        .map_err(|e| format!("{}: {e}", dispatcher.display()))?;
    let output = output.unwrap_or_else(|| dispatcher.to_path_buf());
    files::write_atomically_mode(&output, &embedded, 0o755)
        .map_err(|e| format!("{}: {e}", output.display()))?;
    binfmt_misc::register_again(binfmt_misc, &output)?;
    Ok(ExitCode::SUCCESS)
}

/// Removes a cache whose sources are gone, saying so.
fn remove_stale(cache: &Path, why: &str) -> Result<(), String> {
    match files::remove(cache) {
        Ok(()) => {
            eprintln!(
                "binfmtctl: {why}: removed {}; the dispatcher uses the next cache or its built-in configuration",
                cache.display()
            );
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            eprintln!("binfmtctl: {why}: nothing to compile");
            Ok(())
        }
        Err(e) => Err(format!("{}: {e}", cache.display())),
    }
}

/// `binfmtctl dump`.
fn dump(loc: &Locations, file: Option<&Path>) -> Result<ExitCode, String> {
    let (bytes, name) = match file {
        Some(f) => {
            let raw = fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?;
            // A trampoline: the configuration built into it.
            let built_in = embed::config_of(&raw).ok().map(<[u8]>::to_vec);
            (built_in.unwrap_or(raw), f.display().to_string())
        }
        None => {
            let trampoline = embed::trampoline_config(None, Path::new(binfmt_misc::DEFAULT_DIR))?;
            let e = match &trampoline {
                Some((path, config)) => locations::effective_with(loc, config, Some(path)),
                None => locations::effective(loc),
            };
            for (path, why) in &e.skipped {
                eprintln!("binfmtctl: skipping {}: {why}", path.display());
            }
            (e.bytes, e.source.describe())
        }
    };
    let blob = Blob::open(&bytes).map_err(|e| format!("{name}: {}", e.describe()))?;
    let text = config::dump(&blob).map_err(|e| format!("{name}: {e}"))?;
    // The promise is that the dump compiles to the same bytes (embedded
    // again, for a trampoline's): check it.
    let same = config::Config::parse("dump", &text)
        .and_then(|c| config::compile(&c))
        .map(|again| match blob.is_embedded() {
            true => embed::mark_embedded(again),
            false => again,
        })
        .is_ok_and(|again| again == bytes);
    let mut out = io::stdout().lock();
    writeln!(out, "# binfmtctl dump of {name}")
        .and_then(|()| out.write_all(text.as_bytes()))
        .map_err(|e| format!("stdout: {e}"))?;
    if !same {
        return Err(format!(
            "{name}: the TOML above does not compile to the same bytes (interpreters whose fallbacks form a cycle?)"
        ));
    }
    Ok(ExitCode::SUCCESS)
}

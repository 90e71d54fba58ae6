//! binfmtctl: the binfmt-dispatcher companion. It compiles the layered TOML
//! configuration into the blob the trampoline reads.

use std::path::PathBuf;
use std::process::ExitCode;

use binfmt_dispatcher::config;
use clap::{Parser, Subcommand};

/// Configure and inspect binfmt-dispatcher.
#[derive(Parser)]
#[command(name = "binfmtctl", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compile TOML configuration files into a cache for the dispatcher.
    Compile {
        /// Where to write the cache (replaced atomically).
        #[arg(long, short)]
        output: PathBuf,
        /// The TOML files, lowest priority first; later files win key by key.
        #[arg(required = true)]
        configs: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Compile { output, configs } => match config::compile_files(&configs, &output) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("binfmtctl: {e}");
                ExitCode::from(1)
            }
        },
    }
}

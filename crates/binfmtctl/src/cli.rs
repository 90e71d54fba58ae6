//! The command line: clap's definitions, from which `--help`, the shell
//! completions and the man pages are all made.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::{bench, binfmt_misc, check, explain, register};

/// Configure and inspect binfmt-dispatcher.
#[derive(Parser)]
#[command(
    name = "binfmtctl",
    version,
    about = "Configure and inspect binfmt-dispatcher: compile its configuration, explain its decisions, register it"
)]
pub struct Cli {
    /// Use the system paths (/usr/lib/binfmt-dispatcher.d, /etc/binfmt-dispatcher.toml,
    /// /var/cache/binfmt-dispatcher) below DIR instead of below /.
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// binfmtctl's commands.
#[derive(Subcommand)]
pub enum Command {
    /// Compile the configuration layers into the cache the dispatcher reads.
    ///
    /// Without --output: /usr/lib/binfmt-dispatcher.d/*.toml (lexical order)
    /// and /etc/binfmt-dispatcher.toml into the system cache; with --user,
    /// also the user's configuration, into the user's cache. With --output:
    /// exactly the named files, in order, into FILE. Later files win key by
    /// key; the cache is replaced atomically; on any error nothing is written.
    Compile {
        /// Also the user's configuration ($XDG_CONFIG_HOME/binfmt-dispatcher/binfmt-dispatcher.toml),
        /// into the user's cache ($XDG_CACHE_HOME/binfmt-dispatcher/binfmt-dispatcher.cache).
        #[arg(long, conflicts_with = "output")]
        user: bool,
        /// Compile exactly CONFIGS into FILE.
        #[arg(long, short, value_name = "FILE", requires = "configs")]
        output: Option<PathBuf>,
        /// The TOML files for --output, lowest priority first.
        #[arg(requires = "output", value_name = "CONFIG")]
        configs: Vec<PathBuf>,
        /// Compile into a copy of the trampoline DISPATCHER instead of a
        /// cache: it carries the configuration in place of its built-in one
        /// and reads no system cache (BINFMT_DISPATCHER_CACHE and the user's
        /// cache still apply). Written over DISPATCHER, or to --output.
        /// binfmt_misc entries that run the file written with the F flag
        /// hold the previous one open: they are registered again.
        #[arg(long, value_name = "DISPATCHER", conflicts_with = "user")]
        embed: Option<PathBuf>,
        /// The binfmt_misc whose F-flag entries --embed registers again.
        #[arg(long, value_name = "DIR", default_value = binfmt_misc::DEFAULT_DIR, requires = "embed")]
        binfmt_misc: PathBuf,
    },
    /// Explain what the dispatcher would do with a binary: its header, the
    /// cache used, the rule that matched, the interpreters tried, the exact
    /// argv and environment.
    Explain(explain::Args),
    /// Print a cache, or the configuration built into a trampoline (by
    /// default the one the dispatcher would use), as TOML that compiles to
    /// the same bytes.
    Dump {
        /// The cache, or trampoline, to print.
        file: Option<PathBuf>,
    },
    /// Check the installation: configuration valid, caches present and up
    /// to date, interpreters installed, the dispatcher registered.
    Check(check::Args),
    /// Register the dispatcher in binfmt_misc for foreign architectures.
    ///
    /// One entry per architecture, binfmt-dispatcher-ARCH, with the magic and
    /// mask of QEMU's and Debian's qemu-user entries; never for the host's own
    /// architectures (binfmt_misc is consulted before the kernel's ELF loader).
    /// Entries of that name that are someone else's are never replaced; the
    /// most recently registered of several entries for the same binaries wins.
    Register(register::RegisterArgs),
    /// Remove the dispatcher's binfmt_misc entries (and only those).
    Unregister(register::UnregisterArgs),
    /// List every binfmt_misc entry, decoded: architecture, state, flags,
    /// interpreter, and whether it is the dispatcher's.
    Status(register::StatusArgs),
    /// Print or write the binfmt.d files that register the dispatcher at boot
    /// (systemd-binfmt), one zz-binfmt-dispatcher-ARCH.conf per architecture.
    #[command(name = "binfmt-d")]
    BinfmtD(register::BinfmtDArgs),
    /// Run a program with the dispatcher registered in a private binfmt_misc
    /// (a user namespace of its own, Linux 6.7 or later): no root, nothing
    /// changes on the machine. Exits with the program's status.
    Run(register::RunArgs),
    /// Measure the dispatch overhead on this kernel: time per exec through the
    /// dispatcher minus time per exec with the final interpreter registered
    /// directly, against the smallest possible trampoline's, in a private
    /// binfmt_misc.
    Bench(bench::Args),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: Shell,
    },
}

/// The shells `completions` writes for.
#[derive(Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

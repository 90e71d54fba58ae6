//! The command line: clap's definitions, from which `--help`, the shell
//! completions and the man pages are all made.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::{bench, binfmt_misc, bundle, check, explain, register};

/// Configure and inspect binfmt-dispatcher: compile its configuration,
/// explain its decisions, register it.
///
/// binfmt-dispatcher is registered in binfmt_misc as the interpreter of
/// foreign binaries and picks, at exec time, the real interpreter (FEX,
/// box64, QEMU, ...) for each. It never parses its TOML configuration: it
/// maps one compiled cache. binfmtctl is to it what ldconfig(8) is to ld.so:
/// it compiles the configuration layers into that cache, and explains,
/// prints and checks what the dispatcher will do.
#[derive(Parser)]
#[command(name = "binfmtctl", version)]
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
    /// and /etc/binfmt-dispatcher.toml into the system cache,
    /// /var/cache/binfmt-dispatcher/binfmt-dispatcher.cache (its directory
    /// created); with --user, also the user's configuration, into the user's
    /// cache. With --output: exactly the named files, in order, into FILE.
    /// Later files win key by key. When there is no layer at all (for
    /// --user: no user file), the cache is removed instead, so that the next
    /// cache or the built-in configuration applies.
    ///
    /// The cache is replaced atomically (temporary file, fsync, rename): a
    /// concurrent exec sees the old cache or the new one. The temporary file
    /// is mode 0600 until it is complete, whatever the umask; missing
    /// directories are created 0755. Run as root, binfmtctl writes and
    /// removes nothing below a directory or symbolic link that is not root's,
    /// or that anyone can write: compile another user's cache as that user.
    /// On any error nothing is written, and the message names the file, line,
    /// column, the key and what is wrong.
    ///
    /// A trampoline that carries the configuration (--embed) spares every
    /// exec a path walk, a mapping and a page fault; it is written
    /// atomically, mode 0755.
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
    ///
    /// The header facts (format, class, byte order, machine, OS ABI, type,
    /// flags, PT_INTERP), the configuration used (found as the dispatcher
    /// finds it, see FILES in binfmtctl(1)), the environment override,
    /// binary override, rule or default that chose the interpreter, each
    /// interpreter of its fallback chain that would be skipped and why (a
    /// required path missing, not found, not executable), the exact program,
    /// argv and environment that would be executed, the messages and the
    /// exit status. It runs the dispatcher's own exec path over a host that
    /// records the exec instead of making it.
    ///
    /// --json prints a JSON object with the keys binary, header, paths,
    /// cache, chosen, reason, tried, runs, exec, bundled, argv, env, execfd,
    /// page_size, secure, status, stderr, missing_helper, helper_exec. Exits
    /// 1 when no interpreter would run (the JSON status is the dispatcher's
    /// own exit status then, 127 or 126).
    ///
    /// Not simulated: an interpreter that exists and is executable but whose
    /// own exec would fail (a missing shared library).
    Explain(explain::Args),
    /// Print a cache, or the configuration built into a trampoline (by
    /// default the one the dispatcher would use), as TOML that compiles to
    /// the same bytes.
    ///
    /// Without FILE, the configuration the dispatcher would use: its
    /// built-in one when there is no cache, a good start for
    /// /etc/binfmt-dispatcher.toml. The IDs of [binaries.*] entries are not
    /// kept in the cache and are made up. Each interpreter's fallback is
    /// written as its flattened chain; dump checks that the TOML compiles to
    /// the same bytes and exits 1 when it does not (fallbacks that form a
    /// cycle).
    Dump {
        /// The cache, or trampoline, to print.
        file: Option<PathBuf>,
    },
    /// Check the installation: configuration valid, caches present and up
    /// to date, interpreters installed, the dispatcher registered.
    ///
    /// That the configuration layers compile; that the system cache (and the
    /// user's, when there is a user file or cache) exists, is not older than
    /// its sources and holds what compile would write now; that no cache is
    /// left without sources; which configured interpreters are installed; and
    /// that binfmt_misc is mounted and enabled with the dispatcher
    /// registered. One line per finding, starting with ok:, warning: or
    /// error:; exits 1 when there is an error. Interpreters that are not
    /// installed are warnings, since fallbacks and optional emulators are
    /// normal; an interpreter that exists but cannot be executed is an error.
    ///
    /// A trampoline that bundles interpreters (binfmtctl bundle): each copy
    /// is compared with the file at its path, an error when they differ (run
    /// `binfmtctl bundle DISPATCHER`), a warning when the file is gone; an
    /// entry that runs it without F is a warning (containers cannot reach
    /// it).
    Check(check::Args),
    /// Register the dispatcher in binfmt_misc for foreign architectures.
    ///
    /// One entry per architecture, binfmt-dispatcher-ARCH, with the magic and
    /// mask of QEMU's and Debian's qemu-user entries; x86 and x86-64 as the
    /// original binfmt-dispatcher registers them (binfmt-dispatcher-x86 and
    /// binfmt-dispatcher-x86_64, FEX's mask); never for the host's own
    /// architectures (binfmt_misc is consulted before the kernel's ELF loader).
    /// Entries of that name that are someone else's are never replaced; the
    /// most recently registered of several entries for the same binaries wins.
    ///
    /// Every entry is checked first: an entry of the same name whose
    /// interpreter is not a binfmt-dispatcher stops everything, nothing
    /// registered; other entries that match the same binaries are named.
    ///
    /// Foreign containers and chroots: with F (in the default flags) the
    /// kernel opens the dispatcher once, here, and runs it in every root,
    /// but the interpreters it picks are looked up in that root, where a
    /// foreign container has none. Bundling them is opt-in, 10 to 13 MB per
    /// architecture: choose the architectures of your containers (often one
    /// or two, such as aarch64 or riscv64, not all), write a trampoline that
    /// bundles their host's interpreters (`binfmtctl bundle DISPATCHER
    /// --output FILE aarch64 riscv64`) and register FILE, with F, for them
    /// (`--interpreter FILE --arch aarch64,riscv64 --persist`). Name FILE
    /// binfmt-dispatcher-SOMETHING: check, status and `bundle
    /// --refresh-registered` know the dispatcher by that name.
    Register(register::RegisterArgs),
    /// Bundle the host's interpreters into a copy of the trampoline, for
    /// foreign containers and chroots that lack them.
    ///
    /// Registered with the F flag (register's default), the kernel opens the
    /// dispatcher once and runs it in every container and chroot, but the
    /// interpreters it picks are looked up in that root, where a foreign
    /// container has none. A bundled trampoline carries static-PIE
    /// interpreters (qemu-ARCH-static) in its own file; when an interpreter
    /// of the chain its configuration picks is missing from the root, it
    /// runs the bundled copy of it from its own mapping, with no file to
    /// open there.
    ///
    /// Each ARCH bundles, of the chain the configuration the dispatcher would
    /// use (see explain) picks for that architecture's binaries, the first
    /// interpreter installed on this host that the trampoline can load: a
    /// static PIE for the trampoline's machine (for an aarch64 trampoline,
    /// loadable with 16 KiB pages too). Each PATH bundles that file. What is
    /// bundled already stays; the same path is replaced by its current file.
    /// Without ARCH or PATH, every bundled interpreter is read again from its
    /// path: run it after they are upgraded (packages do, with
    /// --refresh-registered). --remove drops the bundle, or the bundled
    /// interpreters named by path.
    ///
    /// Each interpreter costs its size (10 to 13 MB for qemu) on disk, and
    /// memory only when it is used. The file is written atomically, mode
    /// 0755, over DISPATCHER or to --output, then binfmt_misc entries that
    /// run it with the F flag are registered again. An interpreter that
    /// cannot be bundled, or a bundled one gone from its path, is named with
    /// the reason, and nothing is written. `check` tells when a bundled copy
    /// differs from the file at its path.
    Bundle(bundle::Args),
    /// Remove the dispatcher's binfmt_misc entries (and only those).
    ///
    /// Other entries are left alone, and entries of ours whose interpreter is
    /// not --interpreter when it is given.
    Unregister(register::UnregisterArgs),
    /// List every binfmt_misc entry, decoded: architecture, state, flags,
    /// interpreter, and whether it is the dispatcher's.
    ///
    /// The architecture is the one whose magic and mask the entry has (with
    /// ~: whose binaries it overlaps); then the enabled entries that compete
    /// for the same binaries, of which the one registered last is used, and
    /// the interpreters each trampoline the entries run bundles.
    Status(register::StatusArgs),
    /// Print or write the binfmt.d files that register the dispatcher at boot
    /// (systemd-binfmt), one zz-ENTRY.conf per architecture (zz-binfmt-dispatcher-ARCH.conf;
    /// x86: zz-binfmt-dispatcher-x86.conf).
    #[command(name = "binfmt-d")]
    BinfmtD(register::BinfmtDArgs),
    /// Run a program with the dispatcher registered in a private binfmt_misc
    /// (a user namespace of its own, Linux 6.7 or later): no root, nothing
    /// changes on the machine. Exits with the program's status (128 + the
    /// signal that killed it).
    ///
    /// The program runs as root of that namespace (itself outside), in a
    /// mount namespace of its own. binfmtctl says why when the kernel
    /// refuses user namespaces. A program the kernel cannot execute (no
    /// entry matches it) gets the kernel's answer in one line and exit
    /// status 126, 127 when it does not exist; it is never run as a shell
    /// script.
    Run(register::RunArgs),
    /// Measure the dispatch overhead on this kernel: time per exec through the
    /// dispatcher minus time per exec with the final interpreter registered
    /// directly, against the smallest possible trampoline's, in a private
    /// binfmt_misc.
    ///
    /// The dispatcher runs with the built-in configuration as the system
    /// cache; the variant embedded runs a dispatcher that carries the same
    /// configuration (compile --embed) and reads no cache file. The
    /// reference, the floor, is the smallest possible trampoline, measured
    /// the same way. Rounds interleave the variants, each pinned to one CPU;
    /// the ratios reported are medians over the rounds. Progress goes to
    /// stderr. x86_64 and aarch64 hosts.
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

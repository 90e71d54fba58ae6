//! The man pages, made by clap_mangen from the definitions in [`crate::cli`]:
//! binfmtctl(1), and binfmtctl-COMMAND(1) for each command, which
//! binfmtctl(1) lists. What clap cannot say (the files, the environment,
//! the exit status, examples) follows as roff written here. The shipped
//! pages in docs/ are these; a test compares them.

use std::io::Write;

use clap::CommandFactory;
use clap_mangen::Man;

use crate::cli::Cli;

/// A man page.
pub struct Page {
    /// Its file name: `binfmtctl.1`, `binfmtctl-compile.1`...
    pub file: String,
    /// Its roff source.
    pub roff: String,
}

/// binfmtctl(1), then one page per command in the order of `--help`.
pub fn pages() -> Vec<Page> {
    // Without clap's `help` command, which has no page for binfmtctl(1) to
    // name.
    let mut cli = Cli::command().disable_help_subcommand(true);
    cli.build();
    let mut pages = vec![page(&cli, BINFMTCTL_SECTIONS)];
    pages.extend(cli.get_subcommands().map(|c| page(c, COMMAND_SECTIONS)));
    pages
}

/// `cmd`'s page: clap_mangen's, then `sections`.
fn page(cmd: &clap::Command, sections: &str) -> Page {
    let name = cmd.get_display_name().unwrap_or(cmd.get_name());
    let man = Man::new(cmd.clone())
        .title(name.to_uppercase())
        .source(format!("binfmt-dispatcher {}", env!("CARGO_PKG_VERSION")))
        .manual("User Commands");
    let mut roff = Vec::new();
    man.render(&mut roff)
        .and_then(|()| roff.write_all(sections.as_bytes()))
        .expect("writing to a Vec does not fail");
    Page {
        file: man.get_filename(),
        roff: String::from_utf8(roff).expect("clap_mangen writes UTF-8"),
    }
}

/// The end of every command's page.
const COMMAND_SECTIONS: &str = r#".SH SEE ALSO
.BR binfmtctl (1),
.BR binfmt-dispatcher.toml (5)
"#;

/// The end of binfmtctl(1).
const BINFMTCTL_SECTIONS: &str = r#".SH FILES
.TP
.I /usr/lib/binfmt-dispatcher.d/*.toml
Packages' configuration fragments.
.TP
.I /etc/binfmt-dispatcher.toml
The administrator's configuration.
.TP
.I $XDG_CONFIG_HOME/binfmt-dispatcher/binfmt-dispatcher.toml
The user's configuration (ignored for setuid binaries).
.TP
.I /var/cache/binfmt-dispatcher/binfmt-dispatcher.cache
The system cache.
.TP
.I $XDG_CACHE_HOME/binfmt-dispatcher/binfmt-dispatcher.cache
The user's cache, compiled from all layers.
.PP
The dispatcher uses the first usable cache of
.BR $BINFMT_DISPATCHER_CACHE ,
the user's and the system's, else its built-in configuration.
.SH ENVIRONMENT
.TP
.B BINFMT_DISPATCHER_CACHE
The cache to use (explain, dump, check, and the dispatcher).
.TP
.B BINFMT_DISPATCHER_INTERPRETER
An interpreter ID to use for one run (explain honours it).
.TP
.BR XDG_CONFIG_HOME ", " XDG_CACHE_HOME ", " HOME
Where the user's files are.
.SH EXIT STATUS
0 on success;
.B check
exits 1 when it found an error,
.B explain
when no interpreter would run (the JSON
.B status
is the dispatcher's own exit status then, 127 or 126); 1 for any other
error, 2 for a usage error.
.SH EXAMPLES
.nf
binfmtctl compile
binfmtctl explain ./game.x86_64 \-\-fullscreen
binfmtctl explain \-\-argv0 ls /usr/aarch64\-linux\-gnu/bin/busybox \-l
binfmtctl dump > /etc/binfmt-dispatcher.toml
binfmtctl check
sudo binfmtctl register \-\-persist
binfmtctl status
binfmtctl run ./busybox\-arm64 uname \-m
.fi
.SH SEE ALSO
.BR binfmt-dispatcher.toml (5),
.BR systemd-binfmt (8),
.BR binfmt.d (5),
.BR ldconfig (8)
"#;

# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_binfmtctl_global_optspecs
    string join \n root= h/help V/version
end

function __fish_binfmtctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_binfmtctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_binfmtctl_using_subcommand
    set -l cmd (__fish_binfmtctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c binfmtctl -n "__fish_binfmtctl_needs_command" -l root -d 'Use the system paths (/usr/lib/binfmt-dispatcher.d, /etc/binfmt-dispatcher.toml, /var/cache/binfmt-dispatcher) below DIR instead of below /' -r -F
complete -c binfmtctl -n "__fish_binfmtctl_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c binfmtctl -n "__fish_binfmtctl_needs_command" -s V -l version -d 'Print version'
complete -c binfmtctl -n "__fish_binfmtctl_needs_command" -f -a "compile" -d 'Compile the configuration layers into the cache the dispatcher reads'
complete -c binfmtctl -n "__fish_binfmtctl_needs_command" -f -a "explain" -d 'Explain what the dispatcher would do with a binary: its header, the cache used, the rule that matched, the interpreters tried, the exact argv and environment'
complete -c binfmtctl -n "__fish_binfmtctl_needs_command" -f -a "dump" -d 'Print a cache, or the configuration built into a trampoline (by default the one the dispatcher would use), as TOML that compiles to the same bytes'
complete -c binfmtctl -n "__fish_binfmtctl_needs_command" -f -a "check" -d 'Check the installation: configuration valid, caches present and up to date, interpreters installed, the dispatcher registered'
complete -c binfmtctl -n "__fish_binfmtctl_needs_command" -f -a "register" -d 'Register the dispatcher in binfmt_misc for foreign architectures'
complete -c binfmtctl -n "__fish_binfmtctl_needs_command" -f -a "bundle" -d 'Bundle the host\'s interpreters into a copy of the trampoline, for foreign containers and chroots that lack them'
complete -c binfmtctl -n "__fish_binfmtctl_needs_command" -f -a "unregister" -d 'Remove the dispatcher\'s binfmt_misc entries (and only those)'
complete -c binfmtctl -n "__fish_binfmtctl_needs_command" -f -a "status" -d 'List every binfmt_misc entry, decoded: architecture, state, flags, interpreter, and whether it is the dispatcher\'s'
complete -c binfmtctl -n "__fish_binfmtctl_needs_command" -f -a "binfmt-d" -d 'Print or write the binfmt.d files that register the dispatcher at boot (systemd-binfmt), one zz-ENTRY.conf per architecture (zz-binfmt-dispatcher-ARCH.conf; x86: zz-binfmt-dispatcher-x86.conf)'
complete -c binfmtctl -n "__fish_binfmtctl_needs_command" -f -a "run" -d 'Run a program with the dispatcher registered in a private binfmt_misc (a user namespace of its own, Linux 6.7 or later): no root, nothing changes on the machine. Exits with the program\'s status (128 + the signal that killed it)'
complete -c binfmtctl -n "__fish_binfmtctl_needs_command" -f -a "bench" -d 'Measure the dispatch overhead on this kernel: time per exec through the dispatcher minus time per exec with the final interpreter registered directly, against the smallest possible trampoline\'s, in a private binfmt_misc'
complete -c binfmtctl -n "__fish_binfmtctl_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c binfmtctl -n "__fish_binfmtctl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand compile" -s o -l output -d 'Compile exactly CONFIGS into FILE' -r -F
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand compile" -l embed -d 'Compile into a copy of the trampoline DISPATCHER instead of a cache: it carries the configuration in place of its built-in one and reads no system cache (BINFMT_DISPATCHER_CACHE and the user\'s cache still apply). Written over DISPATCHER, or to --output. binfmt_misc entries that run the file written with the F flag hold the previous one open: they are registered again' -r -F
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand compile" -l binfmt-misc -d 'The binfmt_misc whose F-flag entries --embed registers again' -r -F
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand compile" -l root -d 'Use the system paths (/usr/lib/binfmt-dispatcher.d, /etc/binfmt-dispatcher.toml, /var/cache/binfmt-dispatcher) below DIR instead of below /' -r -F
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand compile" -l user -d 'Also the user\'s configuration ($XDG_CONFIG_HOME/binfmt-dispatcher/binfmt-dispatcher.toml), into the user\'s cache ($XDG_CACHE_HOME/binfmt-dispatcher/binfmt-dispatcher.cache)'
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand compile" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand explain" -l argv0 -d 'Simulate a registration with the P flag, the caller passing NAME as argv[0]. Without it the guest\'s argv[0] is FILE as given, as without P' -r
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand explain" -l page-size -d 'Simulate a host with this page size, which decides whether `use_muvm` interpreters run under muvm (default: this system\'s)' -r
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand explain" -l execfd -d 'The descriptor binfmt_misc hands the dispatcher with the O flag, or with --no-execfd the one the dispatcher\'s own open of the binary gets: the lowest free, 3 when the caller has only 0, 1 and 2 open' -r
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand explain" -l dispatcher -d 'The trampoline whose built-in configuration applies when no cache does (one written by `compile --embed` carries the system\'s and reads no system cache) [default: the registered one if it carries the system\'s configuration, else binfmtctl\'s copy of the built-in configuration]' -r -F
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand explain" -l root -d 'Use the system paths (/usr/lib/binfmt-dispatcher.d, /etc/binfmt-dispatcher.toml, /var/cache/binfmt-dispatcher) below DIR instead of below /' -r -F
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand explain" -l json -d 'Print JSON instead of text'
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand explain" -l no-execfd -d 'Simulate a registration without the O flag: the dispatcher opens the binary by name'
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand explain" -l secure -d 'Simulate a set-id exec (AT_SECURE: a setuid binary under the C flag): the environment and the caller\'s caches are ignored, the binary is named by its descriptor'
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand explain" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand dump" -l root -d 'Use the system paths (/usr/lib/binfmt-dispatcher.d, /etc/binfmt-dispatcher.toml, /var/cache/binfmt-dispatcher) below DIR instead of below /' -r -F
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand dump" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand check" -l binfmt-misc -d 'Where binfmt_misc is mounted' -r -F
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand check" -l dispatcher -d 'The trampoline in use [default: the registered one if it carries the system\'s configuration, else binfmtctl\'s copy of the built-in configuration]. When it carries the system\'s configuration (`compile --embed`), that, not the system cache, is checked against the layers' -r -F
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand check" -l root -d 'Use the system paths (/usr/lib/binfmt-dispatcher.d, /etc/binfmt-dispatcher.toml, /var/cache/binfmt-dispatcher) below DIR instead of below /' -r -F
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand register" -l arch -d 'Architectures, QEMU target names separated by commas (aarch64,riscv64), or all: every ELF target but those this host runs natively' -r
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand register" -l interpreter -d 'The dispatcher to register [default: binfmt-dispatcher next to binfmtctl, else /usr/bin/binfmt-dispatcher]' -r -F
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand register" -l flags -d 'binfmt_misc flags' -r
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand register" -l host -d 'With --persist --root: the target\'s `uname -m` (none: every format)' -r
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand register" -l binfmt-misc -d 'Where binfmt_misc is mounted' -r -F
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand register" -l root -d 'Use the system paths (/usr/lib/binfmt-dispatcher.d, /etc/binfmt-dispatcher.toml, /var/cache/binfmt-dispatcher) below DIR instead of below /' -r -F
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand register" -l persist -d 'Also write /etc/binfmt.d/zz-ENTRY.conf (zz-binfmt-dispatcher-ARCH.conf), so that systemd-binfmt registers them at boot. With --root DIR: write below DIR only, and register nothing'
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand register" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand bundle" -s o -l output -d 'Write the bundled trampoline to FILE instead of over DISPATCHER' -r -F
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand bundle" -l binfmt-misc -d 'The binfmt_misc whose F-flag entries that run the file written are registered again (with --refresh-registered: whose entries say which trampolines to refresh)' -r -F
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand bundle" -l root -d 'Use the system paths (/usr/lib/binfmt-dispatcher.d, /etc/binfmt-dispatcher.toml, /var/cache/binfmt-dispatcher) below DIR instead of below /' -r -F
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand bundle" -l remove -d 'Drop the bundled interpreters named by path, or without any the whole bundle: the trampoline as `compile --embed` writes it'
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand bundle" -l refresh-registered -d 'Bundle again, in place, every bundled trampoline that enabled binfmt_misc entries run (for package hooks, after an interpreter\'s upgrade). Nothing to do when binfmt_misc is not mounted'
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand bundle" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand unregister" -l arch -d 'Architectures, separated by commas, or all: every entry of ours' -r
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand unregister" -l interpreter -d 'Remove only entries whose interpreter is PATH' -r -F
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand unregister" -l binfmt-misc -d 'Where binfmt_misc is mounted' -r -F
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand unregister" -l root -d 'Use the system paths (/usr/lib/binfmt-dispatcher.d, /etc/binfmt-dispatcher.toml, /var/cache/binfmt-dispatcher) below DIR instead of below /' -r -F
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand unregister" -l persist -d 'Also remove our /etc/binfmt.d files. With --root DIR: below DIR only'
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand unregister" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand status" -l binfmt-misc -d 'Where binfmt_misc is mounted' -r -F
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand status" -l root -d 'Use the system paths (/usr/lib/binfmt-dispatcher.d, /etc/binfmt-dispatcher.toml, /var/cache/binfmt-dispatcher) below DIR instead of below /' -r -F
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand status" -l json -d 'Print JSON'
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand binfmt-d" -l arch -d 'Architectures, QEMU target names separated by commas (aarch64,riscv64), or all: every ELF target but those this host runs natively' -r
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand binfmt-d" -l interpreter -d 'The dispatcher\'s installed path' -r -F
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand binfmt-d" -l flags -d 'binfmt_misc flags' -r
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand binfmt-d" -l host -d 'The `uname -m` of the machine the files are for (none: every format) [default: this machine\'s]' -r
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand binfmt-d" -s o -l output -d 'Write one zz-ENTRY.conf per format into DIR (and remove other zz-binfmt-dispatcher-*.conf there), instead of printing the lines' -r -F
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand binfmt-d" -l root -d 'Use the system paths (/usr/lib/binfmt-dispatcher.d, /etc/binfmt-dispatcher.toml, /var/cache/binfmt-dispatcher) below DIR instead of below /' -r -F
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand binfmt-d" -s h -l help -d 'Print help'
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand run" -l arch -d 'Architectures, QEMU target names separated by commas (aarch64,riscv64), or all: every ELF target but those this host runs natively' -r
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand run" -l interpreter -d 'The dispatcher [default: binfmt-dispatcher next to binfmtctl, else /usr/bin/binfmt-dispatcher]' -r -F
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand run" -l flags -d 'binfmt_misc flags' -r
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand run" -l root -d 'Use the system paths (/usr/lib/binfmt-dispatcher.d, /etc/binfmt-dispatcher.toml, /var/cache/binfmt-dispatcher) below DIR instead of below /' -r -F
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand bench" -l rounds -d 'Interleaved rounds (the median of their ratios is reported)' -r
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand bench" -l execs -d 'Execs of each variant per round' -r
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand bench" -l interpreter -d 'A real final interpreter that runs the foreign exit(0) program (e.g. /usr/bin/qemu-aarch64-static on x86_64) [default: a built-in one that exits at once]' -r -F
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand bench" -l dispatcher -d 'The dispatcher [default: binfmt-dispatcher next to binfmtctl, else /usr/bin/binfmt-dispatcher]' -r -F
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand bench" -l cpu -d 'The CPU to pin to [default: the last one this process may use]' -r
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand bench" -l cache -d 'Also measure the dispatcher with this compiled cache (given as BINFMT_DISPATCHER_CACHE; it must route the foreign files to an interpreter that runs them), as variant dispatcher-STEM; repeatable' -r -F
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand bench" -l env -d 'The environment the foreign programs run with: `inherit`, binfmtctl\'s own (real programs carry one, and every exec copies it), less the dispatcher\'s variables and XDG_CACHE_HOME, with HOME an empty directory so that no user cache applies; or `minimal`, PATH and HOME' -r -f -a "inherit\t'binfmtctl\'s own environment, less what would steer the dispatcher'
minimal\t'PATH and HOME only'"
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand bench" -l root -d 'Use the system paths (/usr/lib/binfmt-dispatcher.d, /etc/binfmt-dispatcher.toml, /var/cache/binfmt-dispatcher) below DIR instead of below /' -r -F
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand bench" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand completions" -l root -d 'Use the system paths (/usr/lib/binfmt-dispatcher.d, /etc/binfmt-dispatcher.toml, /var/cache/binfmt-dispatcher) below DIR instead of below /' -r -F
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand completions" -s h -l help -d 'Print help'
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand help; and not __fish_seen_subcommand_from compile explain dump check register bundle unregister status binfmt-d run bench completions help" -f -a "compile" -d 'Compile the configuration layers into the cache the dispatcher reads'
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand help; and not __fish_seen_subcommand_from compile explain dump check register bundle unregister status binfmt-d run bench completions help" -f -a "explain" -d 'Explain what the dispatcher would do with a binary: its header, the cache used, the rule that matched, the interpreters tried, the exact argv and environment'
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand help; and not __fish_seen_subcommand_from compile explain dump check register bundle unregister status binfmt-d run bench completions help" -f -a "dump" -d 'Print a cache, or the configuration built into a trampoline (by default the one the dispatcher would use), as TOML that compiles to the same bytes'
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand help; and not __fish_seen_subcommand_from compile explain dump check register bundle unregister status binfmt-d run bench completions help" -f -a "check" -d 'Check the installation: configuration valid, caches present and up to date, interpreters installed, the dispatcher registered'
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand help; and not __fish_seen_subcommand_from compile explain dump check register bundle unregister status binfmt-d run bench completions help" -f -a "register" -d 'Register the dispatcher in binfmt_misc for foreign architectures'
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand help; and not __fish_seen_subcommand_from compile explain dump check register bundle unregister status binfmt-d run bench completions help" -f -a "bundle" -d 'Bundle the host\'s interpreters into a copy of the trampoline, for foreign containers and chroots that lack them'
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand help; and not __fish_seen_subcommand_from compile explain dump check register bundle unregister status binfmt-d run bench completions help" -f -a "unregister" -d 'Remove the dispatcher\'s binfmt_misc entries (and only those)'
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand help; and not __fish_seen_subcommand_from compile explain dump check register bundle unregister status binfmt-d run bench completions help" -f -a "status" -d 'List every binfmt_misc entry, decoded: architecture, state, flags, interpreter, and whether it is the dispatcher\'s'
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand help; and not __fish_seen_subcommand_from compile explain dump check register bundle unregister status binfmt-d run bench completions help" -f -a "binfmt-d" -d 'Print or write the binfmt.d files that register the dispatcher at boot (systemd-binfmt), one zz-ENTRY.conf per architecture (zz-binfmt-dispatcher-ARCH.conf; x86: zz-binfmt-dispatcher-x86.conf)'
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand help; and not __fish_seen_subcommand_from compile explain dump check register bundle unregister status binfmt-d run bench completions help" -f -a "run" -d 'Run a program with the dispatcher registered in a private binfmt_misc (a user namespace of its own, Linux 6.7 or later): no root, nothing changes on the machine. Exits with the program\'s status (128 + the signal that killed it)'
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand help; and not __fish_seen_subcommand_from compile explain dump check register bundle unregister status binfmt-d run bench completions help" -f -a "bench" -d 'Measure the dispatch overhead on this kernel: time per exec through the dispatcher minus time per exec with the final interpreter registered directly, against the smallest possible trampoline\'s, in a private binfmt_misc'
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand help; and not __fish_seen_subcommand_from compile explain dump check register bundle unregister status binfmt-d run bench completions help" -f -a "completions" -d 'Print a shell completion script'
complete -c binfmtctl -n "__fish_binfmtctl_using_subcommand help; and not __fish_seen_subcommand_from compile explain dump check register bundle unregister status binfmt-d run bench completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'

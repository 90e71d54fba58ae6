//! Secure mode for real: a setuid-root foreign binary, the dispatcher
//! registered with the C flag, run by an unprivileged user whose
//! environment and user cache name another interpreter.
//!
//! The private binfmt_misc lives in a new user namespace, as in the other
//! tests, but with uids and gids 0..65535 mapped to the same ids outside
//! (written to `uid_map` by the test, which runs as root) instead of root
//! alone: inside it, `setpriv` can become `nobody` (65534), and `nobody`
//! executing a file owned by root with mode 4755 really changes
//! credentials, so the kernel gives the dispatcher `AT_SECURE`. Nothing is
//! registered in the machine's own binfmt_misc, and the system cache under
//! /var/cache is a tmpfs of the test's own mount namespace.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use support::*;

const NOBODY: u32 = 65534;
const SYSTEM_CACHE: &str = "/var/cache/binfmt-dispatcher/binfmt-dispatcher.cache";

/// An interpreter section running the reporter as `REPORTER TAG`.
fn tagged(id: &str, tag: &str) -> String {
    format!(
        "[interpreters.{id}]\npath = \"{}\"\nargv = \"custom\"\ntemplate = [\"{{interpreter}}\", \"{tag}\"]\n",
        reporter().display()
    )
}

/// A cache whose aarch64 rule gives `TAG`, and whose interpreter `evil`
/// gives `EVIL-TAG` (what `BINFMT_DISPATCHER_INTERPRETER=evil` would pick).
fn cache(dir: &Path, tag: &str) -> std::path::PathBuf {
    let toml = format!(
        "{}{}[[rules]]\narch = \"aarch64\"\ninterpreter = \"r\"\n",
        tagged("r", tag),
        tagged("evil", &format!("EVIL-{tag}"))
    );
    compile_cache(dir, &tag.to_lowercase(), &toml)
}

/// Each command's outcome: exit status, stdout, stderr.
struct Outcome {
    status: String,
    stdout: Vec<u8>,
    stderr: String,
}

/// `cmds` as a script: each run as `nobody` under a timeout, its outcome
/// kept in files read back afterwards.
fn run_as_nobody(dir: &Path, flags: &str, setup: &str, cmds: &[String]) -> Vec<Outcome> {
    run_as_nobody_with(dir, dispatcher_entry(flags), setup, cmds)
}

/// [`run_as_nobody`] with `entry` registered (the dispatcher, or the
/// direct qemu registration that attacks are compared with).
fn run_as_nobody_with(dir: &Path, entry: Entry<'_>, setup: &str, cmds: &[String]) -> Vec<Outcome> {
    let mut script = setup.to_string();
    for (i, c) in cmds.iter().enumerate() {
        script += &format!(
            "timeout 120 setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups -- {c} \
             > out.{i} 2> err.{i}; echo $? > rc.{i}\n"
        );
    }
    let out = run_mapped(dir, entry, &script);
    (0..cmds.len())
        .map(|i| {
            let read = |n: &str| {
                fs::read(dir.join(format!("{n}.{i}"))).unwrap_or_else(|e| {
                    panic!("command {i} left no {n}: {e}; stderr:\n{}", stderr(&out))
                })
            };
            Outcome {
                status: String::from_utf8_lossy(&read("rc")).trim().to_string(),
                stdout: read("out"),
                stderr: String::from_utf8_lossy(&read("err")).into_owned(),
            }
        })
        .collect()
}

fn argv_of(o: &Outcome) -> Vec<String> {
    parse_report(&o.stdout).argv
}

fn want(tag: &str) -> Vec<String> {
    vec![reporter().display().to_string(), tag.to_string()]
}

#[test]
fn setuid_binary_ignores_the_callers_environment_and_caches() {
    require_qemu();
    let dir = temp_dir("secure");
    // The setuid-root binary and a plain copy of it.
    let suid = dir.join("suid-foreign");
    write_foreign(&suid);
    fs::set_permissions(&suid, fs::Permissions::from_mode(0o4755)).unwrap();
    write_foreign(&dir.join("plain-foreign"));

    let system = cache(&dir, "SYSTEM");
    let env_cache = cache(&dir, "ENV");
    let user = cache(&dir, "USER");
    let home = dir.join("home");
    fs::create_dir_all(home.join(".cache/binfmt-dispatcher")).unwrap();
    fs::copy(
        &user,
        home.join(".cache/binfmt-dispatcher/binfmt-dispatcher.cache"),
    )
    .unwrap();

    // What an unprivileged caller can say.
    let caller_env = [
        format!("BINFMT_DISPATCHER_CACHE={}", env_cache.display()),
        "BINFMT_DISPATCHER_INTERPRETER=evil".to_string(),
        "BINFMT_DISPATCHER_LOG=debug".to_string(),
        format!("HOME={}", home.display()),
    ];
    let launch = |env: &[String], bin: &str| {
        let mut cmd = sh_quote(launcher().to_str().unwrap());
        for e in env {
            cmd += &format!(" -e {}", sh_quote(e));
        }
        format!("{cmd} ./{bin} {bin}")
    };
    let home_only = [format!("HOME={}", home.display())];
    let no_user_cache = [format!("HOME={}", dir.display())];
    let install = |mode: &str, owner: &str| {
        format!(
            "cp {} {SYSTEM_CACHE} && chmod {mode} {SYSTEM_CACHE} && chown {owner} {SYSTEM_CACHE}\n",
            sh_quote(system.to_str().unwrap())
        )
    };
    let setup = install("644", "0:0");
    let cmds = [
        launch(&caller_env, "suid-foreign"),
        launch(&caller_env, "plain-foreign"),
        launch(&home_only, "plain-foreign"),
        launch(&no_user_cache, "plain-foreign"),
    ];

    // With C: the setuid binary uses the system cache whatever the caller
    // says; the plain one follows the caller.
    let runs = run_as_nobody(&dir, "POCF", &setup, &cmds);
    let [suid_run, plain_env, plain_home, plain_system] = &runs[..] else {
        unreachable!()
    };
    assert_eq!(
        argv_of(suid_run),
        want("SYSTEM"),
        "setuid: {}",
        suid_run.stderr
    );
    assert_eq!(
        suid_run.stderr, "",
        "setuid: BINFMT_DISPATCHER_LOG is ignored"
    );
    assert_eq!(
        argv_of(plain_env),
        want("EVIL-ENV"),
        "plain, caller's environment"
    );
    assert!(
        plain_env.stderr.contains("BINFMT_DISPATCHER_INTERPRETER"),
        "plain: BINFMT_DISPATCHER_LOG=debug is followed: {}",
        plain_env.stderr
    );
    assert_eq!(argv_of(plain_home), want("USER"), "plain, user cache");
    assert_eq!(argv_of(plain_system), want("SYSTEM"), "plain, system cache");

    // An unsafe system cache is refused in secure mode only, and ends the
    // set-id exec (one line, exit 126): no built-in configuration in its
    // place.
    for (mode, owner, why) in [
        ("664", "0:0", "group-writable"),
        ("646", "0:0", "world-writable"),
        ("644", "65534:65534", "owned by nobody"),
    ] {
        let runs = run_as_nobody(
            &dir,
            "POCF",
            &install(mode, owner),
            &[launch(&caller_env, "suid-foreign"), cmds[3].clone()],
        );
        let (suid_run, plain_run) = (&runs[0], &runs[1]);
        assert_eq!(suid_run.status, "126", "{why}: {}", suid_run.stderr);
        assert_eq!(
            suid_run.stderr,
            format!(
                "binfmt-dispatcher: ./suid-foreign: not run: cache {SYSTEM_CACHE}: not owned by root, or writable by others\n"
            ),
            "{why}"
        );
        assert_eq!(argv_of(plain_run), want("SYSTEM"), "{why}, not setuid");
        assert_eq!(plain_run.stderr, "", "{why}, not setuid");
    }

    // No system cache: the built-in configuration, silently.
    let runs = run_as_nobody(&dir, "POCF", "", &[launch(&caller_env, "suid-foreign")]);
    assert_eq!(runs[0].status, "42", "{}", runs[0].stderr);
    assert_eq!(runs[0].stderr, "");

    // Without C the kernel runs the dispatcher with the caller's
    // credentials (the setuid bit of a foreign binary has no effect): no
    // secure mode, the caller's choices apply.
    let runs = run_as_nobody(&dir, "POF", &setup, &[cmds[0].clone()]);
    assert_eq!(
        argv_of(&runs[0]),
        want("EVIL-ENV"),
        "without C: {}",
        runs[0].stderr
    );
}

// The attacks of an unprivileged caller on a setuid-root foreign program,
// each checked against the direct registration of qemu with the same flags
// (the control): whatever the direct registration runs with raised
// credentials, the dispatcher runs too, and nothing else.

/// The direct registration the dispatcher is compared with.
fn qemu_entry(flags: &str) -> Entry<'_> {
    (
        "qemu-aarch64",
        AARCH64_MAGIC,
        AARCH64_MASK,
        QEMU_AARCH64,
        flags,
    )
}

/// The aarch64 programs of the attacks, built once: tags SUID (installed
/// setuid root), PLAIN (the same without the bit) and EVIL (the caller's).
fn programs() -> &'static [std::path::PathBuf; 3] {
    static P: std::sync::OnceLock<[std::path::PathBuf; 3]> = std::sync::OnceLock::new();
    P.get_or_init(|| ["SUID", "PLAIN", "EVIL"].map(whoami_aarch64))
}

/// A fresh scene: `suid` (setuid root), `plain`, `evil` (owned by the
/// caller) and `home`, the caller's own directory, where the caller works.
fn scene(tag: &str) -> std::path::PathBuf {
    require_qemu();
    let dir = temp_dir(tag);
    let [suid, plain, evil] = programs();
    for (from, name, mode, owner) in [
        (suid, "suid", 0o4755, 0),
        (plain, "plain", 0o755, 0),
        (evil, "evil", 0o755, NOBODY),
    ] {
        let to = dir.join(name);
        fs::copy(from, &to).unwrap();
        std::os::unix::fs::chown(&to, Some(owner), Some(owner)).unwrap();
        fs::set_permissions(&to, fs::Permissions::from_mode(mode)).unwrap();
    }
    fs::create_dir(dir.join("home")).unwrap();
    std::os::unix::fs::chown(dir.join("home"), Some(NOBODY), Some(NOBODY)).unwrap();
    dir
}

/// What one run of the whoami program said.
#[derive(Debug, PartialEq, Eq)]
struct Who {
    tag: String,
    ruid: u32,
    euid: u32,
    exe: String,
    argv: Vec<String>,
}

/// Parses whoami's lines (`TAG ruid=R euid=E exe=PATH argv=A|B|...`).
fn whos(stdout: &[u8]) -> Vec<Who> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| {
            let mut f = line.splitn(5, ' ');
            let mut next = |key: &str| {
                let field = f.next().unwrap_or_else(|| panic!("short line {line:?}"));
                field
                    .strip_prefix(key)
                    .unwrap_or_else(|| panic!("no {key} in {line:?}"))
                    .to_string()
            };
            Who {
                tag: next(""),
                ruid: next("ruid=").parse().unwrap(),
                euid: next("euid=").parse().unwrap(),
                exe: next("exe="),
                argv: next("argv=").split('|').map(String::from).collect(),
            }
        })
        .collect()
}

/// The one program run of `o`, asserting there was exactly one.
fn who(o: &Outcome) -> Who {
    let mut all = whos(&o.stdout);
    assert_eq!(
        all.len(),
        1,
        "expected one run, status {}, stderr: {}",
        o.status,
        o.stderr
    );
    all.remove(0)
}

/// `script` as one command of the caller's, run by sh in `home`.
fn in_home(script: &str) -> String {
    format!(
        "sh -c {}",
        sh_quote(&format!("cd home || exit 99; {script}"))
    )
}

fn launch_cmd() -> String {
    sh_quote(launcher().to_str().unwrap())
}

/// The setup that installs `toml`, compiled, as the system cache.
fn cached(dir: &Path, toml: &str) -> String {
    installed(&compile_cache(dir, "system", toml))
}

/// The setup that installs the compiled `cache` as the system cache.
fn installed(cache: &Path) -> String {
    format!(
        "cp {} {SYSTEM_CACHE} && chmod 644 {SYSTEM_CACHE}\n",
        sh_quote(cache.to_str().unwrap())
    )
}

#[test]
fn a_name_beginning_with_a_dash_is_the_binary_not_an_option() {
    // `--` in the caller's directory names the setuid program: qemu given
    // that name would stop parsing options there and run the caller's
    // next argument, `../evil`, as root. The guest must see what the
    // direct registration gives a program of an ordinary name (given `--`
    // itself, qemu takes `x` for the file name and mangles the argv).
    let dir = scene("dash");
    let run = |name: &str| in_home(&format!("exec {} {name} x ../evil", launch_cmd()));
    for target in ["suid", "plain"] {
        let setup = format!("ln -sfn ../{target} home/-- && ln -sfn ../{target} home/ordinary\n");
        let ours = run_as_nobody(&dir, "POCF", &setup, &[run("--")]);
        let direct = run_as_nobody_with(&dir, qemu_entry("POCF"), &setup, &[run("ordinary")]);
        let (ours, direct) = (who(&ours[0]), who(&direct[0]));
        assert_eq!(ours, direct, "{target}: as the direct registration");
        assert_eq!(ours.tag, target.to_uppercase());
        assert_eq!(ours.argv, ["x", "../evil"], "{target}");
        assert_eq!(ours.euid, if target == "suid" { 0 } else { NOBODY });
        assert_eq!(ours.exe, dir.join(target).to_str().unwrap());
    }
}

#[test]
fn a_symlink_swapped_during_the_exec_never_runs_the_callers_program_as_root() {
    // The caller executes `a` 300 times while swapping it with `b`
    // (renameat2 RENAME_EXCHANGE): each exec starts on one of the two
    // files, and the dispatcher must hand the interpreter that file, not
    // whatever the name leads to by the time the interpreter opens it.
    let dir = scene("race");
    let setup = "ln -s ../suid home/a && ln -s ../evil home/b\n";
    let race = in_home(&format!(
        "{} a b 100 & i=0; while [ $i -lt 300 ]; do {} ./a a; i=$((i+1)); done; kill $!",
        sh_quote(flipper().to_str().unwrap()),
        launch_cmd()
    ));
    for (what, entry) in [
        ("dispatcher", dispatcher_entry("POCF")),
        ("direct qemu", qemu_entry("POCF")),
    ] {
        let out = run_as_nobody_with(&dir, entry, setup, std::slice::from_ref(&race));
        let runs = whos(&out[0].stdout);
        assert_eq!(runs.len(), 300, "{what}: {}", out[0].stderr);
        let as_root: Vec<&Who> = runs.iter().filter(|w| w.euid == 0).collect();
        assert!(
            as_root.iter().all(|w| w.tag == "SUID"),
            "{what}: the caller's program ran as root: {:?}",
            as_root.iter().find(|w| w.tag != "SUID")
        );
        // Both sides of the race were really hit.
        assert!(!as_root.is_empty(), "{what}: the setuid program never ran");
        assert!(
            runs.iter().any(|w| w.tag == "EVIL"),
            "{what}: the swap never won"
        );
    }
}

#[test]
fn under_the_c_flag_the_file_not_the_callers_name_picks_the_rule() {
    // A [binaries] entry and a path rule for names in the caller's
    // directory; the setuid program reached through them must still go to
    // the aarch64 rule. A second setuid program has a [binaries] entry on
    // its real path, which still applies.
    let dir = scene("names");
    fs::copy(dir.join("suid"), dir.join("suid-listed")).unwrap();
    fs::set_permissions(dir.join("suid-listed"), fs::Permissions::from_mode(0o4755)).unwrap();
    let home = dir.join("home");
    let toml = format!(
        "{}{}[interpreters.q]\npath = \"{QEMU_AARCH64}\"\nargv = \"qemu\"\n\
         [binaries.named]\npath = \"{home}/named\"\ninterpreter = \"trap\"\n\
         [binaries.listed]\npath = \"{dir}/suid-listed\"\ninterpreter = \"listed\"\n\
         [[rules]]\npath = \"{home}/ruled-*\"\ninterpreter = \"trap\"\n\
         [[rules]]\narch = \"aarch64\"\ninterpreter = \"q\"\n",
        tagged("trap", "TRAP"),
        tagged("listed", "LISTED"),
        home = home.display(),
        dir = dir.display(),
    );
    let cmds = ["named", "ruled-1", "listed"]
        .map(|n| format!("{} {}/{n} {n}", launch_cmd(), home.display()));
    let links = |target: &str| {
        format!(
            "{}ln -sfn ../{target} home/named && ln -sfn ../{target} home/ruled-1 \
             && ln -sfn ../suid-listed home/listed\n",
            cached(&dir, &toml)
        )
    };
    let runs = run_as_nobody(&dir, "POCF", &links("suid"), &cmds);
    for (run, name) in runs.iter().zip(["named", "ruled-1"]) {
        let w = who(run);
        assert_eq!(
            (w.tag.as_str(), w.euid),
            ("SUID", 0),
            "{name}: {}",
            run.stderr
        );
        assert_eq!(w.argv, [name]);
    }
    assert_eq!(argv_of(&runs[2]), want("LISTED"), "{}", runs[2].stderr);
    // Without the setuid bit the names decide, as configured; the direct
    // registration runs the setuid program itself.
    let runs = run_as_nobody(&dir, "POCF", &links("plain"), &cmds[..2]);
    for run in &runs {
        assert_eq!(argv_of(run), want("TRAP"), "{}", run.stderr);
    }
    let direct = run_as_nobody_with(&dir, qemu_entry("POCF"), &links("suid"), &cmds[..1]);
    let w = who(&direct[0]);
    assert_eq!((w.tag.as_str(), w.euid), ("SUID", 0));
}

#[test]
fn a_limit_the_caller_sets_ends_the_exec_instead_of_changing_the_configuration() {
    // The administrator's cache sends aarch64 to SYSTEM; with too few
    // descriptors to open it, the set-id exec must not fall back to the
    // built-in configuration (qemu, which would run the program).
    let dir = scene("limits");
    let setup = installed(&cache(&dir, "SYSTEM"));
    let limited = |limit: &str, bin: &str| {
        format!(
            "sh -c {}",
            sh_quote(&format!(
                "ulimit {limit}; exec {} ./{bin} {bin}",
                launch_cmd()
            ))
        )
    };
    let cmds = [
        limited("-n 4", "suid"),
        limited("-n 64", "suid"),
        limited("-n 4", "plain"),
    ];
    let runs = run_as_nobody(&dir, "POCF", &setup, &cmds);
    // The direct registration, which reads no configuration, runs it.
    let direct = run_as_nobody_with(&dir, qemu_entry("POCF"), "", &cmds[..1]);
    let w = who(&direct[0]);
    assert_eq!(
        (w.tag.as_str(), w.euid),
        ("SUID", 0),
        "{}",
        direct[0].stderr
    );
    assert_eq!(runs[0].status, "126", "{}", runs[0].stderr);
    assert_eq!(
        runs[0].stderr,
        format!("binfmt-dispatcher: ./suid: not run: cache {SYSTEM_CACHE}: too many open files\n")
    );
    assert!(runs[0].stdout.is_empty());
    assert_eq!(argv_of(&runs[1]), want("SYSTEM"), "{}", runs[1].stderr);
    // Without AT_SECURE the caller only limits themselves: a warning, and
    // the built-in configuration runs the program.
    assert!(
        runs[2].stderr.contains("too many open files"),
        "{}",
        runs[2].stderr
    );
    assert_eq!(who(&runs[2]).tag, "PLAIN");
}

#[test]
fn an_argument_list_too_long_for_one_interpreter_is_not_run_by_the_next() {
    // box64's convention puts argv[0] in its environment (BOX64_ARG0=...):
    // an argv[0] of 131071 bytes, the most one string may have, fits the
    // dispatcher's exec and makes that variable too long for box64's
    // (E2BIG). The fallback, whose argv is short, must not run in its
    // place.
    let dir = scene("e2big");
    let setup = cached(
        &dir,
        &format!(
            "[interpreters.b]\npath = \"{}\"\nargv = \"box64\"\nfallback = [\"fb\"]\n{}\
             [[rules]]\narch = \"aarch64\"\ninterpreter = \"b\"\n",
            reporter().display(),
            tagged("fb", "FALLBACK")
        ),
    );
    let cmd = format!(
        "sh -c {}",
        sh_quote(&format!(
            "exec {} ./suid \"$(head -c 131071 /dev/zero | tr '\\0' a)\"",
            launch_cmd()
        ))
    );
    let runs = run_as_nobody(&dir, "POCF", &setup, std::slice::from_ref(&cmd));
    assert_eq!(runs[0].status, "126", "{}", runs[0].stderr);
    assert_eq!(
        runs[0].stderr,
        format!(
            "binfmt-dispatcher: ./suid: cannot run it: b ({}): \
             cannot execute: argument list too long\n",
            reporter().display()
        )
    );
    assert!(runs[0].stdout.is_empty(), "nothing ran");
    // The direct registration runs it: its one exec fits.
    let direct = run_as_nobody_with(&dir, qemu_entry("POCF"), "", &[cmd]);
    let w = who(&direct[0]);
    assert_eq!(
        (w.tag.as_str(), w.euid, w.argv[0].len()),
        ("SUID", 0, 131_071)
    );
}

#[test]
fn required_paths_are_checked_with_the_credentials_the_interpreter_runs_with() {
    // `first` requires a file in a directory only root can search: the
    // setuid exec (euid 0) sees it, the caller does not.
    let dir = scene("eaccess");
    let toml = format!(
        "{}required_paths = [\"{}/secret/present\"]\nfallback = [\"second\"]\n{}\
         [[rules]]\narch = \"aarch64\"\ninterpreter = \"first\"\n",
        tagged("first", "FIRST"),
        dir.display(),
        tagged("second", "SECOND"),
    );
    let setup = format!(
        "{}mkdir -m 700 secret && touch secret/present\n",
        cached(&dir, &toml)
    );
    let cmds = ["suid", "plain"].map(|b| format!("{} ./{b} {b}", launch_cmd()));
    let runs = run_as_nobody(&dir, "POCF", &setup, &cmds);
    assert_eq!(
        argv_of(&runs[0]),
        want("FIRST"),
        "setuid: {}",
        runs[0].stderr
    );
    assert_eq!(
        argv_of(&runs[1]),
        want("SECOND"),
        "plain: {}",
        runs[1].stderr
    );
}

#[test]
fn a_program_named_like_an_option_runs_whatever_the_flags() {
    // A foreign program called `--help`, run directly and as a script's
    // interpreter (`#!--help`, found in the current directory): the
    // dispatcher must run it, never print its own usage.
    require_qemu();
    let dir = temp_dir("help-named");
    fs::copy(&programs()[1], dir.join("--help")).unwrap();
    fs::write(dir.join("script"), "#!--help\n").unwrap();
    fs::set_permissions(dir.join("script"), fs::Permissions::from_mode(0o755)).unwrap();
    for flags in ["", "P", "O", "POCF"] {
        let out = run_in_private_binfmt_in(
            &dir,
            &[dispatcher_entry(flags)],
            &format!(
                "{l} --help --help x; {l} ./script script y",
                l = launch_cmd()
            ),
            &[],
        );
        let runs = whos(&out.stdout);
        let argvs: Vec<Vec<String>> = runs.iter().map(|w| w.argv.clone()).collect();
        // Without P the kernel drops argv[0]: the guest's is the file name.
        assert_eq!(
            argvs,
            [vec!["--help", "x"], vec!["--help", "./script", "y"]],
            "flags {flags:?}: {}",
            stderr(&out)
        );
    }
    // By hand, the options are the dispatcher's.
    let out = Command::new(dispatcher()).arg("--help").output().unwrap();
    assert!(
        stdout(&out).starts_with("usage: binfmt-dispatcher"),
        "{out:?}"
    );
}

/// Paths and the modes they must have.
type Modes = Vec<(String, u32)>;

#[test]
fn binfmtctl_writes_nothing_another_user_can_open_whatever_the_umask() {
    // Under umask 000, every file binfmtctl creates is created 0600 (its
    // final mode comes once it is complete, then the rename), every
    // directory without group or other write, and the results have their
    // documented modes exactly. Seen by strace: every O_CREAT and mkdir.
    let dir = temp_dir("umask");
    let toml = dir.join("layer.toml");
    fs::write(&toml, "[defaults]\nlog_level = \"warn\"\n").unwrap();
    let (d, t) = (dir.display(), toml.display());
    // What runs, its arguments, and each path it must leave with its mode.
    let runs: [(&str, String, Modes); 3] = [
        (
            "compile",
            format!("compile --output {d}/new/sub/x.cache {t}"),
            vec![
                (format!("{d}/new"), 0o755),
                (format!("{d}/new/sub"), 0o755),
                (format!("{d}/new/sub/x.cache"), 0o644),
            ],
        ),
        (
            "compile --embed",
            format!("compile --embed {} --output {d}/e/dispatcher {t}", dispatcher()),
            vec![(format!("{d}/e"), 0o755), (format!("{d}/e/dispatcher"), 0o755)],
        ),
        (
            "register --persist",
            format!(
                "--root {d}/root register --persist --host none --interpreter /usr/bin/binfmt-dispatcher"
            ),
            vec![
                (format!("{d}/root/etc"), 0o755),
                (format!("{d}/root/etc/binfmt.d"), 0o755),
                (
                    format!("{d}/root/etc/binfmt.d/zz-binfmt-dispatcher-aarch64.conf"),
                    0o644,
                ),
            ],
        ),
    ];
    for (i, (what, args, results)) in runs.iter().enumerate() {
        let log = dir.join(format!("strace.{i}"));
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "umask 000; exec strace -f -qq -o {} -e trace=%file,fchmod {BINFMTCTL} {args}",
                log.display()
            ))
            .output()
            .expect("cannot run strace");
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        let log = fs::read_to_string(&log).unwrap();
        let mut created = 0;
        for line in log.lines() {
            let mode = || {
                let tail = line.rsplit_once(", 0").map(|(_, m)| m).unwrap_or("");
                let digits: String = tail.chars().take_while(char::is_ascii_digit).collect();
                u32::from_str_radix(&digits, 8).unwrap_or_else(|_| panic!("{what}: {line}"))
            };
            if line.contains("O_CREAT") {
                created += 1;
                assert_eq!(mode() & 0o077, 0, "{what}: created open to others: {line}");
            } else if line.contains("mkdir") {
                assert_eq!(
                    mode() & 0o022,
                    0,
                    "{what}: a directory writable by others: {line}"
                );
            }
        }
        assert!(created > 0, "{what}: strace saw no file created:\n{log}");
        for (path, want) in results {
            let mode = fs::metadata(path).unwrap().permissions().mode() & 0o7777;
            assert_eq!(mode, *want, "{what}: {path} is {mode:o}");
            let tmp = fs::read_dir(Path::new(path).parent().unwrap())
                .unwrap()
                .flatten()
                .find(|e| e.file_name().to_string_lossy().contains(".tmp"));
            assert!(tmp.is_none(), "{what}: a temporary file is left: {tmp:?}");
        }
    }
}

#[test]
fn a_set_id_dispatcher_runs_nothing() {
    // A dispatcher file made setuid root by mistake starts with AT_SECURE
    // but no binfmt_misc descriptor: it must not run what its caller names.
    let dir = scene("suid-dispatcher");
    let setup = format!("cp {} sd && chmod 4755 sd\n", sh_quote(dispatcher()));
    let want = "binfmt-dispatcher: ./plain: not run: set-id exec: \
                binfmt-dispatcher itself is set-id, or no binfmt_misc descriptor\n";
    // Run by hand, and registered with O but without C (the kernel then
    // takes the credentials from the dispatcher's file, and still hands
    // it the descriptor).
    let by_hand = run_as_nobody(&dir, "POCF", &setup, &["./sd ./plain".to_string()]);
    let sd = dir.join("sd");
    let entry = (
        "dispatch-aarch64",
        AARCH64_MAGIC,
        AARCH64_MASK,
        sd.to_str().unwrap(),
        "PO",
    );
    let registered = run_as_nobody_with(
        &dir,
        entry,
        &setup,
        &[format!("{} ./plain plain", launch_cmd())],
    );
    for (how, run) in [("by hand", &by_hand[0]), ("PO", &registered[0])] {
        assert_eq!(run.status, "126", "{how}: {}", run.stderr);
        assert_eq!(run.stderr, want, "{how}");
        assert!(run.stdout.is_empty(), "{how}");
    }
}

#[test]
fn a_corrupt_system_cache_ends_a_set_id_exec() {
    // Found corrupt when opened (the header's checksum) or only by the
    // lookup (a data chunk's): the set-id exec ends with one line and 126;
    // a plain exec warns and uses the built-in configuration.
    let dir = scene("corrupt");
    let valid = fs::read(compile_cache(
        &dir,
        "valid",
        &format!(
            "{}[[rules]]\narch = \"aarch64\"\ninterpreter = \"s\"\n",
            tagged("s", "SYSTEM")
        ),
    ))
    .unwrap();
    for (what, at) in [("header", 30), ("data", valid.len() - 2)] {
        let mut bytes = valid.clone();
        bytes[at] ^= 0x40;
        fs::write(dir.join("broken.cache"), bytes).unwrap();
        let setup = format!("cp broken.cache {SYSTEM_CACHE} && chmod 644 {SYSTEM_CACHE}\n");
        let cmds = ["suid", "plain"].map(|b| format!("{} ./{b} {b}", launch_cmd()));
        let runs = run_as_nobody(&dir, "POCF", &setup, &cmds);
        assert_eq!(runs[0].status, "126", "{what}: {}", runs[0].stderr);
        assert_eq!(
            runs[0].stderr,
            format!("binfmt-dispatcher: ./suid: not run: cache {SYSTEM_CACHE}: checksum mismatch (corrupt)\n"),
            "{what}"
        );
        assert!(runs[0].stdout.is_empty(), "{what}");
        assert!(
            runs[1]
                .stderr
                .starts_with("binfmt-dispatcher: ignoring cache"),
            "{what}: {}",
            runs[1].stderr
        );
        assert_eq!(who(&runs[1]).tag, "PLAIN", "{what}");
    }
}

#[test]
fn the_callers_qemu_variables_do_not_reach_a_set_id_emulator() {
    // QEMU_STRACE=1 makes qemu print every guest syscall on stderr; the
    // same channel carries QEMU_LD_PREFIX (the guest's dynamic loader)
    // and QEMU_LOG_FILENAME (a file qemu creates). Under AT_SECURE the
    // dispatcher drops them; the direct registration, the control, does
    // not.
    let dir = scene("qemu-env");
    let cmds = ["suid", "plain"]
        .map(|b| format!("{} -e QEMU_STRACE=1 -e PATH=/bin ./{b} {b}", launch_cmd()));
    let runs = run_as_nobody(&dir, "POCF", "", &cmds);
    let w = who(&runs[0]);
    assert_eq!((w.tag.as_str(), w.euid), ("SUID", 0));
    assert_eq!(runs[0].stderr, "", "QEMU_STRACE reached the set-id run");
    assert_eq!(who(&runs[1]).tag, "PLAIN");
    assert!(runs[1].stderr.contains(" write("), "{}", runs[1].stderr);
    let direct = run_as_nobody_with(&dir, qemu_entry("POCF"), "", &cmds[..1]);
    assert!(direct[0].stderr.contains(" write("), "{}", direct[0].stderr);
}

#[test]
fn root_never_writes_or_removes_through_a_directory_another_user_owns() {
    // Root run with a user's environment (sudo -E binfmtctl compile --user):
    // the user's ~/.cache/binfmt-dispatcher is a symlink to a directory
    // root trusts. Nothing may be written or removed there.
    let dir = temp_dir("trusted");
    let home = dir.join("home");
    let target = dir.join("system-dir");
    fs::create_dir_all(home.join(".cache")).unwrap();
    fs::create_dir_all(home.join(".config/binfmt-dispatcher")).unwrap();
    fs::create_dir_all(&target).unwrap();
    fs::write(target.join("binfmt-dispatcher.cache"), "root's").unwrap();
    std::os::unix::fs::symlink(&target, home.join(".cache/binfmt-dispatcher")).unwrap();
    for d in [&home, &home.join(".cache"), &home.join(".config")] {
        std::os::unix::fs::lchown(d, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    std::os::unix::fs::lchown(home.join(".cache/binfmt-dispatcher"), Some(NOBODY), None).unwrap();
    let user_config = home.join(".config/binfmt-dispatcher/binfmt-dispatcher.toml");
    let compile_with = |cache_home: Option<&str>| {
        let mut cmd = Command::new(BINFMTCTL);
        cmd.args(["compile", "--user"])
            .current_dir(&home)
            .env_clear()
            .env("HOME", &home);
        if let Some(c) = cache_home {
            cmd.env("XDG_CACHE_HOME", c);
        }
        cmd.output().unwrap()
    };
    let compile = || compile_with(None);
    // With a user layer: the write is refused, also when the path climbs
    // back through `..` past a directory that does not exist yet, or
    // reaches the user's directory through root's own links
    // (/proc/self/cwd).
    fs::write(&user_config, "[defaults]\nlog_level = \"debug\"\n").unwrap();
    fs::create_dir(dir.join("root-owned")).unwrap();
    let climb = format!("{}/root-owned/nx/../../home/.cache", dir.display());
    for cache_home in [None, Some(climb.as_str()), Some("/proc/self/cwd/.cache")] {
        let out = compile_with(cache_home);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{cache_home:?}: {}",
            stderr(&out)
        );
        assert!(!dir.join("root-owned/nx").exists(), "{cache_home:?}");
        if cache_home != Some(climb.as_str()) {
            assert!(
                stderr(&out).contains(&format!(
                    "{}: owned by uid {NOBODY}: root does not write below it",
                    home.display()
                )),
                "{cache_home:?}: {}",
                stderr(&out)
            );
        }
        assert_eq!(fs::read_dir(&target).unwrap().count(), 1, "{cache_home:?}");
    }
    // Without one: the removal of the stale user cache is refused.
    fs::remove_file(&user_config).unwrap();
    let out = compile();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(target.join("binfmt-dispatcher.cache")).unwrap(),
        "root's"
    );
    assert_eq!(
        fs::read_dir(&target).unwrap().count(),
        1,
        "nothing written beside it"
    );
    // Their owner's binfmtctl writes there.
    fs::write(dir.join("layer.toml"), "").unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(BINFMTCTL)
        .args(["compile", "--output"])
        .arg(home.join("mine.cache"))
        .arg(dir.join("layer.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(home.join("mine.cache").is_file());
}

#[test]
fn a_system_cache_in_a_directory_others_can_write_ends_a_set_id_exec() {
    // Whoever can write the directory can put another root-owned file (an
    // older cache) in the cache's place: its owner and mode prove nothing.
    let dir = scene("cache-dir");
    let setup = format!(
        "{}chmod 777 /var/cache/binfmt-dispatcher\n",
        installed(&cache(&dir, "SYSTEM"))
    );
    let cmds = ["suid", "plain"].map(|b| format!("{} ./{b} {b}", launch_cmd()));
    let runs = run_as_nobody(&dir, "POCF", &setup, &cmds);
    assert_eq!(runs[0].status, "126", "{}", runs[0].stderr);
    assert_eq!(
        runs[0].stderr,
        format!(
            "binfmt-dispatcher: ./suid: not run: cache {SYSTEM_CACHE}: \
             its directory is not owned by root, or writable by others\n"
        )
    );
    assert_eq!(argv_of(&runs[1]), want("SYSTEM"), "not set-id: used");
}

#[test]
fn a_set_id_binary_deleted_since_it_was_opened_is_not_matched_by_path() {
    // An old version of a setuid program, kept open by the caller while an
    // upgrade replaced it: its path now reads `... (deleted)`, which no
    // [binaries] entry or path rule for it can match. With path matchers
    // configured the exec ends; without, the file itself runs.
    let dir = scene("deleted");
    let with_paths = format!(
        "{}[interpreters.q]\npath = \"{QEMU_AARCH64}\"\nargv = \"qemu\"\n\
         [binaries.old]\npath = \"{}/home/s\"\ninterpreter = \"q\"\n\
         [[rules]]\narch = \"aarch64\"\ninterpreter = \"other\"\n",
        tagged("other", "OTHER"),
        dir.display()
    );
    let cmd = format!("{} -f -u home/s s", launch_cmd());
    let install = "cp suid home/s && chmod 4755 home/s\n";
    let runs = run_as_nobody(
        &dir,
        "POCF",
        &format!("{}{install}", cached(&dir, &with_paths)),
        std::slice::from_ref(&cmd),
    );
    assert_eq!(runs[0].status, "126", "{}", runs[0].stderr);
    assert!(
        runs[0]
            .stderr
            .ends_with(": deleted since it was opened, so its path cannot choose\n"),
        "{}",
        runs[0].stderr
    );
    assert!(runs[0].stdout.is_empty());
    let runs = run_as_nobody(&dir, "POCF", install, &[cmd]);
    let w = who(&runs[0]);
    assert_eq!((w.tag.as_str(), w.euid), ("SUID", 0), "{}", runs[0].stderr);
}

#[test]
fn a_corrupt_embedded_configuration_ends_a_set_id_exec() {
    // A trampoline written by compile --embed, its configuration's header
    // damaged afterwards: the set-id exec ends with 126, as for a corrupt
    // cache; a plain exec reports it and ends with 127, as before.
    let dir = scene("embedded-corrupt");
    let toml = dir.join("embedded.toml");
    fs::write(
        &toml,
        format!(
            "{}[[rules]]\narch = \"aarch64\"\ninterpreter = \"s\"\n",
            tagged("s", "EMBEDDED")
        ),
    )
    .unwrap();
    let embedded = dir.join("embedded-dispatcher");
    let out = Command::new(BINFMTCTL)
        .args(["compile", "--embed", dispatcher(), "--output"])
        .arg(&embedded)
        .arg(&toml)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut bytes = fs::read(&embedded).unwrap();
    let blob = bytes
        .windows(8)
        .rposition(|w| w == b"BFMTDISP")
        .expect("the embedded configuration");
    bytes[blob + 30] ^= 0x40;
    fs::write(&embedded, bytes).unwrap();
    let entry = (
        "dispatch-aarch64",
        AARCH64_MAGIC,
        AARCH64_MASK,
        embedded.to_str().unwrap(),
        "POCF",
    );
    let cmds = ["suid", "plain"].map(|b| format!("{} ./{b} {b}", launch_cmd()));
    let runs = run_as_nobody_with(&dir, entry, "", &cmds);
    let said = "binfmt-dispatcher: the built-in configuration is corrupt\n";
    assert_eq!(
        (runs[0].status.as_str(), runs[0].stderr.as_str()),
        ("126", said)
    );
    assert_eq!(
        (runs[1].status.as_str(), runs[1].stderr.as_str()),
        ("127", said)
    );
    assert!(runs[0].stdout.is_empty() && runs[1].stdout.is_empty());
}

#[test]
fn a_setuid_java_class_is_refused_before_java_runs() {
    // java takes options and classes from the caller's environment
    // (JAVA_TOOL_OPTIONS, CLASSPATH): a setuid-root class file run by
    // nobody through the java entry ends with one line and 126, and the
    // JVM never starts. The same class without the bit goes to java.
    require_tool("/usr/bin/java", "default-jdk-headless");
    let dir = temp_dir("secure-java");
    for (name, mode) in [("Suid.class", 0o4755), ("Plain.class", 0o755)] {
        let to = dir.join(name);
        fs::write(&to, java_class_named(name.trim_end_matches(".class"))).unwrap();
        std::os::unix::fs::chown(&to, Some(0), Some(0)).unwrap();
        fs::set_permissions(&to, fs::Permissions::from_mode(mode)).unwrap();
    }
    let entry = (
        "t-java",
        r"\xca\xfe\xba\xbe",
        r"\xff\xff\xff\xff",
        dispatcher(),
        "POCF",
    );
    let env = "env JAVA_TOOL_OPTIONS=-Dx=1";
    let cmds = [
        format!("{env} ./Suid.class a"),
        format!("{env} ./Plain.class a"),
    ];
    let runs = run_as_nobody_with(&dir, entry, "", &cmds);
    let (suid, plain) = (&runs[0], &runs[1]);
    assert_eq!(suid.status, "126", "{}", suid.stderr);
    assert_eq!(
        suid.stderr,
        "binfmt-dispatcher: ./Suid.class: cannot run it: java (/usr/bin/java): not run set-id: \
         java takes its options and classes from the caller's environment (JAVA_TOOL_OPTIONS, CLASSPATH)\n"
    );
    assert!(suid.stdout.is_empty());
    // The plain one reached the JVM: it read the caller's options (and
    // then found no main method in the bare class).
    assert!(
        plain.stderr.contains("JAVA_TOOL_OPTIONS"),
        "{}",
        plain.stderr
    );
}

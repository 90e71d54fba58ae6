//! The trampoline on the real exec path: each test registers it in a private
//! binfmt_misc instance and runs a foreign (aarch64) binary whose configured
//! interpreter is the reporter, which prints the exact argv, environment and
//! open descriptors it received.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use binfmt_dispatcher_core::blob::{interp, Blob};
use support::*;

/// Every flag combination exercised for each convention.
const FLAG_SETS: &[&str] = &["", "P", "O", "PO", "POC", "POCF", "F", "C"];

/// Arguments the guest is given: spaces and an empty one included.
const ARGS: &[&str] = &["a", "b c", "", " lead"];

/// A test's directory: its cache, a foreign binary `./foreign`.
struct Case {
    dir: PathBuf,
    cache: PathBuf,
}

impl Case {
    /// `toml` with `@R` replaced by the reporter's path and `@D` by the
    /// case directory, compiled into the case's cache.
    fn new(tag: &str, toml: &str) -> Case {
        let dir = temp_dir(tag);
        write_foreign(&dir.join("foreign"));
        let toml = toml
            .replace("@R", reporter().to_str().unwrap())
            .replace("@D", dir.to_str().unwrap());
        let cache = compile_cache(&dir, "config", &toml);
        Case { dir, cache }
    }

    fn cache_var(&self) -> String {
        format!("BINFMT_DISPATCHER_CACHE={}", self.cache.display())
    }

    /// A shell command that executes `path` with argv `[argv0, args...]`
    /// and exactly `env` (plus the cache variable), via the launcher.
    fn launch(&self, fexec: bool, env: &[&str], path: &str, argv0: &str, args: &[&str]) -> String {
        let mut cmd = sh_quote(launcher().to_str().unwrap());
        if fexec {
            cmd += " -f";
        }
        for e in std::iter::once(self.cache_var().as_str()).chain(env.iter().copied()) {
            cmd += " -e ";
            cmd += &sh_quote(e);
        }
        for a in [path, argv0].iter().chain(args) {
            cmd += " ";
            cmd += &sh_quote(a);
        }
        cmd
    }

    /// Runs `script` in a private binfmt_misc with the dispatcher
    /// registered with `flags`.
    fn run(&self, flags: &str, script: &str) -> Output {
        run_in_private_binfmt_in(&self.dir, &[dispatcher_entry(flags)], script, &[])
    }

    /// Launches `./foreign` as `CUSTOM0 ARGS...` with `env` and returns the report.
    fn report(&self, flags: &str, env: &[&str]) -> Report {
        let out = self.run(
            flags,
            &self.launch(false, env, "./foreign", "CUSTOM0", ARGS),
        );
        let r = report_of(&out);
        assert!(
            stderr(&out).is_empty(),
            "flags {flags:?}: unexpected stderr:\n{}",
            stderr(&out)
        );
        r
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn r() -> String {
    reporter().to_str().unwrap().to_string()
}

/// The guest's argv[0] under `flags`: the caller's with P, else the filename.
fn argv0(flags: &str) -> &'static str {
    if flags.contains('P') {
        "CUSTOM0"
    } else {
        "./foreign"
    }
}

fn guest_args() -> Vec<String> {
    strings(ARGS)
}

#[test]
fn qemu_convention_for_every_flag_set() {
    let case = Case::new(
        "qemu",
        r#"
[interpreters.q]
path = "@R"
argv = "qemu"
[[rules]]
arch = "aarch64"
interpreter = "q"
"#,
    );
    for flags in FLAG_SETS {
        let rep = case.report(flags, &["KEEP=1"]);
        let mut want = strings(&[&r(), "-0", argv0(flags), "./foreign"]);
        want.extend(guest_args());
        assert_eq!(rep.argv, want, "flags {flags:?}");
        assert_eq!(
            sorted(rep.env),
            sorted(vec![case.cache_var(), "KEEP=1".into()]),
            "flags {flags:?}"
        );
        assert_eq!(
            rep.fds,
            Vec::<u32>::new(),
            "flags {flags:?}: descriptors leaked"
        );
    }
}

#[test]
fn qemu_style_guessed_from_file_name() {
    let case = Case::new("guess", "");
    let qemu_named = case.dir.join("qemu-aarch64-fake");
    fs::copy(reporter(), &qemu_named).unwrap();
    let toml = format!(
        "[interpreters.q]\npath = \"{}\"\n[[rules]]\narch = \"aarch64\"\ninterpreter = \"q\"\n",
        qemu_named.display()
    );
    let case = Case {
        cache: compile_cache(&case.dir, "guess", &toml),
        dir: case.dir,
    };
    let rep = case.report("P", &[]);
    let mut want = strings(&[qemu_named.to_str().unwrap(), "-0", "CUSTOM0", "./foreign"]);
    want.extend(guest_args());
    assert_eq!(rep.argv, want);
}

fn box_convention(style: &str, key: &str) {
    let case = Case::new(
        style,
        &format!(
            r#"
[interpreters.b]
path = "@R"
argv = "{style}"
[[rules]]
arch = "aarch64"
interpreter = "b"
"#
        ),
    );
    let other = if key == "BOX64_ARG0" {
        "BOX86_ARG0"
    } else {
        "BOX64_ARG0"
    };
    let stale = format!("{key}=stale");
    let unrelated = format!("{other}=untouched");
    for flags in FLAG_SETS {
        let rep = case.report(flags, &[&stale, "KEEP=1", &unrelated]);
        let mut want = strings(&[&r(), "./foreign"]);
        want.extend(guest_args());
        assert_eq!(rep.argv, want, "{style} flags {flags:?}");
        assert_eq!(
            sorted(rep.env),
            sorted(vec![
                case.cache_var(),
                "KEEP=1".into(),
                unrelated.clone(),
                format!("{key}={}", argv0(flags)),
            ]),
            "{style} flags {flags:?}"
        );
        assert_eq!(
            rep.fds,
            Vec::<u32>::new(),
            "{style} flags {flags:?}: descriptors leaked"
        );
    }
}

#[test]
fn box64_convention_for_every_flag_set() {
    box_convention("box64", "BOX64_ARG0");
}

#[test]
fn box86_convention_for_every_flag_set() {
    box_convention("box86", "BOX86_ARG0");
}

fn plain_like(style: &str) {
    let case = Case::new(
        style,
        &format!(
            "[interpreters.p]\npath = \"@R\"\nargv = \"{style}\"\n[[rules]]\narch = \"aarch64\"\ninterpreter = \"p\"\n"
        ),
    );
    for flags in FLAG_SETS {
        let rep = case.report(flags, &["KEEP=1"]);
        let mut want = strings(&[&r(), "./foreign"]);
        want.extend(guest_args());
        assert_eq!(rep.argv, want, "{style} flags {flags:?}");
        assert_eq!(
            sorted(rep.env),
            sorted(vec![case.cache_var(), "KEEP=1".into()]),
            "{style} flags {flags:?}"
        );
        assert_eq!(
            rep.fds,
            Vec::<u32>::new(),
            "{style} flags {flags:?}: descriptors leaked"
        );
    }
}

/// FEX (src/launch.rs): `FEX_EXECVEFD=FD` in the environment (replacing
/// any), the descriptor open, and `INTERPRETER BINARY ARGV0 ARGS...`, as FEX
/// expects for a binfmt_misc launch with P.
#[test]
fn fex_convention_for_every_flag_set() {
    let case = Case::new(
        "fex",
        "[interpreters.f]\npath = \"@R\"\nargv = \"fex\"\n[[rules]]\narch = \"aarch64\"\ninterpreter = \"f\"\n",
    );
    for flags in FLAG_SETS {
        let rep = case.report(flags, &["KEEP=1", "FEX_EXECVEFD=99"]);
        assert_eq!(
            rep.fds.len(),
            1,
            "fex flags {flags:?}: the binary's descriptor must be open: {rep:?}"
        );
        let fd = rep.fds[0];
        let mut want = strings(&[&r(), "./foreign", argv0(flags)]);
        want.extend(guest_args());
        assert_eq!(rep.argv, want, "fex flags {flags:?}");
        assert_eq!(
            sorted(rep.env),
            sorted(vec![
                case.cache_var(),
                "KEEP=1".into(),
                format!("FEX_EXECVEFD={fd}")
            ]),
            "fex flags {flags:?}"
        );
    }
}

/// The FEX_EXECVEFD descriptor really is the binary; the style is guessed
/// from the interpreter's name (FEX...).
#[test]
fn fex_execvefd_refers_to_the_binary() {
    let case = Case::new("fex-fd", "");
    let wrapper = case.dir.join("FEXwrapper");
    fs::write(
        &wrapper,
        "#!/bin/sh\ncmp \"/proc/self/fd/$FEX_EXECVEFD\" \"$1\" && echo same \"$2\"\n",
    )
    .unwrap();
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    let toml = format!(
        "[interpreters.f]\npath = \"{}\"\n[[rules]]\narch = \"aarch64\"\ninterpreter = \"f\"\n",
        wrapper.display()
    );
    let case = Case {
        cache: compile_cache(&case.dir, "wrapper", &toml),
        dir: case.dir,
    };
    for flags in ["", "PO", "POCF"] {
        let out = case.run(
            flags,
            &case.launch(false, &["PATH=/usr/bin:/bin"], "./foreign", "ZERO", &[]),
        );
        let a0 = if flags.contains('P') {
            "ZERO"
        } else {
            "./foreign"
        };
        assert_eq!(
            stdout(&out),
            format!("same {a0}\n"),
            "flags {flags:?}; stderr:\n{}",
            stderr(&out)
        );
    }
}

#[test]
fn plain_convention_for_every_flag_set() {
    plain_like("plain");
}

#[test]
fn custom_template_with_execfd_for_every_flag_set() {
    let case = Case::new(
        "custom",
        r#"
[interpreters.c]
path = "@R"
argv = "custom"
template = ["{interpreter}", "--fd", "{execfd}", "{binary}", "--name={argv0}", "{args}", "x{argv0}y{execfd}z", "{interpreter}{binary}", "literal"]
[[rules]]
arch = "aarch64"
interpreter = "c"
"#,
    );
    for flags in FLAG_SETS {
        let rep = case.report(flags, &["KEEP=1"]);
        assert!(rep.argv.len() > 3, "flags {flags:?}: {rep:?}");
        let fd = rep.argv[2].clone();
        let n: u32 = fd
            .parse()
            .unwrap_or_else(|_| panic!("flags {flags:?}: {{execfd}} gave {fd:?}"));
        let a0 = argv0(flags);
        let mut want = strings(&[&r(), "--fd", &fd, "./foreign", &format!("--name={a0}")]);
        want.extend(guest_args());
        want.push(format!("x{a0}y{fd}z"));
        want.push(format!("{}./foreign", r()));
        want.push("literal".into());
        assert_eq!(rep.argv, want, "flags {flags:?}");
        assert_eq!(
            rep.fds,
            vec![n],
            "flags {flags:?}: the {{execfd}} descriptor must be open, and only it"
        );
        assert_eq!(
            sorted(rep.env),
            sorted(vec![case.cache_var(), "KEEP=1".into()]),
            "flags {flags:?}"
        );
    }
}

#[test]
fn custom_execfd_refers_to_the_binary() {
    let case = Case::new(
        "custom-fd",
        r#"
[interpreters.c]
path = "/bin/sh"
argv = "custom"
template = ["{interpreter}", "-c", "cmp /proc/self/fd/{execfd} \"$0\" && echo same", "{binary}"]
[[rules]]
arch = "aarch64"
interpreter = "c"
"#,
    );
    for flags in ["", "PO", "POCF"] {
        let out = case.run(
            flags,
            &case.launch(false, &["PATH=/usr/bin:/bin"], "./foreign", "x", &[]),
        );
        assert_eq!(
            stdout(&out),
            "same\n",
            "flags {flags:?}; stderr:\n{}",
            stderr(&out)
        );
    }
}

#[test]
fn env_additions_replace_and_add() {
    let case = Case::new(
        "env",
        r#"
[interpreters.q]
path = "@R"
argv = "qemu"
env = { ADDED = "new value", KEEP = "replaced", EMPTY = "" }
[[rules]]
arch = "aarch64"
interpreter = "q"
"#,
    );
    for flags in ["", "POCF"] {
        let rep = case.report(flags, &["KEEP=1", "OTHER=2"]);
        assert_eq!(
            sorted(rep.env),
            sorted(vec![
                case.cache_var(),
                "OTHER=2".into(),
                "ADDED=new value".into(),
                "KEEP=replaced".into(),
                "EMPTY=".into(),
            ]),
            "flags {flags:?}"
        );
    }
    // With box64, both the interpreter's env and BOX64_ARG0.
    let case = Case::new(
        "env-box",
        r#"
[interpreters.b]
path = "@R"
argv = "box64"
env = { BOX64_LOG = "0" }
[[rules]]
arch = "aarch64"
interpreter = "b"
"#,
    );
    let rep = case.report("P", &["BOX64_LOG=1", "BOX64_ARG0=old"]);
    assert_eq!(
        sorted(rep.env),
        sorted(vec![
            case.cache_var(),
            "BOX64_LOG=0".into(),
            "BOX64_ARG0=CUSTOM0".into()
        ])
    );
}

#[test]
fn bash_exec_a_sets_argv0_with_p() {
    let case = Case::new(
        "bash",
        "[interpreters.q]\npath = \"@R\"\nargv = \"qemu\"\n[[rules]]\narch = \"aarch64\"\ninterpreter = \"q\"\n",
    );
    let script = r#"exec bash -c 'exec -a CUSTOM0 ./foreign a "b c" ""'"#;
    for flags in ["P", "POCF", "", "OCF"] {
        let out = run_in_private_binfmt_in(
            &case.dir,
            &[dispatcher_entry(flags)],
            script,
            &[("BINFMT_DISPATCHER_CACHE", case.cache.to_str().unwrap())],
        );
        let rep = report_of(&out);
        // bash executes a relative command by its absolute path.
        let binary = case.dir.join("foreign").display().to_string();
        let a0 = if flags.contains('P') {
            "CUSTOM0"
        } else {
            &binary
        };
        assert_eq!(
            rep.argv,
            strings(&[&r(), "-0", a0, &binary, "a", "b c", ""]),
            "flags {flags:?}"
        );
        assert!(
            rep.env.contains(&case.cache_var()),
            "flags {flags:?}: {:?}",
            rep.env
        );
        assert!(
            rep.env.iter().any(|e| e.starts_with("PATH=")),
            "flags {flags:?}: {:?}",
            rep.env
        );
    }
}

#[test]
fn fexecve_binary_is_the_exec_fd() {
    let case = Case::new(
        "fexec",
        r#"
[interpreters.q]
path = "@R"
argv = "qemu"
[[rules]]
arch = "aarch64"
interpreter = "q"
"#,
    );
    // The launcher opens ./foreign as descriptor 3 (binfmt_misc refuses
    // close-on-exec ones) and fexecve's it: the kernel's filename is /dev/fd/3.
    for flags in ["O", "PO", "POCF"] {
        let out = case.run(
            flags,
            &case.launch(true, &[], "./foreign", "CUSTOM0", &["a"]),
        );
        let rep = report_of(&out);
        assert_eq!(
            rep.fds.len(),
            2,
            "flags {flags:?}: fd 3 and the exec fd: {rep:?}"
        );
        assert_eq!(rep.fds[0], 3, "flags {flags:?}: {rep:?}");
        let m = rep.fds[1];
        let a0 = if flags.contains('P') {
            "CUSTOM0"
        } else {
            "/dev/fd/3"
        };
        assert_eq!(
            rep.argv,
            strings(&[&r(), "-0", a0, &format!("/proc/self/fd/{m}"), "a"]),
            "flags {flags:?}"
        );
    }
    // Without O, the interpreter is given the kernel's name, still valid.
    for flags in ["", "P"] {
        let out = case.run(
            flags,
            &case.launch(true, &[], "./foreign", "CUSTOM0", &["a"]),
        );
        let rep = report_of(&out);
        let a0 = if flags.contains('P') {
            "CUSTOM0"
        } else {
            "/dev/fd/3"
        };
        assert_eq!(
            rep.argv,
            strings(&[&r(), "-0", a0, "/dev/fd/3", "a"]),
            "flags {flags:?}"
        );
        assert_eq!(rep.fds, vec![3], "flags {flags:?}");
    }
}

#[test]
fn exec_fd_does_not_leak_with_o_flag() {
    let case = Case::new(
        "noleak",
        "[interpreters.p]\npath = \"@R\"\nargv = \"plain\"\n[[rules]]\narch = \"aarch64\"\ninterpreter = \"p\"\n",
    );
    for flags in ["O", "PO", "POC", "POCF"] {
        let rep = case.report(flags, &[]);
        assert_eq!(rep.fds, Vec::<u32>::new(), "flags {flags:?}");
    }
}

#[test]
fn f_flag_survives_the_dispatcher_disappearing() {
    let case = Case::new(
        "fflag",
        "[interpreters.p]\npath = \"@R\"\nargv = \"plain\"\n[[rules]]\narch = \"aarch64\"\ninterpreter = \"p\"\n",
    );
    let bin_dir = Path::new(dispatcher())
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let hide = format!("mount -t tmpfs none {}\n", sh_quote(&bin_dir));
    let script = hide + &case.launch(false, &[], "./foreign", "x", &["a"]);
    // F: the kernel opened the dispatcher at registration.
    let rep = report_of(&case.run("F", &script));
    assert_eq!(rep.argv, strings(&[&r(), "./foreign", "a"]));
    // Without F the kernel looks it up at exec time, and it is gone.
    let out = case.run("", &script);
    assert!(
        !out.status.success(),
        "without F the hidden dispatcher still ran: {}",
        stdout(&out)
    );
    assert!(parse_report(&out.stdout).argv.is_empty());
}

#[test]
fn run_by_hand_uses_the_file_as_argv0() {
    let case = Case::new(
        "hand",
        "[interpreters.q]\npath = \"@R\"\nargv = \"qemu\"\n[[rules]]\narch = \"aarch64\"\ninterpreter = \"q\"\n",
    );
    let foreign = case.dir.join("foreign");
    let f = foreign.to_str().unwrap();
    // Through the launcher, for an exact environment and no inherited fds.
    let cache = case.cache_var();
    let out = Command::new(launcher())
        .args(["-e", &cache, dispatcher(), dispatcher(), f, "a", "b c", ""])
        .output()
        .unwrap();
    let rep = report_of(&out);
    assert_eq!(rep.argv, strings(&[&r(), "-0", f, f, "a", "b c", ""]));
    assert_eq!(rep.env, vec![case.cache_var()]);
    assert_eq!(rep.fds, Vec::<u32>::new());
}

#[test]
fn help_and_version_exit_zero() {
    for flag in ["--help", "--version"] {
        let out = Command::new(dispatcher())
            .arg(flag)
            .env_clear()
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{flag}: {}", stderr(&out));
        let text = stdout(&out) + &stderr(&out);
        assert!(!text.trim().is_empty(), "{flag} printed nothing");
        if flag == "--version" {
            assert!(text.contains(env!("CARGO_PKG_VERSION")), "{flag}: {text}");
        } else {
            assert!(text.to_lowercase().contains("usage"), "{flag}: {text}");
        }
    }
    let out = Command::new(dispatcher()).env_clear().output().unwrap();
    assert_ne!(out.status.code(), Some(0), "no arguments must be an error");
}

#[test]
fn fallback_when_first_interpreter_missing() {
    let case = Case::new(
        "fallback",
        r#"
[interpreters.first]
path = "@D/missing-interpreter"
argv = "qemu"
fallback = ["second"]
[interpreters.second]
path = "@R"
argv = "plain"
[[rules]]
arch = "aarch64"
interpreter = "first"
"#,
    );
    let rep = case.report("POCF", &[]);
    let mut want = strings(&[&r(), "./foreign"]);
    want.extend(guest_args());
    assert_eq!(rep.argv, want);
}

#[test]
fn fallback_when_required_path_missing() {
    let case = Case::new(
        "required",
        r#"
[interpreters.first]
path = "@R"
argv = "custom"
template = ["{interpreter}", "FIRST"]
required_paths = ["@D/not-there"]
fallback = ["second"]
[interpreters.second]
path = "@R"
argv = "custom"
template = ["{interpreter}", "SECOND"]
[[rules]]
arch = "aarch64"
interpreter = "first"
"#,
    );
    let rep = case.report("PO", &[]);
    assert_eq!(rep.argv, strings(&[&r(), "SECOND"]));
    // Once the required path exists, the first one runs.
    fs::write(case.dir.join("not-there"), "").unwrap();
    let rep = case.report("PO", &[]);
    assert_eq!(rep.argv, strings(&[&r(), "FIRST"]));
}

#[test]
fn all_missing_exits_127_naming_everything() {
    let case = Case::new(
        "allmissing",
        r#"
[interpreters.first-interp]
path = "@D/missing-one"
fallback = ["second-interp"]
[interpreters.second-interp]
path = "@D/missing-two"
[[rules]]
arch = "aarch64"
interpreter = "first-interp"
"#,
    );
    for flags in ["", "POCF"] {
        let out = case.run(
            flags,
            &case.launch(false, &[], "./foreign", "CUSTOM0", &["a"]),
        );
        assert_eq!(
            out.status.code(),
            Some(127),
            "flags {flags:?}: {}",
            stderr(&out)
        );
        let err = stderr(&out);
        assert_eq!(
            err.lines().count(),
            1,
            "flags {flags:?}: one line expected:\n{err}"
        );
        for needle in ["./foreign", "first-interp", "second-interp"] {
            assert!(
                err.contains(needle),
                "flags {flags:?}: {needle:?} not in {err:?}"
            );
        }
    }
}

#[test]
fn no_interpreter_configured_exits_127() {
    let case = Case::new(
        "nothing",
        "[interpreters.x]\npath = \"@R\"\n[[rules]]\narch = \"riscv64\"\ninterpreter = \"x\"\n",
    );
    let out = case.run("POCF", &case.launch(false, &[], "./foreign", "x", &[]));
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(stderr(&out).contains("./foreign"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn not_executable_interpreter_exits_126() {
    let case = Case::new(
        "noexec",
        r#"
[interpreters.dir]
path = "@D/a-directory"
[interpreters.file]
path = "@D/not-executable"
[binaries.d]
path = "@D/foreign"
interpreter = "dir"
[[rules]]
arch = "aarch64"
interpreter = "file"
"#,
    );
    fs::create_dir(case.dir.join("a-directory")).unwrap();
    let file = case.dir.join("not-executable");
    fs::copy(reporter(), &file).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    fs::copy(case.dir.join("foreign"), case.dir.join("foreign2")).unwrap();
    fs::set_permissions(case.dir.join("foreign2"), fs::Permissions::from_mode(0o755)).unwrap();
    for (binary, id) in [("./foreign", "dir"), ("./foreign2", "file")] {
        for flags in ["", "POCF"] {
            let out = case.run(flags, &case.launch(false, &[], binary, "x", &[]));
            let err = stderr(&out);
            assert_eq!(
                out.status.code(),
                Some(126),
                "{binary} flags {flags:?}: {err}"
            );
            assert!(
                err.contains(binary) && err.contains(id),
                "{binary} flags {flags:?}: {err}"
            );
            assert!(out.stdout.is_empty());
        }
    }
}

#[test]
fn binary_override_beats_rule() {
    let case = Case::new(
        "override",
        r#"
[interpreters.by-rule]
path = "@R"
argv = "custom"
template = ["{interpreter}", "RULE"]
[interpreters.by-path]
path = "@R"
argv = "custom"
template = ["{interpreter}", "BINARY"]
[binaries.special]
path = "@D/foreign"
interpreter = "by-path"
[[rules]]
arch = "aarch64"
interpreter = "by-rule"
"#,
    );
    write_foreign(&case.dir.join("ordinary"));
    for flags in ["", "POCF"] {
        // Relative and absolute names of the overridden binary.
        for name in [
            "./foreign".to_string(),
            case.dir.join("foreign").display().to_string(),
        ] {
            let rep = report_of(&case.run(flags, &case.launch(false, &[], &name, "x", &[])));
            assert_eq!(
                rep.argv,
                strings(&[&r(), "BINARY"]),
                "{name} flags {flags:?}"
            );
        }
        let rep = report_of(&case.run(flags, &case.launch(false, &[], "./ordinary", "x", &[])));
        assert_eq!(rep.argv, strings(&[&r(), "RULE"]), "flags {flags:?}");
    }
}

#[test]
fn path_glob_rule() {
    let case = Case::new(
        "glob",
        r#"
[interpreters.globbed]
path = "@R"
argv = "custom"
template = ["{interpreter}", "GLOB"]
[interpreters.arch]
path = "@R"
argv = "custom"
template = ["{interpreter}", "ARCH"]
[[rules]]
path = "@D/special-*"
interpreter = "globbed"
[[rules]]
arch = "aarch64"
interpreter = "arch"
"#,
    );
    write_foreign(&case.dir.join("special-one"));
    write_foreign(&case.dir.join("other"));
    for flags in ["", "POCF"] {
        for (name, want) in [("./special-one", "GLOB"), ("./other", "ARCH")] {
            let rep = report_of(&case.run(flags, &case.launch(false, &[], name, "x", &[])));
            assert_eq!(rep.argv, strings(&[&r(), want]), "{name} flags {flags:?}");
        }
    }
}

#[test]
fn environment_override_of_interpreter() {
    let case = Case::new(
        "envoverride",
        r#"
[interpreters.by-rule]
path = "@R"
argv = "custom"
template = ["{interpreter}", "RULE"]
[interpreters.chosen]
path = "@R"
argv = "custom"
template = ["{interpreter}", "CHOSEN"]
[[rules]]
arch = "aarch64"
interpreter = "by-rule"
"#,
    );
    for flags in ["", "POCF"] {
        let rep = case.report(flags, &["BINFMT_DISPATCHER_INTERPRETER=chosen"]);
        assert_eq!(rep.argv, strings(&[&r(), "CHOSEN"]), "flags {flags:?}");
        let rep = case.report(flags, &[]);
        assert_eq!(rep.argv, strings(&[&r(), "RULE"]), "flags {flags:?}");
    }
}

#[test]
fn corrupt_cache_warns_and_uses_built_in_default() {
    require_qemu();
    let dir = temp_dir("corrupt");
    write_foreign(&dir.join("foreign"));
    let garbage = dir.join("garbage.cache");
    fs::write(
        &garbage,
        b"this is not a binfmt-dispatcher cache at all\n".repeat(20),
    )
    .unwrap();
    for flags in ["", "POCF"] {
        let out = run_in_private_binfmt_in(
            &dir,
            &[dispatcher_entry(flags)],
            "./foreign; echo \"status=$?\"",
            &[("BINFMT_DISPATCHER_CACHE", garbage.to_str().unwrap())],
        );
        let err = stderr(&out);
        // The built-in default runs it with qemu-aarch64-static: exit(42).
        assert_eq!(
            stdout(&out),
            "status=42\n",
            "flags {flags:?}; stderr:\n{err}"
        );
        assert_eq!(
            err.lines().count(),
            1,
            "flags {flags:?}: one warning line expected:\n{err}"
        );
        assert!(
            err.contains("garbage.cache"),
            "flags {flags:?}: the warning must name the cache:\n{err}"
        );
    }
}

#[test]
fn foreign_binary_really_runs_under_qemu() {
    // The test binary itself is valid: qemu registered directly runs it.
    require_qemu();
    let out = run_in_private_binfmt(
        &[(
            "qemu-aarch64",
            AARCH64_MAGIC,
            AARCH64_MASK,
            QEMU_AARCH64,
            "F",
        )],
        &format!(
            "{} ; echo \"status=$?\"",
            sh_quote(&{
                let dir = temp_dir("qemu-direct");
                let p = dir.join("foreign");
                write_foreign(&p);
                p.display().to_string()
            })
        ),
        &[],
    );
    assert_eq!(stdout(&out), "status=42\n", "{}", stderr(&out));
}

#[test]
fn reporter_exit_status_is_passed_through() {
    let case = Case::new(
        "exitcode",
        "[interpreters.p]\npath = \"@R\"\nargv = \"plain\"\n[[rules]]\narch = \"aarch64\"\ninterpreter = \"p\"\n",
    );
    let out = case.run(
        "POCF",
        &case.launch(false, &["REPORTER_EXIT=7"], "./foreign", "x", &[]),
    );
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(
        parse_report(&out.stdout).argv,
        strings(&[&r(), "./foreign"])
    );
}

#[test]
fn user_cache_from_home_and_xdg_cache_home() {
    let case = Case::new(
        "usercache",
        "[interpreters.p]\npath = \"@R\"\nargv = \"custom\"\ntemplate = [\"{interpreter}\", \"HOME-CACHE\"]\n[[rules]]\narch = \"aarch64\"\ninterpreter = \"p\"\n",
    );
    let home_cache = case.dir.join("home/.cache/binfmt-dispatcher");
    fs::create_dir_all(&home_cache).unwrap();
    fs::copy(&case.cache, home_cache.join("binfmt-dispatcher.cache")).unwrap();
    let xdg = case.dir.join("xdg/binfmt-dispatcher");
    fs::create_dir_all(&xdg).unwrap();
    let xdg_cache = compile_cache(
        &case.dir,
        "xdg",
        &format!(
            "[interpreters.p]\npath = \"{}\"\nargv = \"custom\"\ntemplate = [\"{{interpreter}}\", \"XDG-CACHE\"]\n[[rules]]\narch = \"aarch64\"\ninterpreter = \"p\"\n",
            r()
        ),
    );
    fs::copy(&xdg_cache, xdg.join("binfmt-dispatcher.cache")).unwrap();
    let home = format!("HOME={}", case.dir.join("home").display());
    let xdg_var = format!("XDG_CACHE_HOME={}", case.dir.join("xdg").display());
    let launch = |env: &[&str]| {
        let mut cmd = sh_quote(launcher().to_str().unwrap());
        for e in env {
            cmd += &format!(" -e {}", sh_quote(e));
        }
        cmd + " ./foreign x"
    };
    for flags in ["", "POCF"] {
        let rep = report_of(&case.run(flags, &launch(&[&home])));
        assert_eq!(rep.argv, strings(&[&r(), "HOME-CACHE"]), "flags {flags:?}");
        let rep = report_of(&case.run(flags, &launch(&[&home, &xdg_var])));
        assert_eq!(rep.argv, strings(&[&r(), "XDG-CACHE"]), "flags {flags:?}");
        // BINFMT_DISPATCHER_CACHE beats both.
        let rep = report_of(&case.run(
            flags,
            &case.launch(false, &[&home, &xdg_var], "./foreign", "x", &[]),
        ));
        assert_eq!(rep.argv, strings(&[&r(), "HOME-CACHE"]), "flags {flags:?}");
    }
}

#[test]
fn unusable_cache_is_skipped_for_the_next_one() {
    let case = Case::new(
        "skipnext",
        "[interpreters.p]\npath = \"@R\"\nargv = \"custom\"\ntemplate = [\"{interpreter}\", \"XDG-CACHE\"]\n[[rules]]\narch = \"aarch64\"\ninterpreter = \"p\"\n",
    );
    let xdg = case.dir.join("xdg/binfmt-dispatcher");
    fs::create_dir_all(&xdg).unwrap();
    fs::copy(&case.cache, xdg.join("binfmt-dispatcher.cache")).unwrap();
    let truncated = case.dir.join("truncated.cache");
    let whole = fs::read(&case.cache).unwrap();
    fs::write(&truncated, &whole[..whole.len() / 2]).unwrap();
    let env = [
        format!("XDG_CACHE_HOME={}", case.dir.join("xdg").display()),
        format!("BINFMT_DISPATCHER_CACHE={}", truncated.display()),
    ];
    let mut cmd = sh_quote(launcher().to_str().unwrap());
    for e in &env {
        cmd += &format!(" -e {}", sh_quote(e));
    }
    cmd += " ./foreign x";
    for flags in ["", "POCF"] {
        let out = case.run(flags, &cmd);
        let err = stderr(&out);
        assert_eq!(
            report_of(&out).argv,
            strings(&[&r(), "XDG-CACHE"]),
            "flags {flags:?}: the user cache after the broken one; stderr:\n{err}"
        );
        assert_eq!(
            err.lines().count(),
            1,
            "flags {flags:?}: one warning:\n{err}"
        );
        assert!(
            err.contains("truncated.cache") && err.contains("truncated"),
            "flags {flags:?}: the warning names the cache and the fault:\n{err}"
        );
    }
}

/// An aarch64 ELF header whose `PT_INTERP` string lies at `at`.
fn elf_with_interp_at(at: usize, interp: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 4096];
    f[..16].copy_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    f[16..18].copy_from_slice(&3u16.to_le_bytes()); // ET_DYN
    f[18..20].copy_from_slice(&183u16.to_le_bytes());
    f[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    f[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    f[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
    f[64..68].copy_from_slice(&3u32.to_le_bytes()); // PT_INTERP
    f[72..80].copy_from_slice(&(at as u64).to_le_bytes()); // p_offset
    f[96..104].copy_from_slice(&(interp.len() as u64 + 1).to_le_bytes()); // p_filesz
    f[at..at + interp.len()].copy_from_slice(interp);
    f
}

#[test]
fn pt_interp_rules_see_a_path_past_the_first_kib() {
    let case = Case::new(
        "interp-far",
        "[interpreters.glibc]\npath = \"@R\"\nargv = \"custom\"\ntemplate = [\"{interpreter}\", \"GLIBC\"]\n\
         [interpreters.other]\npath = \"@R\"\nargv = \"custom\"\ntemplate = [\"{interpreter}\", \"OTHER\"]\n\
         [[rules]]\narch = \"aarch64\"\ninterp = \"/lib/ld-linux-aarch64.so.*\"\ninterpreter = \"glibc\"\n\
         [[rules]]\narch = \"aarch64\"\ninterpreter = \"other\"\n",
    );
    let cases: [(usize, &[u8], &str); 4] = [
        (200, b"/lib/ld-linux-aarch64.so.1", "GLIBC"),
        (3000, b"/lib/ld-linux-aarch64.so.1", "GLIBC"),
        (3000, b"/lib/ld-musl-aarch64.so.1", "OTHER"),
        (4090, b"/lib/ld-linux-aarch64.so.1", "OTHER"), // past the 4 KiB read
    ];
    for (at, interp, expected) in cases {
        let path = case.dir.join("foreign");
        let mut bytes = elf_with_interp_at(at.min(4096 - interp.len() - 1), interp);
        if at > 4096 - interp.len() - 1 {
            // The string starts inside the read but runs past its end.
            bytes.resize(at, 0);
            bytes.extend_from_slice(interp);
            bytes.push(0);
            bytes[72..80].copy_from_slice(&(at as u64).to_le_bytes());
        }
        fs::write(&path, bytes).unwrap();
        for flags in ["", "POCF"] {
            let rep = case.report(flags, &[]);
            assert_eq!(
                rep.argv,
                strings(&[&r(), expected]),
                "interp at {at}, flags {flags:?}"
            );
        }
    }
}

/// The syscalls the dispatcher makes, run by hand under strace on `binary`
/// with `case`'s cache and `env`, before its execve of the interpreter; and
/// the interpreter's report.
fn syscalls_until_exec(
    case: &Case,
    binary: &Path,
    env: &[(String, String)],
) -> (Vec<String>, Report) {
    let log = case.dir.join(format!(
        "strace-{}.log",
        binary.file_name().unwrap().to_str().unwrap()
    ));
    let out = Command::new("strace")
        .arg("-o")
        .arg(&log)
        .arg(dispatcher())
        .arg(binary)
        .env_clear()
        .env("BINFMT_DISPATCHER_CACHE", &case.cache)
        .envs(env.iter().cloned())
        .output()
        .expect("strace (apt-get install -y strace)");
    let text = fs::read_to_string(&log).unwrap();
    let calls: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_once('(').map(|(name, _)| name.to_string()))
        .skip(1) // strace's execve of the dispatcher
        .take_while(|name| name != "execve")
        .collect();
    (calls, report_of(&out))
}

/// How many of `calls` start with `name`.
fn count(calls: &[String], name: &str) -> usize {
    calls.iter().filter(|c| c.starts_with(name)).count()
}

#[test]
fn an_override_for_the_filename_spares_the_canonical_path_lookup() {
    let case = Case::new(
        "override-by-name",
        r#"
[interpreters.rep]
path = "@R"
argv = "qemu"
[interpreters.never]
path = "@D/never"
argv = "qemu"
[binaries.foreign]
path = "@D/foreign"
interpreter = "rep"
[[rules]]
path = "@D/elsewhere/**"
interpreter = "never"
"#,
    );
    let foreign = case.dir.join("foreign");
    let alias = case.dir.join("alias");
    std::os::unix::fs::symlink(&foreign, &alias).unwrap();

    // Named by its overridden path: decided without readlinkat.
    let (calls, rep) = syscalls_until_exec(&case, &foreign, &[]);
    assert_eq!(count(&calls, "readlink"), 0, "{calls:?}");
    assert_eq!(rep.argv[0], reporter().to_str().unwrap());
    // Through a symlink: the canonical path is looked up, and its override
    // applies.
    let (calls, rep) = syscalls_until_exec(&case, &alias, &[]);
    assert_eq!(count(&calls, "readlink"), 1, "{calls:?}");
    assert_eq!(rep.argv[0], reporter().to_str().unwrap());
}

#[test]
fn path_rules_look_up_the_canonical_path_only_when_it_could_decide() {
    // Rules for x86-64 binaries under a directory, and for aarch64 ones
    // under the case directory's `games`; the foreign binary is aarch64.
    let case = Case::new(
        "rules-by-name",
        r#"
[interpreters.rep]
path = "@R"
argv = "qemu"
[interpreters.never]
path = "@D/never"
argv = "qemu"
[defaults]
interpreter = "never"
[[rules]]
machine = 62
path = "/opt/x86/**"
interpreter = "never"
[[rules]]
machine = 183
path = "@D/games/**"
interpreter = "rep"
"#,
    );
    let games = case.dir.join("games");
    fs::create_dir(&games).unwrap();
    fs::copy(case.dir.join("foreign"), games.join("game")).unwrap();
    let alias = case.dir.join("alias");
    std::os::unix::fs::symlink(games.join("game"), &alias).unwrap();

    // Its filename matches the aarch64 path rule; the x86-64 one cannot apply.
    let (calls, rep) = syscalls_until_exec(&case, &games.join("game"), &[]);
    assert_eq!(count(&calls, "readlink"), 0, "{calls:?}");
    assert_eq!(rep.argv[0], reporter().to_str().unwrap());
    // Through a symlink outside `games`: only the canonical path matches.
    let (calls, rep) = syscalls_until_exec(&case, &alias, &[]);
    assert_eq!(count(&calls, "readlink"), 1, "{calls:?}");
    assert_eq!(rep.argv[0], reporter().to_str().unwrap());
}

#[test]
fn a_large_environment_passes_through_uncopied_or_copied_exactly() {
    // 300 variables: more than the trampoline's stack buffers hold.
    let env: Vec<(String, String)> = (0..300)
        .map(|i| (format!("VAR_{i:03}"), format!("value {i}")))
        .collect();
    let want: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for (style, added) in [("qemu", None), ("box64", Some("BOX64_ARG0="))] {
        let case = Case::new(
            &format!("big-env-{style}"),
            &format!("[interpreters.rep]\npath = \"@R\"\nargv = \"{style}\"\n[defaults]\ninterpreter = \"rep\"\n"),
        );
        let (calls, rep) = syscalls_until_exec(&case, &case.dir.join("foreign"), &env);
        let mut got = rep.env.clone();
        got.retain(|e| !e.starts_with("BINFMT_DISPATCHER_CACHE="));
        if let Some(prefix) = added {
            assert!(got.pop().is_some_and(|e| e.starts_with(prefix)), "{style}");
        }
        assert_eq!(got, want, "{style}");
        // The cache's mapping; for box64 also one for the copy's buffers.
        let mmaps = count(&calls, "mmap");
        assert_eq!(
            mmaps,
            if added.is_none() { 1 } else { 2 },
            "{style}: {calls:?}"
        );
    }
}

#[test]
fn a_long_argv_goes_through_exactly() {
    // More arguments than the trampoline's stack buffers hold, for an
    // interpreter that keeps the environment (qemu) and one that adds to it
    // (box64): both take the mapped buffers.
    let args: Vec<String> = (0..150).map(|i| format!("argument {i}")).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    for (style, head) in [
        (
            "qemu",
            vec![
                r(),
                "-0".to_string(),
                "CUSTOM0".to_string(),
                "./foreign".to_string(),
            ],
        ),
        ("box64", vec![r(), "./foreign".to_string()]),
    ] {
        let case = Case::new(
            &format!("long-argv-{style}"),
            &format!("[interpreters.rep]\npath = \"@R\"\nargv = \"{style}\"\n[defaults]\ninterpreter = \"rep\"\n"),
        );
        let out = case.run(
            "POC",
            &case.launch(false, &["KEPT=1"], "./foreign", "CUSTOM0", &args),
        );
        let rep = report_of(&out);
        let mut want = head.clone();
        want.extend(args.iter().map(|a| a.to_string()));
        assert_eq!(rep.argv, want, "{style}");
        assert!(
            rep.env.iter().any(|e| e == "KEPT=1"),
            "{style}: {:?}",
            rep.env
        );
    }
}

#[test]
fn the_info_line_names_the_interpreter_executed_not_the_one_decided() {
    let case = Case::new(
        "infolog",
        "[defaults]\nlog_level = \"info\"\n\
         [interpreters.gone]\npath = \"/nonexistent/emu\"\nfallback = [\"next\"]\n\
         [interpreters.next]\npath = \"@R\"\nargv = \"plain\"\n\
         [[rules]]\narch = \"aarch64\"\ninterpreter = \"gone\"\n",
    );
    let out = case.run("POCF", &format!("env {} ./foreign", case.cache_var()));
    report_of(&out);
    let err = stderr(&out);
    // One line before each execve: the last names the one that ran.
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        [
            "binfmt-dispatcher: ./foreign: gone (/nonexistent/emu), by rule #1".to_string(),
            format!(
                "binfmt-dispatcher: ./foreign: next ({}), by rule #1, falling back from gone",
                r()
            )
        ],
        "{err}"
    );
}

#[test]
fn a_cache_corrupt_mid_walk_reports_only_the_built_in_walk() {
    // `gone` fails, then the walk reads `last`'s record, in a chunk of its
    // own that is corrupt: the built-in configuration decides again. Its
    // aarch64 chain (qemu, made unrunnable here) is all the failure line
    // may list: `gone`'s failure belongs to the other configuration.
    let fillers: String = (0..40)
        .map(|i| format!("[interpreters.m{i:02}]\npath = \"/nonexistent/m{i}\"\n"))
        .collect();
    let case = Case::new(
        "corruptmid",
        &format!(
            "[interpreters.a-gone]\npath = \"/nonexistent/first\"\nfallback = [\"z-last\"]\n\
             [interpreters.z-last]\npath = \"@R\"\n{fillers}\
             [[rules]]\narch = \"aarch64\"\ninterpreter = \"a-gone\"\n"
        ),
    );
    let mut bytes = fs::read(&case.cache).unwrap();
    let record = |id: &[u8]| {
        let blob = Blob::open(&bytes).unwrap();
        let all = blob.interpreters();
        let i = all
            .iter()
            .map(Result::unwrap)
            .find(|i| i.id().unwrap().as_bytes() == id)
            .unwrap();
        all.array().off as usize + i.index() as usize * interp::LEN
    };
    let (first, last) = (record(b"a-gone"), record(b"z-last"));
    assert!(last / 1024 != first / 1024, "the records share a chunk");
    bytes[last] ^= 0x55;
    fs::write(&case.cache, bytes).unwrap();
    let script = format!(
        "mount --bind /dev/null {QEMU_AARCH64}\nenv {} ./foreign",
        case.cache_var()
    );
    let err = stderr(&case.run("POCF", &script));
    let line = err
        .lines()
        .find(|l| l.contains("cannot run it"))
        .expect(&err);
    assert!(!line.contains("/nonexistent/first"), "{err}");
    assert!(
        line.contains("qemu-aarch64 (/usr/bin/qemu-aarch64-static)"),
        "{err}"
    );
    let listed = line.matches(" (/").count();
    assert_eq!(
        listed,
        line.matches("(/usr/bin/qemu-aarch64").count(),
        "{err}"
    );
}

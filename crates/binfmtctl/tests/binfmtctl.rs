//! binfmtctl: compile from layers under --root and for the user, every
//! error class, atomic replacement, dump round trips, check, and explain
//! agreeing with what the trampoline really executes in a private
//! binfmt_misc.

mod support;

use serde_json::Value as Json;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::*;

/// The original binfmt-dispatcher's shipped configuration.
const ORIGINAL: &str = r#"
[defaults]
interpreter = "fex"
log_level = "info"

[muvm]
path = "/usr/bin/muvm"

[interpreters.box64]
path = "/usr/bin/box64"

[interpreters.fex]
name = "FEX"
path = "/usr/bin/FEXInterpreter"
required_paths = ["/usr/share/fex-emu/RootFS/default.erofs"]
use_muvm = true

[interpreters.qemu]
name = "QEMU User space emulator"
path = "/usr/bin/qemu-x86_64"

[interpreters.qemu-static]
path = "/usr/bin/qemu-x86_64-static"
"#;

/// binfmtctl with `args`, an environment of only PATH and `env`.
fn ctl(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BINFMTCTL);
    cmd.args(args).env_clear().env("PATH", "/usr/bin:/bin");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "binfmtctl failed: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A --root tree: vendor fragments and /etc.
struct Root {
    dir: PathBuf,
}

impl Root {
    fn new(tag: &str) -> Root {
        Root { dir: temp_dir(tag) }
    }
    fn vendor(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join("usr/lib/binfmt-dispatcher.d").join(name);
        write(&p, text);
        p
    }
    fn etc(&self, text: &str) -> PathBuf {
        let p = self.dir.join("etc/binfmt-dispatcher.toml");
        write(&p, text);
        p
    }
    fn cache(&self) -> PathBuf {
        self.dir
            .join("var/cache/binfmt-dispatcher/binfmt-dispatcher.cache")
    }
    fn ctl(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut all = vec!["--root", s(&self.dir)];
        all.extend_from_slice(args);
        ctl(&all, env)
    }
}

/// Compiles exactly `files` with --output and returns the bytes.
fn compile_output(dir: &Path, files: &[&Path]) -> Vec<u8> {
    let out = dir.join("expected.cache");
    let mut args = vec!["compile", "--output", s(&out)];
    args.extend(files.iter().map(|p| s(p)));
    ok(&ctl(&args, &[]));
    fs::read(out).unwrap()
}

fn dump_of(cache: &Path) -> String {
    ok(&ctl(&["dump", s(cache)], &[]))
}

#[test]
fn compile_merges_the_layers_under_root_in_order() {
    let root = Root::new("layers");
    let a = root.vendor(
        "20-b.toml",
        "[interpreters.x]\npath = \"/usr/bin/x-from-20\"\nname = \"X\"\n[defaults]\nlog_level = \"error\"\n",
    );
    let b = root.vendor(
        "10-a.toml",
        "[interpreters.x]\npath = \"/usr/bin/x-from-10\"\ninstall_hint = \"from 10\"\n[interpreters.y]\npath = \"/usr/bin/y\"\n[[rules]]\narch = \"aarch64\"\ninterpreter = \"y\"\n",
    );
    root.vendor("README", "not toml, ignored");
    root.vendor("30-c.toml.disabled", "this is not even TOML [");
    let etc = root.etc(
        "[defaults]\ninterpreter = \"x\"\n[[rules]]\narch = \"riscv64\"\ninterpreter = \"x\"\n",
    );
    ok(&root.ctl(&["compile"], &[]));
    let cache = fs::read(root.cache()).unwrap();
    // Lexical order of the fragments, then /etc.
    assert_eq!(cache, compile_output(&root.dir, &[&b, &a, &etc]));
    let text = dump_of(&root.cache());
    // Later wins key by key: the path from 20, the hint from 10 kept, the
    // log level from 20, the default from /etc; /etc's rule first.
    assert!(text.contains("path = \"/usr/bin/x-from-20\""), "{text}");
    assert!(text.contains("install_hint = \"from 10\""), "{text}");
    assert!(text.contains("name = \"X\""), "{text}");
    assert!(text.contains("log_level = \"error\""), "{text}");
    assert!(text.contains("interpreter = \"x\"\nlog_level"), "{text}");
    let riscv = text.find("arch = \"riscv64\"").unwrap();
    let arm = text.find("arch = \"aarch64\"").unwrap();
    assert!(riscv < arm, "the later layer's rules come first:\n{text}");
}

#[test]
fn compile_user_adds_the_user_layer_into_the_user_cache() {
    let root = Root::new("user");
    let etc =
        root.etc("[interpreters.x]\npath = \"/usr/bin/x\"\n[defaults]\ninterpreter = \"x\"\n");
    let config_home = root.dir.join("home/config");
    let cache_home = root.dir.join("home/cache");
    let user = config_home.join("binfmt-dispatcher/binfmt-dispatcher.toml");
    write(&user, "[interpreters.x]\npath = \"/home/me/bin/x\"\n");
    let env = [
        ("XDG_CONFIG_HOME", s(&config_home)),
        ("XDG_CACHE_HOME", s(&cache_home)),
    ];
    ok(&root.ctl(&["compile", "--user"], &env));
    let user_cache = cache_home.join("binfmt-dispatcher/binfmt-dispatcher.cache");
    assert_eq!(
        fs::read(&user_cache).unwrap(),
        compile_output(&root.dir, &[&etc, &user])
    );
    assert!(
        !root.cache().exists(),
        "--user must not write the system cache"
    );
    // With HOME only: ~/.config and ~/.cache.
    let home = root.dir.join("home2");
    write(
        &home.join(".config/binfmt-dispatcher/binfmt-dispatcher.toml"),
        "[defaults]\nlog_level = \"debug\"\n",
    );
    ok(&root.ctl(&["compile", "--user"], &[("HOME", s(&home))]));
    let text = dump_of(&home.join(".cache/binfmt-dispatcher/binfmt-dispatcher.cache"));
    assert!(text.contains("log_level = \"debug\""), "{text}");
    assert!(text.contains("path = \"/usr/bin/x\""), "{text}");
    // Without a user configuration the user cache only shadows the
    // system's: compile --user removes it.
    fs::remove_file(&user).unwrap();
    let out = root.ctl(&["compile", "--user"], &env);
    ok(&out);
    assert!(!user_cache.exists());
    assert!(stderr(&out).contains("removed"), "{}", stderr(&out));
}

#[test]
fn compile_without_any_layer_removes_the_stale_system_cache() {
    let root = Root::new("nolayers");
    root.etc("[defaults]\nlog_level = \"info\"\n");
    ok(&root.ctl(&["compile"], &[]));
    assert!(root.cache().is_file());
    fs::remove_file(root.dir.join("etc/binfmt-dispatcher.toml")).unwrap();
    let out = root.ctl(&["compile"], &[]);
    ok(&out);
    assert!(!root.cache().exists(), "{}", stderr(&out));
}

#[test]
fn the_original_dispatchers_config_compiles_and_behaves() {
    let dir = temp_dir("original");
    let toml = dir.join("binfmt-dispatcher.toml");
    fs::write(&toml, ORIGINAL).unwrap();
    let cache = dir.join("c.cache");
    ok(&ctl(&["compile", "-o", s(&cache), s(&toml)], &[]));
    let text = dump_of(&cache);
    for want in [
        "interpreter = \"fex\"",
        "log_level = \"info\"",
        "[muvm]\npath = \"/usr/bin/muvm\"",
        "[interpreters.fex]\nname = \"FEX\"\npath = \"/usr/bin/FEXInterpreter\"\nargv = \"fex\"\nuse_muvm = true\nrequired_paths = [\"/usr/share/fex-emu/RootFS/default.erofs\"]",
        "[interpreters.qemu]\nname = \"QEMU User space emulator\"\npath = \"/usr/bin/qemu-x86_64\"\nargv = \"qemu\"",
        "[interpreters.box64]\npath = \"/usr/bin/box64\"\nargv = \"box64\"",
        "[interpreters.qemu-static]\npath = \"/usr/bin/qemu-x86_64-static\"\nargv = \"qemu\"",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // Every binary goes to the default, FEX; without its RootFS it is
    // skipped, and the original has no fallbacks.
    let foreign = dir.join("foreign");
    write_foreign(&foreign);
    let out = ctl(
        &["explain", "--json", s(&foreign)],
        &[("BINFMT_DISPATCHER_CACHE", s(&cache))],
    );
    let j = parse_json(&stdout(&out));
    assert_eq!(j.at("chosen").str(), "fex");
    assert_eq!(j.at("reason").at("kind").str(), "default");
    let tried = j.at("tried").arr();
    assert_eq!(tried.len(), 1, "{}", stdout(&out));
    assert_eq!(tried[0].at("failure").str(), "required_path_missing");
    assert_eq!(j.at("runs"), &Json::Null);
    assert_eq!(j.at("status").num(), 127);
    assert_eq!(out.status.code(), Some(1));
}

/// FEX under muvm on a 16 KiB host: the original's use_muvm, with paths
/// that exist here.
#[test]
fn use_muvm_wraps_on_hosts_without_4k_pages() {
    let dir = temp_dir("muvm");
    let toml = dir.join("c.toml");
    let fex = dir.join("FEXInterpreter");
    fs::copy(reporter(), &fex).unwrap();
    fs::write(
        &toml,
        format!(
            "[defaults]\ninterpreter = \"fex\"\n[muvm]\npath = \"{r}\"\n[interpreters.fex]\npath = \"{f}\"\nrequired_paths = [\"{r}\"]\nuse_muvm = true\n",
            r = reporter().display(),
            f = fex.display()
        ),
    )
    .unwrap();
    let cache = dir.join("c.cache");
    ok(&ctl(&["compile", "-o", s(&cache), s(&toml)], &[]));
    let foreign = dir.join("foreign");
    write_foreign(&foreign);
    let env = [("BINFMT_DISPATCHER_CACHE", s(&cache))];
    let j = parse_json(&ok(&ctl(
        &[
            "explain",
            "--json",
            "--page-size",
            "16384",
            s(&foreign),
            "a",
        ],
        &env,
    )));
    let f = s(&foreign);
    assert_eq!(j.at("exec").str(), s(reporter()));
    assert_eq!(
        j.at("argv").strs(),
        vec![s(reporter()), "--", s(&fex), f, f, "a"]
    );
    assert_eq!(j.at("execfd").num(), 3);
    let j = parse_json(&ok(&ctl(
        &["explain", "--json", "--page-size", "4096", s(&foreign), "a"],
        &env,
    )));
    assert_eq!(j.at("argv").strs(), vec![s(&fex), f, f, "a"]);
    let env_list = j.at("env").strs();
    assert!(env_list.contains(&"FEX_EXECVEFD=3"), "{env_list:?}");
}

/// One bad configuration: what stderr must mention.
struct Bad {
    toml: &'static str,
    wants: &'static [&'static str],
}

const BAD: &[Bad] = &[
    Bad {
        toml: "[interpreters.x]\npath = \"/usr/bin/x\"\nname = \"unterminated\n",
        wants: &[":3:", "TOML syntax error"],
    },
    Bad {
        toml: "[defaults]\ninterpreter = \"nope\"\n",
        wants: &[":2:", "[defaults] interpreter", "`nope`", "no [interpreters.*]"],
    },
    Bad {
        toml: "[interpreters.x]\npath = \"/usr/bin/x\"\nfallback = [\"ghost\"]\n",
        wants: &[":3:", "[interpreters.x] fallback", "`ghost`"],
    },
    Bad {
        toml: "[interpreters.x]\npath = \"/usr/bin/x\"\n[[rules]]\narch = \"aarch64\"\ninterpreter = \"ghost\"\n",
        wants: &[":5:", "[[rules]] interpreter", "`ghost`"],
    },
    Bad {
        toml: "[interpreters.x]\npath = \"/usr/bin/x\"\n[binaries.b]\npath = \"/usr/bin/b\"\ninterpreter = \"ghost\"\n",
        wants: &[":5:", "[binaries.b] interpreter", "`ghost`"],
    },
    Bad {
        toml: "[interpreters.x]\npath = \"bin/x\"\n",
        wants: &[":2:", "[interpreters.x] path", "absolute", "`bin/x`"],
    },
    Bad {
        toml: "[interpreters.x]\npath = \"/usr/bin/x\"\nrequired_paths = [\"rootfs\"]\n",
        wants: &[":3:", "[interpreters.x] required_paths", "absolute", "`rootfs`"],
    },
    Bad {
        toml: "[muvm]\npath = \"muvm\"\n",
        wants: &[":2:", "[muvm] path", "absolute"],
    },
    Bad {
        toml: "[interpreters.x]\npath = \"/usr/bin/x\"\npaht = \"/usr/bin/y\"\n",
        wants: &[":3:", "unknown key `paht`", "[interpreters.x]"],
    },
    Bad {
        toml: "[defaults]\nloglevel = \"info\"\n",
        wants: &[":2:", "unknown key `loglevel`", "[defaults]"],
    },
    Bad {
        toml: "[defaults]\nlog_level = \"loud\"\n",
        wants: &[":2:", "[defaults] log_level", "`loud`"],
    },
    Bad {
        toml: "[interpreters.x]\npath = \"/usr/bin/x\"\nuse_muvm = \"yes\"\n",
        wants: &[":3:", "[interpreters.x] use_muvm", "true or false"],
    },
    Bad {
        toml: "[interpreters.x]\npath = \"/usr/bin/x\"\nargv = \"qemuu\"\n",
        wants: &[":3:", "[interpreters.x] argv", "`qemuu`"],
    },
    Bad {
        toml: "[interpreters.x]\npath = \"/usr/bin/x\"\n[[rules]]\narch = \"z80\"\ninterpreter = \"x\"\n",
        wants: &[":4:", "[[rules]] #1 arch", "`z80`"],
    },
    Bad {
        toml: "[interpreters.x]\npath = \"/usr/bin/x\"\n[[rules]]\nclass = 16\ninterpreter = \"x\"\n",
        wants: &[":4:", "[[rules]] #1 class", "32 or 64"],
    },
    Bad {
        toml: "[interpreters.x]\npath = \"/usr/bin/x\"\nargv = \"custom\"\ntemplate = [\"{interpreter}\", \"{bogus}\"]\n",
        wants: &[":4:", "[interpreters.x] template", "`{bogus}`"],
    },
];

#[test]
fn every_error_class_names_file_key_and_problem_and_writes_nothing() {
    let dir = temp_dir("errors");
    let good = dir.join("good.toml");
    fs::write(&good, "[interpreters.ok]\npath = \"/usr/bin/ok\"\n").unwrap();
    for (n, bad) in BAD.iter().enumerate() {
        // --output: the old cache stays, byte for byte.
        let toml = dir.join(format!("bad{n}.toml"));
        fs::write(&toml, bad.toml).unwrap();
        let cache = dir.join(format!("out{n}.cache"));
        ok(&ctl(&["compile", "-o", s(&cache), s(&good)], &[]));
        let before = fs::read(&cache).unwrap();
        let out = ctl(&["compile", "-o", s(&cache), s(&good), s(&toml)], &[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{}: {err}", bad.toml);
        assert!(err.contains(s(&toml)), "the file is not named:\n{err}");
        for want in bad.wants {
            assert!(err.contains(want), "{:?} not in:\n{err}", want);
        }
        assert_eq!(err.lines().count(), 1, "one line:\n{err}");
        assert_eq!(fs::read(&cache).unwrap(), before, "{}", bad.toml);
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

        // The layers under --root: the same message, the system cache kept.
        let root = Root::new("errors-root");
        root.vendor(
            "10-good.toml",
            "[interpreters.ok]\npath = \"/usr/bin/ok\"\n",
        );
        ok(&root.ctl(&["compile"], &[]));
        let before = fs::read(root.cache()).unwrap();
        let etc = root.etc(bad.toml);
        let out = root.ctl(&["compile"], &[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(s(&etc)), "{err}");
        for want in bad.wants {
            assert!(err.contains(want), "{:?} not in:\n{err}", want);
        }
        assert_eq!(fs::read(root.cache()).unwrap(), before);
    }
}

#[test]
fn a_missing_layer_for_output_is_an_error() {
    let dir = temp_dir("missing-layer");
    let cache = dir.join("c.cache");
    let out = ctl(
        &["compile", "-o", s(&cache), s(&dir.join("nope.toml"))],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("nope.toml"), "{}", stderr(&out));
    assert!(!cache.exists());
}

#[test]
fn a_reader_of_the_old_cache_keeps_reading_it_whole() {
    let root = Root::new("atomic");
    root.etc("[interpreters.old]\npath = \"/usr/bin/old\"\n");
    ok(&root.ctl(&["compile"], &[]));
    let old = fs::read(root.cache()).unwrap();
    let mut reader = fs::File::open(root.cache()).unwrap();
    let mut first = vec![0u8; 16];
    reader.read_exact(&mut first).unwrap();
    // A much larger configuration replaces it while the reader is open.
    let mut big = String::from("[interpreters.new]\npath = \"/usr/bin/new\"\n");
    for i in 0..2000 {
        big += &format!("[binaries.b{i}]\npath = \"/opt/b/{i}\"\ninterpreter = \"new\"\n");
    }
    root.etc(&big);
    ok(&root.ctl(&["compile"], &[]));
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    first.extend(rest);
    assert_eq!(first, old, "the open file changed under its reader");
    let new = fs::read(root.cache()).unwrap();
    assert_ne!(new, old);
    assert!(new.len() > 10 * old.len());
}

#[test]
fn dump_round_trips_the_default_and_every_key() {
    let dir = temp_dir("dump");
    // The configuration that uses every key, as the config crate's tests have it.
    let every = Path::new(ROOT).join("crates/config/tests/v1/every-key.toml");
    let default = Path::new(ROOT).join("data/binfmt-dispatcher.toml");
    for source in [default.as_path(), every.as_path()] {
        let first = dir.join("first.cache");
        ok(&ctl(&["compile", "-o", s(&first), s(source)], &[]));
        let text = dump_of(&first);
        let dumped = dir.join("dumped.toml");
        fs::write(&dumped, &text).unwrap();
        let second = dir.join("second.cache");
        ok(&ctl(&["compile", "-o", s(&second), s(&dumped)], &[]));
        assert!(
            fs::read(&first).unwrap() == fs::read(&second).unwrap(),
            "{}: the dump compiles to other bytes:\n{text}",
            source.display()
        );
    }
    // Without FILE: the cache the dispatcher would use; with none, the
    // built-in configuration, which is the default's.
    let cache = dir.join("first.cache");
    let via_env = ok(&ctl(&["dump"], &[("BINFMT_DISPATCHER_CACHE", s(&cache))]));
    assert_eq!(body(&via_env), body(&dump_of(&cache)));
    let root = Root::new("dump-root");
    let builtin = ok(&root.ctl(&["dump"], &[]));
    assert!(builtin.starts_with("# binfmtctl dump of the built-in configuration"));
    let default_cache = dir.join("default.cache");
    ok(&ctl(
        &["compile", "-o", s(&default_cache), s(&default)],
        &[],
    ));
    assert_eq!(body(&builtin), body(&dump_of(&default_cache)));
}

/// A dump without its first (comment) line.
fn body(dump: &str) -> &str {
    dump.split_once('\n').unwrap().1
}

#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let text = ok(&ctl(&["completions", shell], &[]));
        assert!(text.contains("binfmtctl"), "{shell}");
        assert!(text.contains("explain"), "{shell}");
    }
}

// ---------------------------------------------------------------------
// explain against the real trampoline.

/// Runs, in one private binfmt_misc with the dispatcher registered with
/// `flags`, `./foreign` and `binfmtctl explain --json ./foreign` through the
/// launcher with the same environment; returns the reporter's report and
/// explain's JSON.
fn trampoline_and_explain(dir: &Path, flags: &str, env: &[&str], args: &[&str]) -> (Report, Json) {
    let launch = |program: &str, argv: &[&str]| {
        let mut cmd = sh_quote(launcher().to_str().unwrap());
        for e in env {
            cmd += " -e ";
            cmd += &sh_quote(e);
        }
        cmd += " ";
        cmd += &sh_quote(program);
        for a in argv {
            cmd += " ";
            cmd += &sh_quote(a);
        }
        cmd
    };
    let mut guest = vec!["CUSTOM0"];
    guest.extend_from_slice(args);
    let mut explain = vec!["binfmtctl", "explain", "--json"];
    if flags.contains('P') {
        explain.extend(["--argv0", "CUSTOM0"]);
    }
    explain.push("./foreign");
    explain.extend_from_slice(args);
    let script = format!(
        "{}\necho '=== explain'\n{}\n",
        launch("./foreign", &guest),
        launch(BINFMTCTL, &explain)
    );
    let out = run_in_private_binfmt_in(dir, &[dispatcher_entry(flags)], &script, &[]);
    let text = stdout(&out);
    let (report, json) = text
        .split_once("=== explain\n")
        .unwrap_or_else(|| panic!("no explain output:\n{text}\n{}", stderr(&out)));
    (parse_report(report.as_bytes()), parse_json(json))
}

#[test]
fn explain_agrees_with_the_trampoline() {
    let dir = temp_dir("explain-agrees");
    write_foreign(&dir.join("foreign"));
    let r = reporter().to_str().unwrap();
    let configs = [
        ("qemu", "argv = \"qemu\""),
        ("box64", "argv = \"box64\""),
        ("box86", "argv = \"box86\"\nenv = { EXTRA = \"1\", KEEP = \"replaced\" }"),
        ("fex", "argv = \"fex\""),
        ("plain", "argv = \"plain\""),
        (
            "custom",
            "argv = \"custom\"\ntemplate = [\"{interpreter}\", \"--fd={execfd}\", \"{argv0}\", \"x{binary}y\", \"{args}\"]",
        ),
    ];
    for (style, keys) in configs {
        let toml = format!(
            "[interpreters.missing]\npath = \"{d}/not-installed\"\nfallback = [\"t\"]\n\
             [interpreters.t]\npath = \"{r}\"\n{keys}\n\
             [[rules]]\narch = \"aarch64\"\ninterpreter = \"missing\"\n",
            d = dir.display()
        );
        let cache = compile_cache(&dir, style, &toml);
        let cache_var = format!("BINFMT_DISPATCHER_CACHE={}", cache.display());
        for flags in ["", "P", "POCF", "OC"] {
            let env = [
                cache_var.as_str(),
                "KEEP=1",
                "BOX64_ARG0=stale",
                "FEX_EXECVEFD=99",
            ];
            let (rep, j) = trampoline_and_explain(&dir, flags, &env, &["a", "b c", ""]);
            let what = format!("{style} with flags {flags:?}");
            assert!(!rep.argv.is_empty(), "{what}: the reporter did not run");
            assert_eq!(j.at("argv").strs(), rep.argv, "{what}");
            assert_eq!(j.at("env").strs(), rep.env, "{what}");
            assert_eq!(j.at("exec").str(), r, "{what}");
            assert_eq!(j.at("chosen").str(), "missing", "{what}");
            assert_eq!(j.at("reason").at("kind").str(), "rule", "{what}");
            assert_eq!(j.at("reason").at("number").num(), 1, "{what}");
            assert_eq!(
                j.at("tried").arr()[0].at("failure").str(),
                "missing",
                "{what}"
            );
            assert_eq!(j.at("runs").at("interpreter").str(), "t", "{what}");
            assert_eq!(j.at("cache").at("source").str(), "environment", "{what}");
            assert_eq!(j.at("header").at("machine").num(), 183, "{what}");
            // The descriptor the interpreter gets is the one explain names.
            match j.at("execfd") {
                Json::Null => assert_eq!(rep.fds, Vec::<u32>::new(), "{what}"),
                fd => assert_eq!(rep.fds, vec![fd.num() as u32], "{what}"),
            }
        }
    }
}

#[test]
fn explain_agrees_on_overrides_and_the_environment_override() {
    let dir = temp_dir("explain-override");
    write_foreign(&dir.join("foreign"));
    let toml = format!(
        "[interpreters.rule]\npath = \"{r}\"\nargv = \"custom\"\ntemplate = [\"{{interpreter}}\", \"RULE\"]\n\
         [interpreters.bin]\npath = \"{r}\"\nargv = \"custom\"\ntemplate = [\"{{interpreter}}\", \"BINARY\"]\n\
         [interpreters.env]\npath = \"{r}\"\nargv = \"custom\"\ntemplate = [\"{{interpreter}}\", \"ENV\"]\n\
         [binaries.f]\npath = \"{d}/foreign\"\ninterpreter = \"bin\"\n\
         [[rules]]\narch = \"aarch64\"\ninterpreter = \"rule\"\n",
        r = reporter().display(),
        d = dir.display()
    );
    let cache = compile_cache(&dir, "c", &toml);
    let cache_var = format!("BINFMT_DISPATCHER_CACHE={}", cache.display());
    let (rep, j) = trampoline_and_explain(&dir, "POCF", &[&cache_var], &[]);
    assert_eq!(rep.argv[1], "BINARY");
    assert_eq!(j.at("argv").strs(), rep.argv);
    assert_eq!(j.at("reason").at("kind").str(), "binary");
    let (rep, j) = trampoline_and_explain(
        &dir,
        "POCF",
        &[&cache_var, "BINFMT_DISPATCHER_INTERPRETER=env"],
        &[],
    );
    assert_eq!(rep.argv[1], "ENV");
    assert_eq!(j.at("argv").strs(), rep.argv);
    assert_eq!(j.at("reason").at("kind").str(), "environment");
}

#[test]
fn explain_text_names_the_decision_and_the_skipped() {
    let dir = temp_dir("explain-text");
    write_foreign(&dir.join("foreign"));
    let toml = format!(
        "[interpreters.first]\npath = \"/nonexistent/emu\"\nrequired_paths = [\"/nonexistent/rootfs\"]\nfallback = [\"second\"]\n\
         [interpreters.second]\npath = \"{}\"\nfallback = [\"third\"]\n\
         [interpreters.third]\npath = \"{}\"\nargv = \"qemu\"\n\
         [[rules]]\narch = \"aarch64\"\ninterpreter = \"first\"\n",
        dir.display(),
        reporter().display()
    );
    let cache = compile_cache(&dir, "c", &toml);
    let out = ctl(
        &["explain", s(&dir.join("foreign")), "arg"],
        &[("BINFMT_DISPATCHER_CACHE", s(&cache))],
    );
    let text = ok(&out);
    for want in [
        "machine: aarch64 (183)",
        "64-bit, little-endian",
        "decision: first, by rule #1 (arch = \"aarch64\")",
        "skipped first (/nonexistent/emu): required path /nonexistent/rootfs is missing",
        "skipped second",
        "cannot execute",
        "runs: third",
        "argv[1] = \"-0\"",
        "argv[4] = \"arg\"",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
    // Nothing runnable: exit 1, and the trampoline's status in the text.
    let toml =
        "[interpreters.gone]\npath = \"/nonexistent/x\"\n[defaults]\ninterpreter = \"gone\"\n";
    let cache = compile_cache(&dir, "gone", toml);
    let out = ctl(
        &["explain", s(&dir.join("foreign"))],
        &[("BINFMT_DISPATCHER_CACHE", s(&cache))],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("exits 127"), "{}", stdout(&out));
    // A cache the environment names that is not there: skipped, said so,
    // in the line the trampoline writes.
    let out = ctl(
        &["explain", s(&dir.join("foreign"))],
        &[("BINFMT_DISPATCHER_CACHE", "/nonexistent/c.cache")],
    );
    let text = stdout(&out);
    assert!(
        text.contains("stderr: binfmt-dispatcher: ignoring cache /nonexistent/c.cache: not found"),
        "{text}"
    );
}

// ---------------------------------------------------------------------
// check.

#[test]
fn check_reports_caches_interpreters_and_registration() {
    let root = Root::new("check");
    let etc = root.etc(&format!(
        "[interpreters.r]\npath = \"{}\"\n[interpreters.absent]\npath = \"/nonexistent/emu\"\n[defaults]\ninterpreter = \"r\"\n",
        reporter().display()
    ));
    let run_check = |registered: bool| {
        let entries = if registered {
            vec![dispatcher_entry("POCF")]
        } else {
            vec![]
        };
        let script = format!(
            "{} --root {} check; echo \"status=$?\"",
            sh_quote(BINFMTCTL),
            sh_quote(s(&root.dir))
        );
        let out = run_in_private_binfmt_in(&root.dir, &entries, &script, &[]);
        stdout(&out)
    };
    // Not compiled yet.
    let text = run_check(true);
    assert!(text.contains("error: system cache"), "{text}");
    assert!(text.contains("is missing"), "{text}");
    assert!(text.ends_with("status=1\n"), "{text}");
    // Compiled: all is well, with a warning for the absent interpreter.
    ok(&root.ctl(&["compile"], &[]));
    let text = run_check(true);
    assert!(text.contains("ok: system cache"), "{text}");
    assert!(
        text.contains("warning: 1 of 2 interpreters are not installed"),
        "{text}"
    );
    assert!(text.contains("absent (/nonexistent/emu)"), "{text}");
    assert!(text.contains("ok: registered: dispatch-aarch64"), "{text}");
    assert!(text.contains("(flags: POCF)"), "{text}");
    assert!(text.ends_with("status=0\n"), "{text}");
    // No binfmt_misc where it is looked for.
    let out = root.ctl(&["check", "--binfmt-misc", "/nonexistent/binfmt_misc"], &[]);
    let text = stdout(&out);
    assert!(
        text.contains("error: /nonexistent/binfmt_misc does not exist"),
        "{text}"
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    // Not registered.
    let text = run_check(false);
    assert!(
        text.contains("error: binfmt-dispatcher is not registered"),
        "{text}"
    );
    assert!(text.ends_with("status=1\n"), "{text}");
    // A source newer than the cache, and different.
    std::thread::sleep(std::time::Duration::from_millis(20));
    fs::write(
        &etc,
        fs::read_to_string(&etc).unwrap() + "[muvm]\npath = \"/usr/bin/muvm\"\n",
    )
    .unwrap();
    let text = run_check(true);
    assert!(text.contains("is older than"), "{text}");
    assert!(text.contains("run `binfmtctl compile`"), "{text}");
    assert!(text.ends_with("status=1\n"), "{text}");
    // An invalid configuration.
    fs::write(&etc, "[defaults]\ninterpreter = \"nope\"\n").unwrap();
    let text = run_check(true);
    assert!(text.contains("error: system configuration:"), "{text}");
    assert!(text.contains("`nope`"), "{text}");
    // No sources left but a cache: it hides the built-in configuration.
    fs::remove_file(&etc).unwrap();
    let text = run_check(true);
    assert!(
        text.contains("exists but there is no configuration file"),
        "{text}"
    );
    assert!(text.ends_with("status=1\n"), "{text}");
}

// ---------------------------------------------------------------------
// Reading explain's JSON: a missing key or another type fails the test.

trait Expect {
    fn at(&self, key: &str) -> &Json;
    fn str(&self) -> &str;
    fn num(&self) -> u64;
    fn arr(&self) -> &[Json];
    fn strs(&self) -> Vec<&str>;
}

impl Expect for Json {
    fn at(&self, key: &str) -> &Json {
        self.get(key)
            .unwrap_or_else(|| panic!("no key {key} in {self}"))
    }
    fn str(&self) -> &str {
        self.as_str()
            .unwrap_or_else(|| panic!("not a string: {self}"))
    }
    fn num(&self) -> u64 {
        self.as_u64()
            .unwrap_or_else(|| panic!("not a number: {self}"))
    }
    fn arr(&self) -> &[Json] {
        self.as_array()
            .unwrap_or_else(|| panic!("not an array: {self}"))
    }
    fn strs(&self) -> Vec<&str> {
        self.arr().iter().map(Expect::str).collect()
    }
}

fn parse_json(text: &str) -> Json {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

#[test]
fn the_example_config_compiles_and_shows_every_key() {
    let example = Path::new(ROOT).join("docs/binfmt-dispatcher.toml.example");
    let dir = temp_dir("example");
    let cache = dir.join("c.cache");
    ok(&ctl(&["compile", "-o", s(&cache), s(&example)], &[]));
    let text = fs::read_to_string(&example).unwrap();
    let keys = [
        "[defaults]",
        "interpreter =",
        "log_level =",
        "[muvm]",
        "[interpreters.",
        "name =",
        "path =",
        "required_paths =",
        "use_muvm =",
        "fallback =",
        "argv =",
        "template =",
        "env =",
        "install_hint =",
        "[binaries.",
        "[[rules]]",
        "arch =",
        "format =",
        "machine =",
        "class =",
        "endian =",
        "osabi =",
        "flags =",
        "flags_mask =",
        "interp =",
    ];
    for key in keys {
        assert!(
            text.lines().any(|l| l.starts_with(key)),
            "the example does not use {key}"
        );
    }
}

#[test]
fn shipped_completions_are_up_to_date() {
    let data = Path::new(ROOT).join("data/completions");
    for (shell, file) in [
        ("bash", "binfmtctl.bash"),
        ("zsh", "_binfmtctl"),
        ("fish", "binfmtctl.fish"),
    ] {
        let generated = ok(&ctl(&["completions", shell], &[]));
        let shipped = fs::read_to_string(data.join(file)).unwrap_or_default();
        assert!(
            generated == shipped,
            "data/completions/{file} is stale: regenerate with `binfmtctl completions {shell} > data/completions/{file}`"
        );
    }
}

/// Set, `shipped_man_pages_are_up_to_date` writes the pages instead.
const WRITE_MAN: &str = "BINFMTCTL_WRITE_MAN";

#[test]
fn shipped_man_pages_are_up_to_date() {
    let docs = Path::new(ROOT).join("docs");
    let write = std::env::var_os(WRITE_MAN).is_some();
    let pages = binfmtctl::man::pages();
    let mut stale = Vec::new();
    for page in &pages {
        let path = docs.join(&page.file);
        if write {
            fs::write(&path, &page.roff).unwrap();
        } else if fs::read_to_string(&path).ok().as_ref() != Some(&page.roff) {
            stale.push(page.file.clone());
        }
    }
    // A page of a command that is gone.
    for entry in fs::read_dir(&docs).unwrap() {
        let file = entry.unwrap().file_name().into_string().unwrap();
        let ours = file.starts_with("binfmtctl") && file.ends_with(".1");
        if ours && !pages.iter().any(|p| p.file == file) {
            match write {
                true => fs::remove_file(docs.join(&file)).unwrap(),
                false => stale.push(file),
            }
        }
    }
    assert!(
        stale.is_empty(),
        "stale in docs/: {stale:?}: regenerate with \
         `{WRITE_MAN}=1 cargo test -p binfmtctl --test binfmtctl shipped_man_pages`"
    );
}

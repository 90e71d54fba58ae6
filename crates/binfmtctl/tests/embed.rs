//! `binfmtctl compile --embed`: a trampoline that carries the system's
//! compiled configuration, in a private binfmt_misc.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::*;

/// A configuration sending every binary to the reporter, which sees
/// `FROM=<from>` in its environment.
fn config(from: &str) -> String {
    format!(
        "[interpreters.rep]\npath = \"{}\"\nargv = \"qemu\"\nenv = {{ FROM = \"{from}\" }}\n[defaults]\ninterpreter = \"rep\"\n",
        reporter().display()
    )
}

fn binfmtctl(args: &[&str]) -> Output {
    Command::new(BINFMTCTL)
        .args(args)
        .env_remove("BINFMT_DISPATCHER_CACHE")
        .output()
        .unwrap()
}

/// `binfmtctl compile --embed dispatcher() --output OUT TOML`.
fn compile_embed(dispatcher: &Path, out: &Path, toml: &Path) -> Output {
    binfmtctl(&[
        "compile",
        "--embed",
        dispatcher.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        toml.to_str().unwrap(),
    ])
}

/// [`compile_embed`] of `config(from)`, which must succeed.
fn embed(dir: &Path, from: &str, dispatcher: &Path, out: &Path) {
    let toml = dir.join(format!("{from}.toml"));
    fs::write(&toml, config(from)).unwrap();
    let run = compile_embed(dispatcher, out, &toml);
    assert!(run.status.success(), "{}", stderr(&run));
}

/// The `FROM` the reporter saw.
fn from(out: &Output) -> String {
    let rep = report_of(out);
    rep.env
        .iter()
        .find_map(|e| e.strip_prefix("FROM="))
        .unwrap_or_else(|| panic!("no FROM in {:?}", rep.env))
        .to_string()
}

/// A shell script that puts `system` in place as the system cache (on a
/// tmpfs over /var/cache that only this namespace sees), then runs `run`.
fn with_system_cache(system: &Path, run: &str) -> String {
    format!(
        "mount -t tmpfs none /var/cache && mkdir -p /var/cache/binfmt-dispatcher && \
         cp {} /var/cache/binfmt-dispatcher/binfmt-dispatcher.cache && {run}",
        sh_quote(system.to_str().unwrap())
    )
}

fn entry(dispatcher: &Path) -> Entry<'_> {
    (
        "dispatch-aarch64",
        AARCH64_MAGIC,
        AARCH64_MASK,
        dispatcher.to_str().unwrap(),
        "POCF",
    )
}

#[test]
fn the_embedded_configuration_replaces_the_system_cache_but_not_the_users() {
    require_qemu();
    let dir = temp_dir("embed");
    let foreign = dir.join("foreign");
    write_foreign(&foreign);
    let system = compile_cache(&dir, "system", &config("system"));
    let user = compile_cache(&dir, "user", &config("user"));
    let embedded = dir.join("binfmt-dispatcher-embedded");
    embed(&dir, "embedded", Path::new(dispatcher()), &embedded);
    let mode = fs::metadata(&embedded).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);

    // The shipped trampoline reads the system cache.
    let run = with_system_cache(&system, "./foreign");
    let out = run_in_private_binfmt_in(&dir, &[entry(Path::new(dispatcher()))], &run, &[]);
    assert_eq!(from(&out), "system");

    // The embedded one does not even look for it: pread of the header,
    // the user cache's open, fstat and close-on-exec of the binary's
    // descriptor, then the interpreter's execve.
    let log = dir.join("strace.log");
    let traced = format!(
        "strace -f -qq -o {} ./foreign",
        sh_quote(log.to_str().unwrap())
    );
    let out = run_in_private_binfmt_in(
        &dir,
        &[entry(&embedded)],
        &with_system_cache(&system, &traced),
        &[],
    );
    assert_eq!(from(&out), "embedded");
    let text = fs::read_to_string(&log).unwrap();
    let (calls, exec) = strace::calls_between_execs(&text, |a| a == "\"./foreign\"")
        .unwrap_or_else(|| panic!("no execve of ./foreign followed by another in:\n{text}"));
    assert!(exec.contains(reporter().to_str().unwrap()), "{exec}");
    let names: Vec<&str> = calls.iter().map(|c| c.split('(').next().unwrap()).collect();
    assert_eq!(names, ["pread64", "open", "fstat", "fcntl"], "{calls:#?}");
    assert!(
        calls[1].contains("/.cache/binfmt-dispatcher/"),
        "{calls:#?}"
    );

    // A user's cache still wins.
    let cache_dir = dir.join(".cache/binfmt-dispatcher");
    fs::create_dir_all(&cache_dir).unwrap();
    fs::copy(&user, cache_dir.join("binfmt-dispatcher.cache")).unwrap();
    let run = with_system_cache(&system, "./foreign");
    let out = run_in_private_binfmt_in(&dir, &[entry(&embedded)], &run, &[]);
    assert_eq!(from(&out), "user");
}

#[test]
fn embedding_again_replaces_the_configuration_and_renews_f_registrations() {
    require_qemu();
    let dir = temp_dir("embed-again");
    write_foreign(&dir.join("foreign"));
    let embedded = dir.join("binfmt-dispatcher-embedded");
    embed(&dir, "first", Path::new(dispatcher()), &embedded);
    let second = dir.join("second.toml");
    // Longer than the first and than the built-in one: the segment grows,
    // and only the grown segment holds it.
    let mut toml = config("second");
    for i in 0..1000 {
        toml += &format!("[binaries.b{i}]\npath = \"/opt/b{i}\"\ninterpreter = \"rep\"\n");
    }
    fs::write(&second, toml).unwrap();

    // Registered with F, the kernel runs the file it opened at
    // registration: compile --embed registers such entries again.
    let script = format!(
        "./foreign && {ctl} compile --embed {e} --output {e} {second} && ./foreign",
        ctl = sh_quote(BINFMTCTL),
        e = sh_quote(embedded.to_str().unwrap()),
        second = sh_quote(second.to_str().unwrap()),
    );
    let out = run_in_private_binfmt_in(&dir, &[entry(&embedded)], &script, &[]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(
        text.contains("registered again: dispatch-aarch64 -> "),
        "{text}"
    );
    let froms: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("env:FROM="))
        .collect();
    assert_eq!(froms, ["first", "second"], "{text}");
    // The entry is as it was, enabled, with its flags.
    let out = run_in_private_binfmt_in(
        &dir,
        &[entry(&embedded)],
        &format!(
            "{} compile --embed {e} --output {e} {second} >/dev/null && cat /proc/sys/fs/binfmt_misc/dispatch-aarch64",
            sh_quote(BINFMTCTL),
            e = sh_quote(embedded.to_str().unwrap()),
            second = sh_quote(second.to_str().unwrap()),
        ),
        &[],
    );
    let status = stdout(&out);
    assert!(status.starts_with("enabled\n"), "{status}");
    assert!(status.contains("flags: POCF\n"), "{status}");
    assert!(
        status.contains(&format!(
            "magic {}",
            "7f454c460201010000000000000000000200b700"
        )),
        "{status}"
    );
}

#[test]
fn compile_embed_refuses_what_it_cannot_use_and_changes_nothing() {
    let dir = temp_dir("embed-refuse");
    let out_path = dir.join("out");
    let text = dir.join("text");
    fs::write(&text, "#!/bin/sh\nexit 0\n").unwrap();
    fs::write(dir.join("ok.toml"), config("ok")).unwrap();
    let ok = dir.join("ok.toml");
    for (dispatcher, why) in [
        (text.as_path(), "not a 64-bit little-endian ELF file"),
        // A dynamically linked program: its last segment has a zero-filled
        // tail (.bss), or no configuration ends it.
        (Path::new("/bin/sh"), "not a binfmt-dispatcher trampoline"),
        (&dir.join("missing"), "No such file"),
    ] {
        let run = compile_embed(dispatcher, &out_path, &ok);
        assert_eq!(run.status.code(), Some(1), "{}", dispatcher.display());
        assert!(stderr(&run).contains(why), "{}", stderr(&run));
        assert_eq!(stderr(&run).lines().count(), 1, "{}", stderr(&run));
        assert!(!out_path.exists());
    }

    // In place, from the system layers under --root: a TOML error names
    // its file, line and column, and the trampoline is left as it was.
    let root = dir.join("root");
    fs::create_dir_all(root.join("etc")).unwrap();
    let etc = root.join("etc/binfmt-dispatcher.toml");
    fs::write(&etc, "[interpreters.rep]\npath = 7\n").unwrap();
    let copy = dir.join("binfmt-dispatcher");
    fs::copy(dispatcher(), &copy).unwrap();
    let before = fs::read(&copy).unwrap();
    let in_place = |root: &Path| {
        binfmtctl(&[
            "--root",
            root.to_str().unwrap(),
            "compile",
            "--embed",
            copy.to_str().unwrap(),
        ])
    };
    let run = in_place(&root);
    assert_eq!(run.status.code(), Some(1));
    assert!(
        stderr(&run).contains(&format!("{}:2:8", etc.display())),
        "{}",
        stderr(&run)
    );
    assert_eq!(fs::read(&copy).unwrap(), before);
    // No configuration at all: nothing to embed.
    let empty = dir.join("empty-root");
    fs::create_dir_all(&empty).unwrap();
    let run = in_place(&empty);
    assert_eq!(run.status.code(), Some(1));
    assert!(
        stderr(&run).contains("nothing to embed"),
        "{}",
        stderr(&run)
    );
    assert_eq!(fs::read(&copy).unwrap(), before);
    // A valid one: replaced in place, and explain sees it there.
    fs::write(&etc, config("etc")).unwrap();
    let run = in_place(&root);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_ne!(fs::read(&copy).unwrap(), before);
    let foreign = dir.join("foreign");
    write_foreign(&foreign);
    let explain = |dispatcher: Option<&PathBuf>| {
        let mut args = vec!["--root", root.to_str().unwrap(), "explain", "--json"];
        if let Some(d) = dispatcher {
            args.extend(["--dispatcher", d.to_str().unwrap()]);
        }
        args.push(foreign.to_str().unwrap());
        stdout(&binfmtctl(&args))
    };
    let with = explain(Some(&copy));
    assert!(with.contains("\"FROM=etc\""), "{with}");
    // dump prints what a trampoline carries, as TOML that compiles to it.
    let dump = binfmtctl(&["dump", copy.to_str().unwrap()]);
    assert!(dump.status.success(), "{}", stderr(&dump));
    assert!(
        stdout(&dump).contains("FROM = \"etc\""),
        "{}",
        stdout(&dump)
    );
    let without = explain(None);
    assert!(!without.contains("FROM="), "{without}");

    // check compares the embedded configuration, not a system cache, with
    // the layers.
    let check = || {
        stdout(&binfmtctl(&[
            "--root",
            root.to_str().unwrap(),
            "check",
            "--dispatcher",
            copy.to_str().unwrap(),
            "--binfmt-misc",
            dir.join("no-binfmt_misc").to_str().unwrap(),
        ]))
    };
    let embedded_in = format!("system configuration embedded in {}", copy.display());
    let report = check();
    assert!(
        report.contains(&format!("ok: {embedded_in} is up to date")),
        "{report}"
    );
    assert!(!report.contains("system cache"), "{report}");
    fs::write(&etc, config("changed")).unwrap();
    let report = check();
    assert!(
        report.contains(&format!(
            "error: {embedded_in} differs from what `binfmtctl compile --embed {}` would write",
            copy.display()
        )) || report.contains(&format!("error: {embedded_in} is older than")),
        "{report}"
    );
}

#[test]
fn check_and_explain_find_a_registered_embedded_trampoline() {
    require_qemu();
    let dir = temp_dir("embed-registered");
    write_foreign(&dir.join("foreign"));
    let root = dir.join("root");
    fs::create_dir_all(root.join("etc")).unwrap();
    let etc = root.join("etc/binfmt-dispatcher.toml");
    fs::write(&etc, config("etc")).unwrap();
    let embedded = dir.join("binfmt-dispatcher-embedded");
    let run = compile_embed(Path::new(dispatcher()), &embedded, &etc);
    assert!(run.status.success(), "{}", stderr(&run));

    // Registered, it is the trampoline check and explain look at.
    let script = format!(
        "{ctl} --root {root} check; echo ---; {ctl} --root {root} explain --json ./foreign; \
         echo ---; {ctl} --root {root} dump",
        ctl = sh_quote(BINFMTCTL),
        root = sh_quote(root.to_str().unwrap()),
    );
    let out = run_in_private_binfmt_in(&dir, &[entry(&embedded)], &script, &[]);
    let text = stdout(&out);
    let [check, explain, dump]: [&str; 3] =
        text.split("---\n").collect::<Vec<_>>().try_into().unwrap();
    let shown = embedded.display();
    assert!(
        check.contains(&format!(
            "ok: system configuration embedded in {shown} is up to date"
        )),
        "{check}"
    );
    assert!(
        check.contains(&format!(
            "ok: the dispatcher uses the configuration embedded in {shown}"
        )),
        "{check}"
    );
    assert!(!check.contains("system cache"), "{check}");
    assert!(explain.contains("\"source\": \"embedded\""), "{explain}");
    assert!(explain.contains("\"FROM=etc\""), "{explain}");
    assert!(
        dump.starts_with(&format!(
            "# binfmtctl dump of the configuration embedded in {shown}"
        )),
        "{dump}"
    );

    // Registered the shipped trampoline instead: the system cache again.
    let out = run_in_private_binfmt_in(&dir, &[entry(Path::new(dispatcher()))], &script, &[]);
    let text = stdout(&out);
    assert!(text.contains("system cache"), "{text}");
    assert!(!text.contains("embedded"), "{text}");
}

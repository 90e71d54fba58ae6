//! `binfmtctl explain` against the kernel: for a corpus of binaries (an
//! ELF of every architecture binfmt_misc is told about, PT_INTERP early and
//! past the first KiB, PE and .NET, Java, Mach-O, deleted files, `/dev/fd`
//! names, names that look like options) times configurations (built-in,
//! overrides, path and interp rules, fallbacks past missing interpreters,
//! corrupt caches, secure mode), what explain predicts equals what the
//! kernel's exec through the dispatcher in a private binfmt_misc did: the
//! argv and envp a recording interpreter received, byte for byte, whether
//! the binary's descriptor stayed open, and for the failures the exit
//! status and the message.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;
use support::*;

/// Interpreters of the built-in configuration a machine may have.
const INSTALLED: &str = "/usr/bin/java /usr/bin/wine /usr/bin/wine64 /usr/bin/mono \
    /usr/bin/dotnet /usr/bin/box64 /usr/bin/box86 /usr/bin/FEX /usr/bin/FEXInterpreter";

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An aarch64 ELF header whose PT_INTERP names `interp`, with the program
/// headers and the string at `at` (past the first KiB when `at` is).
fn aarch64_with_interp(at: usize, interp: &str) -> Vec<u8> {
    let mut f = aarch64_elf();
    f.resize(f.len().max(at + 56 + interp.len() + 1), 0);
    f[32..40].copy_from_slice(&(at as u64).to_le_bytes()); // e_phoff
    f[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
    let ph = &mut f[at..at + 56];
    ph.fill(0);
    ph[0..4].copy_from_slice(&3u32.to_le_bytes()); // PT_INTERP
    ph[8..16].copy_from_slice(&((at + 56) as u64).to_le_bytes()); // p_offset
    ph[32..40].copy_from_slice(&((interp.len() + 1) as u64).to_le_bytes()); // p_filesz
    f[at + 56..at + 56 + interp.len()].copy_from_slice(interp.as_bytes());
    f
}

/// One exec: a file run through the shell, or by the launcher through a
/// descriptor (`/dev/fd/3`), deleted first or not.
struct Case {
    file: String,
    args: Vec<String>,
    /// `None`: run by name; `Some(unlink)`: through a descriptor.
    by_fd: Option<bool>,
}

impl Case {
    fn named(file: &str, args: &[&str]) -> Case {
        Case {
            file: file.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
            by_fd: None,
        }
    }
}

/// The corpus, written into `dir`.
fn corpus(dir: &Path, arches: &[Row]) -> Vec<Case> {
    let mut cases = Vec::new();
    for a in arches {
        let mut header = a.magic.clone();
        header.resize(header.len().max(64), 0);
        write_exec(&dir.join(&a.name), &header);
        cases.push(Case::named(
            &format!("./{}", a.name),
            &["one", "two words", ""],
        ));
    }
    write_exec(
        &dir.join("early"),
        &aarch64_with_interp(64, "/lib/ld-linux-aarch64.so.1"),
    );
    write_exec(
        &dir.join("late"),
        &aarch64_with_interp(2000, "/lib/ld-linux-aarch64.so.1"),
    );
    fs::create_dir_all(dir.join("games/sub")).unwrap();
    write_exec(&dir.join("games/sub/game"), &aarch64_elf());
    write_exec(&dir.join("pinned"), &aarch64_elf());
    write_exec(&dir.join("prog.exe"), &pe(0x80, 0x14c, false, false));
    write_exec(&dir.join("-dash.exe"), &pe(0x80, 0x8664, true, false));
    write_exec(&dir.join("tool.dll"), &pe(0x80, 0x14c, false, true));
    write_exec(&dir.join("Hello.class"), &java_class());
    // A class in a package: java is given the directory above com/ as its
    // class path, also when the class is reached through a symlink.
    fs::create_dir_all(dir.join("pkg/com/x")).unwrap();
    write_exec(
        &dir.join("pkg/com/x/Main.class"),
        &java_class_named("com/x/Main"),
    );
    std::os::unix::fs::symlink("pkg/com/x/Main.class", dir.join("main-link")).unwrap();
    let mut macho = b"\xcf\xfa\xed\xfe\x07\x00\x00\x01".to_vec();
    macho.resize(64, 0);
    write_exec(&dir.join("mac"), &macho);
    for (file, args) in [
        ("./early", &["-x"][..]),
        ("./late", &[]),
        (&format!("{}/games/sub/game", dir.display()), &["--help"]),
        (&format!("{}/pinned", dir.display()), &["a"]),
        ("./prog.exe", &["/c"]),
        ("./-dash.exe", &[]),
        ("./tool.dll", &["x y"]),
        ("./Hello.class", &[]),
        ("./pkg/com/x/Main.class", &["a b"]),
        ("./main-link", &["-x"]),
        ("./mac", &[]),
    ] {
        cases.push(Case::named(file, args));
    }
    for unlink in [false, true] {
        let file = format!("fd-{unlink}");
        write_exec(&dir.join(&file), &aarch64_elf());
        cases.push(Case {
            file: format!("./{file}"),
            args: vec!["via".into(), "fd".into()],
            by_fd: Some(unlink),
        });
    }
    cases
}

/// Interpreters that are all the reporter under other names and argv
/// conventions, chains with missing ones first, rules on paths, PT_INTERP,
/// formats and architectures, and a `[binaries]` override.
fn rich_config(dir: &Path) -> String {
    let r = reporter().display().to_string();
    let d = dir.display();
    format!(
        r#"[defaults]
interpreter = "gone"

[interpreters.gone]
path = "/nonexistent/emulator"
fallback = ["needs-root", "q"]

[interpreters.needs-root]
path = "{r}"
required_paths = ["/nonexistent/rootfs"]

[interpreters.q]
path = "{r}"
argv = "qemu"

[interpreters.box]
path = "{r}"
argv = "box64"
env = {{ BOX64_LOG = "0" }}

[interpreters.fex]
path = "{r}"
argv = "fex"

[interpreters.plain]
path = "{r}"
argv = "plain"

[interpreters.tpl]
path = "{r}"
argv = "custom"
template = ["{{interpreter}}", "--dir", "{{binary_dir}}", "--stem", "{{binary_stem}}", "--fd", "{{execfd}}", "{{binary}}", "{{args}}"]
fallback = ["plain"]

[binaries.pinned]
path = "{d}/pinned"
interpreter = "fex"

[[rules]]
path = "{d}/games/**"
interpreter = "box"

[[rules]]
interp = "/lib/ld-linux-aarch64.so.1"
interpreter = "tpl"

[[rules]]
format = "pe"
interpreter = "tpl"

[[rules]]
arch = "riscv64"
interpreter = "fex"

[[rules]]
arch = "s390x"
interpreter = "plain"
"#
    )
}

/// Nothing runs: x86 and every other ELF find no interpreter (127), PE
/// one they cannot execute (a directory, 126); the helper is the reporter,
/// executed for the first always and, with a display and no terminal, for
/// the second.
fn desktop_config(dir: &Path) -> String {
    format!(
        r#"[defaults]
interpreter = "gone"
missing_helper = "{r}"

[interpreters.gone]
path = "/nonexistent/emulator"
install_hint = "Install it."

[interpreters.dir]
path = "{d}"

[[rules]]
format = "pe"
interpreter = "dir"
"#,
        r = reporter().display(),
        d = dir.display()
    )
}

/// The shell commands that run `case` for real and through explain,
/// leaving their outputs in files numbered `i`.
fn commands(i: usize, case: &Case, env: &str, p_flag: bool, o_flag: bool) -> String {
    let args: Vec<String> = case.args.iter().map(|a| sh_quote(a)).collect();
    let args = args.join(" ");
    let mut explain = format!("{} explain --json", sh_quote(BINFMTCTL));
    if !o_flag {
        explain += " --no-execfd";
    }
    let file = sh_quote(&case.file);
    let Some(unlink) = case.by_fd else {
        if p_flag {
            explain += &format!(" --argv0 {file}");
        }
        return format!(
            "env {env} {explain} -- {file} {args} > e.{i} 2> ee.{i}\n\
             env {env} {file} {args} > o.{i} 2> oe.{i}; echo $? > s.{i}\n"
        );
    };
    // The launcher's descriptor on the file is 3, binfmt_misc's the next.
    explain += " --execfd 4";
    if p_flag {
        explain += " --argv0 argv0";
    }
    let launch = sh_quote(&launcher().display().to_string());
    let vars: String = env.split(' ').map(|v| format!(" -e {v}")).collect();
    let (u, rm) = if unlink {
        (" -u", format!("rm {file}; "))
    } else {
        ("", String::new())
    };
    format!(
        "cp {file} {file}.keep\n\
         {launch} -f{u}{vars} {file} argv0 {args} > o.{i} 2> oe.{i}; echo $? > s.{i}\n\
         cp {file}.keep {file}\n\
         (exec 3< {file}; {rm}env -i {env} {explain} -- /dev/fd/3 {args} > e.{i} 2> ee.{i})\n\
         cp {file}.keep {file}\n"
    )
}

/// Reads back case `i`: explain's JSON, the real run's status, report and
/// stderr.
fn outcome(dir: &Path, i: usize) -> (Value, i32, Vec<u8>, String) {
    let read = |n: &str| fs::read(dir.join(format!("{n}.{i}"))).unwrap_or_default();
    let json: Value = serde_json::from_slice(&read("e")).unwrap_or_else(|e| {
        panic!(
            "case {i}: explain printed no JSON ({e}): {}",
            String::from_utf8_lossy(&read("ee"))
        )
    });
    let status = String::from_utf8_lossy(&read("s")).trim().parse().unwrap();
    let stderr = String::from_utf8_lossy(&read("oe")).into_owned();
    (json, status, read("o"), stderr)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// Asserts that explain's prediction for case `i` is what happened.
fn check(what: &str, case: &Case, json: &Value, status: i32, out: &[u8], stderr: &str) {
    let predicted = json["status"].as_i64().unwrap() as i32;
    let lines: Vec<&str> = stderr.lines().collect();
    let said = strings(&json["stderr"]);
    let at = format!("{what}: {} {:?}", case.file, case.args);
    if !json["helper_exec"].is_null() {
        // The helper, the reporter here, ran after the dispatcher's line.
        assert_eq!(
            status, 0,
            "{at}: the helper ran; stderr: {stderr}\n{json:#}"
        );
        let report = parse_report(out);
        let helper = (strings(&json["helper_exec"]), strings(&json["helper_env"]));
        assert_eq!(
            (report.argv, report.env),
            helper,
            "{at}: the helper's argv and envp"
        );
        assert_eq!(lines, said, "{at}: the dispatcher's message");
        return;
    }
    if predicted != 0 {
        assert_eq!(
            status, predicted,
            "{at}: exit status; stderr: {stderr}\n{json:#}"
        );
        assert_eq!(lines, said, "{at}: the dispatcher's message");
        return;
    }
    assert_eq!(
        status, 0,
        "{at}: explain predicted a run; stderr: {stderr}\n{json:#}"
    );
    let report = parse_report(out);
    assert_eq!(report.argv, strings(&json["argv"]), "{at}: argv\n{json:#}");
    assert_eq!(report.env, strings(&json["env"]), "{at}: envp");
    if let Some(fd) = json["execfd"].as_u64() {
        assert!(
            report.fds.contains(&(fd as u32)),
            "{at}: descriptor {fd} kept"
        );
    } else {
        let fd = if case.by_fd.is_some() { 4 } else { 3 };
        assert!(!report.fds.contains(&fd), "{at}: descriptor {fd} closed");
    }
    assert_eq!(lines, said, "{at}: the dispatcher's messages");
}

/// A copy of `cache` with one byte of its data flipped past the header:
/// found corrupt only by the lookup that reads that chunk.
fn corrupt(cache: &Path, at: usize) -> PathBuf {
    let mut bytes = fs::read(cache).unwrap();
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0x55;
    let out = cache.with_extension(format!("corrupt-{at}"));
    fs::write(&out, bytes).unwrap();
    out
}

/// Every case under the registration `flags`, with every configuration.
fn run_corpus(flags: &str) {
    require_qemu();
    let dir = temp_dir(&format!("differential-{flags}"));
    // The ELF architectures this host does not run natively.
    let arches = registered_here();
    assert!(arches.len() >= 25, "the table lost its architectures");
    let cases = corpus(&dir, &arches);
    let rich = compile_cache(&dir, "rich", &rich_config(&dir));
    let desktop = compile_cache(&dir, "desktop", &desktop_config(&dir));
    let configs: Vec<(String, String)> = vec![
        ("built-in".into(), String::new()),
        (
            "rich".into(),
            format!("BINFMT_DISPATCHER_CACHE={}", rich.display()),
        ),
        (
            "corrupt header".into(),
            format!("BINFMT_DISPATCHER_CACHE={}", corrupt(&rich, 8).display()),
        ),
        (
            "corrupt data".into(),
            format!("BINFMT_DISPATCHER_CACHE={}", corrupt(&rich, 4000).display()),
        ),
        (
            "desktop, a display".into(),
            format!("BINFMT_DISPATCHER_CACHE={} DISPLAY=:0", desktop.display()),
        ),
        (
            "desktop, no display".into(),
            format!("BINFMT_DISPATCHER_CACHE={}", desktop.display()),
        ),
        (
            "rich, logging".into(),
            format!(
                "BINFMT_DISPATCHER_CACHE={} BINFMT_DISPATCHER_LOG=debug",
                rich.display()
            ),
        ),
    ];
    let entries: Vec<(String, String, String)> = arches
        .iter()
        .map(|a| (a.name.clone(), escaped(&a.magic), escaped(&a.mask)))
        .chain([
            ("pe".into(), "MZ".into(), String::new()),
            ("java".into(), r"\xca\xfe\xba\xbe".into(), String::new()),
            ("macho".into(), r"\xcf\xfa\xed\xfe".into(), String::new()),
        ])
        .collect();
    let entries: Vec<Entry<'_>> = entries
        .iter()
        .map(|(n, m, k)| (n.as_str(), m.as_str(), k.as_str(), dispatcher(), flags))
        .collect();
    // The built-in configuration's interpreters are the reporter too,
    // those installed here.
    let mut script = format!(
        "for q in /usr/bin/qemu-*-static {INSTALLED}; do \
         [ -e \"$q\" ] && mount --bind {} \"$q\"; done\n",
        sh_quote(&reporter().display().to_string())
    );
    let env_base = format!("PATH={PATH} HOME={}", dir.display());
    let (p_flag, o_flag) = (flags.contains('P'), flags.contains('O'));
    let mut all = Vec::new();
    for (what, vars) in &configs {
        for case in &cases {
            let env = format!("{env_base} {vars}").trim().to_string();
            script += &commands(all.len(), case, &env, p_flag, o_flag);
            all.push((what, case));
        }
    }
    // Longer than one argument may be: sh reads it from a file.
    fs::write(dir.join("cases.sh"), script).unwrap();
    run_in_private_binfmt_in(&dir, &entries, ". ./cases.sh", &[]);
    for (i, (what, case)) in all.iter().enumerate() {
        let (json, status, report, err) = outcome(&dir, i);
        check(
            &format!("{flags}, {what}"),
            case,
            &json,
            status,
            &report,
            &err,
        );
    }
}

#[test]
fn explain_predicts_every_exec_with_the_p_and_o_flags() {
    run_corpus("POCF");
}

#[test]
fn explain_predicts_every_exec_without_flags() {
    run_corpus("F");
}

/// A set-id exec (AT_SECURE), run by `nobody` on setuid-root foreign
/// files under POCF: `explain --secure` against the kernel, with the system
/// cache (path and interp rules, a fallback) or the built-in configuration,
/// the caller's variables and cache to be ignored, and a file deleted
/// after it was opened, which path rules must not choose.
#[test]
fn explain_predicts_set_id_execs() {
    require_qemu();
    const NOBODY: u32 = 65534;
    let dir = temp_dir("differential-secure");
    let files = [
        ("suid", aarch64_elf()),
        (
            "late",
            aarch64_with_interp(2000, "/lib/ld-linux-aarch64.so.1"),
        ),
        ("-dash", aarch64_elf()),
        ("gone", aarch64_elf()),
    ];
    for (name, bytes) in &files {
        let path = dir.join(name);
        fs::write(&path, bytes).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o4755)).unwrap();
    }
    let r = reporter().display().to_string();
    let system = compile_cache(
        &dir,
        "system",
        &format!(
            "[interpreters.gone]\npath = \"/nonexistent/emu\"\nfallback = [\"q\"]\n\
             [interpreters.q]\npath = \"{r}\"\nargv = \"qemu\"\n\
             [interpreters.tpl]\npath = \"{r}\"\nargv = \"custom\"\n\
             template = [\"{{interpreter}}\", \"{{binary}}\", \"{{execfd}}\", \"{{args}}\"]\n\
             [[rules]]\ninterp = \"/lib/ld-linux-aarch64.so.1\"\ninterpreter = \"tpl\"\n\
             [[rules]]\npath = \"{}/*\"\ninterpreter = \"gone\"\n",
            dir.display()
        ),
    );
    let evil = "[defaults]\ninterpreter = \"x\"\n[interpreters.x]\npath = \"/bin/sh\"\n";
    let evil = compile_cache(&dir, "evil", evil);
    // The caller may delete the files (the deleted-binary case): the
    // directory is theirs to write (binfmtctl writes no cache there then),
    // the files root's and setuid.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    let as_nobody = format!("setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups --");
    let explain = format!("{} explain --json --secure", sh_quote(BINFMTCTL));
    let mut script = format!("mount --bind {} {QEMU_AARCH64}\n", sh_quote(&r));
    let env = format!("PATH={PATH} BINFMT_DISPATCHER_CACHE={}", evil.display());
    let mut cases = Vec::new();
    for system_cache in [false, true] {
        if system_cache {
            script += &format!(
                "cp {} /var/cache/binfmt-dispatcher/binfmt-dispatcher.cache\n\
                 chmod 644 /var/cache/binfmt-dispatcher/binfmt-dispatcher.cache\n",
                system.display()
            );
        }
        for (file, args) in [("./suid", "a 'b c'"), ("./late", ""), ("./-dash", "-x")] {
            let i = cases.len();
            script += &format!(
                "{as_nobody} env -i {env} {explain} --argv0 {file} -- {file} {args} > e.{i} 2> ee.{i}\n\
                 {as_nobody} env -i {env} {file} {args} > o.{i} 2> oe.{i}; echo $? > s.{i}\n"
            );
            cases.push(Case::named(file, &[]));
        }
        // Deleted between its open and its exec: named by descriptor, and
        // with path rules in force not run at all.
        let i = cases.len();
        let launch = sh_quote(&launcher().display().to_string());
        script += &format!(
            "cp gone gone.keep\n\
             {as_nobody} {launch} -f -u -e PATH={PATH} ./gone argv0 > o.{i} 2> oe.{i}; echo $? > s.{i}\n\
             cp gone.keep gone; chmod 4755 gone\n\
             (exec 3< gone; {as_nobody} sh -c 'rm gone; exec env -i PATH={PATH} {explain} \
             --execfd 4 --argv0 argv0 -- /dev/fd/3 > e.{i} 2> ee.{i}')\n\
             cp gone.keep gone; chmod 4755 gone\n"
        );
        cases.push(Case {
            file: "./gone".into(),
            args: Vec::new(),
            by_fd: Some(true),
        });
    }
    fs::write(dir.join("cases.sh"), script).unwrap();
    let entry = dispatcher_entry("POCF");
    run_mapped(&dir, entry, ". ./cases.sh");
    for (i, case) in cases.iter().enumerate() {
        let (json, status, report, err) = outcome(&dir, i);
        assert_eq!(json["secure"], Value::Bool(true));
        check("secure", case, &json, status, &report, &err);
    }
}

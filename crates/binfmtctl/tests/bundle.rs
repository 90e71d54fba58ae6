//! `binfmtctl bundle`: the host's qemu carried in a copy of the trampoline
//! (foreign containers, issue 15): the file written, what keeps the
//! bundle and what drops it, refreshing, refusals, `check` and `status`,
//! and F entries registered again in a private binfmt_misc.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use binfmt_dispatcher_core::bundle::Bundle;
use binfmtctl::embed;
use support::*;

/// binfmtctl with `args`, HOME at `dir` and no cache named by the
/// environment: only the configuration below `--root` counts.
fn ctl(dir: &Path, args: &[&str]) -> Output {
    Command::new(BINFMTCTL)
        .args(args)
        .env("HOME", dir)
        .env_remove("XDG_CACHE_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("BINFMT_DISPATCHER_CACHE")
        .output()
        .unwrap()
}

/// `binfmtctl --root DIR/root bundle ARGS --binfmt-misc DIR/none`.
fn bundle(dir: &Path, args: &[&str]) -> Output {
    let root = dir.join("root");
    fs::create_dir_all(&root).unwrap();
    let none = dir.join("no-binfmt_misc");
    let mut all = vec!["--root", root.to_str().unwrap(), "bundle"];
    all.extend_from_slice(args);
    all.extend(["--binfmt-misc", none.to_str().unwrap()]);
    ctl(dir, &all)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// The loaded segments of an ELF64 file: (offset, filesz, memsz).
fn loads(image: &[u8]) -> Vec<(u64, u64, u64)> {
    let phoff = u64_at(image, 32) as usize;
    let phnum = u16::from_le_bytes([image[56], image[57]]) as usize;
    (0..phnum)
        .map(|i| phoff + 56 * i)
        .filter(|&at| image[at..at + 4] == 1u32.to_le_bytes())
        .map(|at| {
            (
                u64_at(image, at + 8),
                u64_at(image, at + 32),
                u64_at(image, at + 40),
            )
        })
        .collect()
}

/// [`bundle`], which must succeed.
fn bundle_ok(dir: &Path, args: &[&str]) -> Output {
    let run = bundle(dir, args);
    assert!(run.status.success(), "{args:?}: {}", stderr(&run));
    run
}

/// [`bundle`], which must fail with one line that says `why`, exit status 1.
fn bundle_refused(dir: &Path, args: &[&str], why: &str) {
    let run = bundle(dir, args);
    let err = stderr(&run);
    assert_eq!(run.status.code(), Some(1), "{args:?}: {}", stdout(&run));
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(
        err.starts_with("binfmtctl: ") && err.contains(why),
        "{args:?}: {err}"
    );
}

/// A copy of the trampoline bundling `items`, at `dir/binfmt-dispatcher`.
fn bundled_copy(dir: &Path, items: &[&str]) -> PathBuf {
    let out = dir.join("binfmt-dispatcher");
    bundle_ok(dir, &[&[dispatcher(), "--output", s(&out)], items].concat());
    out
}

/// `binfmtctl check` of the trampoline `out`.
fn check_of(dir: &Path, out: &Path) -> String {
    let none = dir.join("no-binfmt_misc");
    let root = dir.join("root");
    let args = ["--root", s(&root), "check", "--dispatcher", s(out)];
    stdout(&ctl(
        dir,
        &[&args[..], &["--binfmt-misc", s(&none)]].concat(),
    ))
}

/// The paths a trampoline bundles.
fn paths_in(trampoline: &Path) -> Vec<PathBuf> {
    images(&fs::read(trampoline).unwrap())
        .into_iter()
        .map(|i| i.0)
        .collect()
}

/// The bundled images of a trampoline: (path, bytes).
fn images(image: &[u8]) -> Vec<(PathBuf, Vec<u8>)> {
    embed::bundled(image)
        .unwrap()
        .into_iter()
        .map(|b| (b.path, b.bytes.to_vec()))
        .collect()
}

#[test]
fn the_bundle_follows_the_configuration_in_the_one_segment() {
    require_qemu();
    let dir = temp_dir("bundle-arch");
    let original = fs::read(dispatcher()).unwrap();
    let out = dir.join("binfmt-dispatcher-bundled");
    let run = bundle_ok(&dir, &[dispatcher(), "--output", s(&out), "aarch64"]);
    let said = stdout(&run);
    assert!(
        said.contains(&format!("bundled: {QEMU_AARCH64} (")),
        "{said}"
    );
    assert_eq!(
        fs::read(dispatcher()).unwrap(),
        original,
        "--output: left as it was"
    );
    assert_eq!(
        fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o755
    );

    // One segment, from offset 0, all file bytes, to the footer's end.
    let bundled = fs::read(&out).unwrap();
    let len = bundled.len() as u64;
    assert_eq!(loads(&bundled), [(0, len, len)]);
    let b = Bundle::find(&bundled).expect("a bundle ends the segment");
    let image = b.image_for(QEMU_AARCH64.as_bytes()).unwrap();
    let qemu = fs::read(QEMU_AARCH64).unwrap();
    assert_eq!(&bundled[image.offset..image.offset + image.len], &qemu[..]);
    assert_eq!(b.count(), 1);
    // The same configuration ends where the bundle starts, and the bytes
    // before it are the original's but for the segment's sizes and the
    // section headers.
    let config = embed::config_of(&original).unwrap();
    assert_eq!(embed::config_of(&bundled).unwrap(), config);
    let [(0, config_end, _)] = loads(&original)[..] else {
        panic!("the trampoline has one segment from offset 0");
    };
    let config_end = config_end as usize;
    assert_eq!(b.start, config_end);
    let mut head = original[..config_end - config.len()].to_vec();
    head[40..48].fill(0); // e_shoff
    head[60..64].fill(0); // e_shnum, e_shstrndx
    for at in [64 + 32, 64 + 40] {
        head[at..at + 8].copy_from_slice(&len.to_le_bytes()); // p_filesz, p_memsz
    }
    assert!(bundled[..head.len()] == head[..]);
}

#[test]
fn compile_embed_keeps_the_bundle_and_remove_restores_the_trampoline() {
    require_qemu();
    let dir = temp_dir("bundle-keep");
    let out = bundled_copy(&dir, &["aarch64"]);
    let qemu = fs::read(QEMU_AARCH64).unwrap();
    let toml = dir.join("c.toml");
    let text =
        format!("[interpreters.q]\npath = \"{QEMU_AARCH64}\"\n[defaults]\ninterpreter = \"q\"\n");
    fs::write(&toml, text).unwrap();
    let embedded = dir.join("binfmt-dispatcher-embedded");
    let args = [
        "compile",
        "--embed",
        s(&out),
        "--output",
        s(&embedded),
        s(&toml),
    ];
    let run = ctl(&dir, &args);
    assert!(run.status.success(), "{}", stderr(&run));
    let again = fs::read(&embedded).unwrap();
    let original = fs::read(dispatcher()).unwrap();
    let config = embed::config_of(&original).unwrap();
    assert_ne!(embed::config_of(&again).unwrap(), config);
    assert!(embed::is_embedded(embed::config_of(&again).unwrap()));
    assert_eq!(images(&again), [(PathBuf::from(QEMU_AARCH64), qemu)]);
    let again_len = again.len() as u64;
    assert_eq!(loads(&again), [(0, again_len, again_len)]);

    // --remove: the configuration ends the segment again, the file as
    // long as the original's segment, the same bytes but for the section
    // headers.
    let removed = dir.join("binfmt-dispatcher-removed");
    let run = bundle_ok(&dir, &[s(&out), "--remove", "--output", s(&removed)]);
    assert!(stdout(&run).contains("no bundle"), "{}", stdout(&run));
    let back = fs::read(&removed).unwrap();
    let config_end = loads(&original)[0].1 as usize;
    assert_eq!(back.len(), config_end);
    assert!(Bundle::find(&back).is_none());
    assert!(images(&back).is_empty());
    assert_eq!(embed::config_of(&back).unwrap(), config);
    assert_eq!(loads(&back), [(0, config_end as u64, config_end as u64)]);
    assert!(back[64..] == original[64..config_end]);
    // Nothing to remove in place: nothing written.
    let run = bundle_ok(&dir, &[s(&removed), "--remove"]);
    assert!(
        stdout(&run).contains("carries no bundle"),
        "{}",
        stdout(&run)
    );
}

#[test]
fn refresh_reads_a_changed_interpreter_again_and_check_tells_it_stale() {
    require_qemu();
    let dir = temp_dir("bundle-refresh");
    let copy = dir.join("qemu-copy");
    fs::copy(QEMU_AARCH64, &copy).unwrap();
    let out = bundled_copy(&dir, &[s(&copy)]);
    let shown = format!("{} bundles {}", out.display(), copy.display());
    let report = check_of(&dir, &out);
    assert!(
        report.contains(&format!("ok: {shown} (up to date)")),
        "{report}"
    );

    // The interpreter changes (an upgrade): stale until bundled again.
    let mut changed = fs::read(&copy).unwrap();
    changed.extend_from_slice(b"an upgrade");
    fs::write(&copy, &changed).unwrap();
    let report = check_of(&dir, &out);
    let stale = format!(
        "error: {} bundles a stale copy of {}, which has changed since: run `binfmtctl bundle {}`",
        out.display(),
        copy.display(),
        out.display()
    );
    assert!(report.contains(&stale), "{report}");
    bundle_ok(&dir, &[s(&out)]);
    assert_eq!(images(&fs::read(&out).unwrap()), [(copy.clone(), changed)]);
    let report = check_of(&dir, &out);
    assert!(
        report.contains(&format!("ok: {shown} (up to date)")),
        "{report}"
    );
    // Up to date: nothing written.
    let before = fs::metadata(&out).unwrap().modified().unwrap();
    let run = bundle_ok(&dir, &[s(&out)]);
    assert!(stdout(&run).contains("is up to date"), "{}", stdout(&run));
    assert_eq!(fs::metadata(&out).unwrap().modified().unwrap(), before);
}

#[test]
fn adds_to_the_bundle_drops_by_path_and_refuses_what_is_gone() {
    require_qemu();
    let dir = temp_dir("bundle-add");
    let copy = dir.join("qemu-copy");
    fs::copy(QEMU_AARCH64, &copy).unwrap();
    let out = bundled_copy(&dir, &[s(&copy)]);
    // Added after what is there; the same path again is not added twice.
    bundle_ok(&dir, &[s(&out), "aarch64", QEMU_AARCH64]);
    let both = [copy.clone(), PathBuf::from(QEMU_AARCH64)];
    assert_eq!(paths_in(&out), both);
    bundle_ok(&dir, &[s(&out), "--remove", s(&copy)]);
    assert_eq!(paths_in(&out), both[1..]);
    bundle_refused(&dir, &[s(&out), "--remove", s(&copy)], "is not bundled in");
    bundle_ok(&dir, &[s(&out), s(&copy)]);
    assert_eq!(paths_in(&out), [both[1].clone(), copy.clone()]);

    // Gone from the host: check warns, a refresh refuses and writes nothing.
    fs::remove_file(&copy).unwrap();
    let report = check_of(&dir, &out);
    let gone = format!(
        "warning: {} bundles {}, which is not on this host",
        out.display(),
        copy.display()
    );
    assert!(report.contains(&gone), "{report}");
    let before = fs::read(&out).unwrap();
    bundle_refused(&dir, &[s(&out)], "which is no longer on this host");
    assert_eq!(fs::read(&out).unwrap(), before);
}

#[test]
fn refuses_what_it_cannot_bundle_in_one_line_and_writes_nothing() {
    require_qemu();
    let dir = temp_dir("bundle-refuse");
    let copy = dir.join("binfmt-dispatcher");
    fs::copy(dispatcher(), &copy).unwrap();
    let before = fs::read(&copy).unwrap();
    let out = dir.join("out");
    let host = binfmtctl::elf::Isa::host().unwrap().name();
    let native = format!("run {host} programs themselves");
    let missing = dir.join("missing");
    let cases: &[(&[&str], &str)] = &[
        (
            &["/bin/ls"],
            "/bin/ls cannot be bundled: it needs a program interpreter (not static)",
        ),
        (
            &["aarch64", "bin/ls"],
            "bin/ls: name an interpreter by its absolute path",
        ),
        (
            &["nonesuch"],
            "nonesuch: unknown architecture; known: i386, ",
        ),
        (&[host], &native),
        (&[s(&missing)], "missing: No such file"),
        (&[], "carries no bundle to refresh"),
    ];
    for &(items, why) in cases {
        for output in [&[][..], &["--output", s(&out)]] {
            bundle_refused(&dir, &[&[s(&copy)], output, items].concat(), why);
            assert_eq!(fs::read(&copy).unwrap(), before);
            assert!(!out.exists());
        }
    }
    // What is not a trampoline.
    let text = dir.join("text");
    fs::write(&text, "#!/bin/sh\n").unwrap();
    for (dispatcher, why) in [
        (text.as_path(), "not a 64-bit"),
        (Path::new("/bin/sh"), "not a binfmt-dispatcher trampoline"),
    ] {
        bundle_refused(&dir, &[s(dispatcher), "--output", s(&out), "aarch64"], why);
        assert!(!out.exists());
    }
    // Usage errors are clap's.
    let run = bundle(&dir, &["--refresh-registered", s(&copy)]);
    assert_eq!(run.status.code(), Some(2));
    let run = bundle(&dir, &[]);
    assert_eq!(run.status.code(), Some(2));
}

#[test]
fn names_each_interpreter_of_the_chain_when_none_can_be_bundled() {
    let dir = temp_dir("bundle-chain");
    let copy = dir.join("binfmt-dispatcher");
    fs::copy(dispatcher(), &copy).unwrap();
    let before = fs::read(&copy).unwrap();
    // The configuration the dispatcher would use decides (the system
    // cache below --root here).
    let etc = dir.join("root/etc");
    fs::create_dir_all(&etc).unwrap();
    fs::write(
        etc.join("binfmt-dispatcher.toml"),
        "[interpreters.a]\npath = \"/nonexistent/qemu-a\"\nfallback = [\"b\"]\n\
         [interpreters.b]\npath = \"/bin/ls\"\n[defaults]\ninterpreter = \"a\"\n",
    )
    .unwrap();
    let run = ctl(&dir, &["--root", s(&dir.join("root")), "compile"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let run = bundle(&dir, &[s(&copy), "aarch64"]);
    assert_eq!(run.status.code(), Some(1));
    assert_eq!(
        stderr(&run).trim_end(),
        "binfmtctl: aarch64: no interpreter the configuration gives its binaries can be bundled: \
         /nonexistent/qemu-a is not installed; /bin/ls cannot be bundled: it needs a program \
         interpreter (not static)"
    );
    assert_eq!(fs::read(&copy).unwrap(), before);
}

/// Runs the package hook's command in a private binfmt_misc after the
/// bundled copy of qemu changed, then `cmds`; the output of each, split.
fn after_a_refresh(dir: &Path, entries: &[Entry<'_>], copy: &Path, cmds: &[&str]) -> Vec<String> {
    let mut script = format!(
        "printf upgrade >> {copy}\n{ctl} bundle --refresh-registered; echo \"status $?\"\n",
        copy = sh_quote(s(copy)),
        ctl = sh_quote(BINFMTCTL),
    );
    for cmd in cmds {
        script += &format!(
            "echo ---\n{}\n",
            cmd.replace("binfmtctl", &sh_quote(BINFMTCTL))
        );
    }
    let out = run_in_private_binfmt_in(dir, entries, &script, &[]);
    let parts: Vec<String> = stdout(&out).split("---\n").map(str::to_string).collect();
    assert_eq!(
        parts.len(),
        cmds.len() + 1,
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    parts
}

/// A fresh directory with a copy of qemu, a trampoline bundling it and a
/// plain trampoline: (directory, copy, bundled, plain).
fn registered_scene(tag: &str) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    require_qemu();
    let dir = temp_dir(tag);
    let copy = dir.join("qemu-copy");
    fs::copy(QEMU_AARCH64, &copy).unwrap();
    let bundled = bundled_copy(&dir, &[s(&copy)]);
    let unbundled = dir.join("binfmt-dispatcher-plain");
    fs::copy(dispatcher(), &unbundled).unwrap();
    (dir, copy, bundled, unbundled)
}

/// An entry with F and one without running `bundled`, and one with F
/// running the plain trampoline `unbundled`.
fn scene_entries<'a>(bundled: &'a Path, unbundled: &'a Path) -> [Entry<'a>; 3] {
    [
        ("with-f", AARCH64_MAGIC, AARCH64_MASK, s(bundled), "POCF"),
        ("without-f", AARCH64_MAGIC, AARCH64_MASK, s(bundled), "POC"),
        ("other", AARCH64_MAGIC, AARCH64_MASK, s(unbundled), "POCF"),
    ]
}

#[test]
fn refresh_registered_bundles_again_and_registers_f_entries_again() {
    let (dir, copy, bundled, unbundled) = registered_scene("bundle-registered");
    // Only the entry with F that runs a bundled trampoline is registered
    // again.
    let entries = scene_entries(&bundled, &unbundled);
    let cmds = [
        "cat /proc/sys/fs/binfmt_misc/with-f",
        "binfmtctl bundle --refresh-registered; echo \"status $?\"",
    ];
    let [refresh, entry, again] = &after_a_refresh(&dir, &entries, &copy, &cmds)[..] else {
        unreachable!("three parts, checked");
    };
    let (b, c) = (bundled.display(), copy.display());
    let mb = |p: &Path| format!("{:.1} MB", fs::metadata(p).unwrap().len() as f64 / 1e6);
    let expected = format!(
        "bundled: {c} ({})\nwrote {b}: 1 interpreter(s) bundled, {}\n\
         registered again: with-f -> {b} (POCF)\nstatus 0\n",
        mb(&copy),
        mb(&bundled)
    );
    assert_eq!(*refresh, expected);
    let mut upgraded = fs::read(QEMU_AARCH64).unwrap();
    upgraded.extend_from_slice(b"upgrade");
    assert_eq!(
        images(&fs::read(&bundled).unwrap()),
        [(copy.clone(), upgraded)]
    );
    // The entry is as it was, enabled, with its flags.
    assert!(
        entry.starts_with("enabled\n") && entry.contains("flags: POCF\n"),
        "{entry}"
    );
    // The second run has nothing to do.
    assert_eq!(*again, format!("{b} is up to date\nstatus 0\n"));
}

#[test]
fn status_and_check_tell_what_registered_trampolines_bundle() {
    let (dir, copy, bundled, unbundled) = registered_scene("bundle-status");
    let entries = scene_entries(&bundled, &unbundled);
    let parts = after_a_refresh(
        &dir,
        &entries,
        &copy,
        &["binfmtctl status", "binfmtctl check"],
    );
    let (status, check) = (&parts[1], &parts[2]);
    let (b, c) = (bundled.display(), copy.display());
    assert!(
        status.contains(&format!("note: {b} bundles {c}\n")),
        "{status}"
    );
    assert_eq!(status.matches("bundles").count(), 1, "{status}");
    assert!(
        check.contains(&format!("ok: {b} bundles {c} (up to date)\n")),
        "{check}"
    );
    // The bundle is reachable in containers only with F.
    let no_f = format!("warning: registered: without-f -> {b} (flags: POC): it bundles");
    assert!(check.contains(&no_f), "{check}");
    assert_eq!(
        check.matches("it bundles interpreters").count(),
        1,
        "{check}"
    );
}

#[test]
fn a_bundled_trampoline_dispatches_as_before() {
    require_qemu();
    let dir = temp_dir("bundle-runs");
    write_foreign(&dir.join("foreign"));
    // Its configuration, embedded, sends every binary to the reporter,
    // which is installed: the bundle is not used, the configuration is.
    let toml = dir.join("rep.toml");
    fs::write(
        &toml,
        format!(
            "[interpreters.rep]\npath = \"{}\"\nargv = \"qemu\"\nenv = {{ FROM = \"embedded\" }}\n\
             [defaults]\ninterpreter = \"rep\"\n",
            reporter().display()
        ),
    )
    .unwrap();
    let embedded = dir.join("binfmt-dispatcher-embedded");
    let run = ctl(
        &dir,
        &[
            "compile",
            "--embed",
            dispatcher(),
            "--output",
            s(&embedded),
            s(&toml),
        ],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let bundled = dir.join("binfmt-dispatcher");
    let run = bundle(&dir, &[s(&embedded), "--output", s(&bundled), QEMU_AARCH64]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(fs::metadata(&bundled).unwrap().len() > 10_000_000);
    for flags in ["POCF", "F"] {
        let entry = ("d", AARCH64_MAGIC, AARCH64_MASK, s(&bundled), flags);
        let out = run_in_private_binfmt_in(&dir, &[entry], "./foreign a 'b c'", &[]);
        let rep = report_of(&out);
        assert!(
            rep.env.iter().any(|e| e == "FROM=embedded"),
            "{flags}: {:?}",
            rep.env
        );
        assert_eq!(
            rep.argv[rep.argv.len() - 2..],
            ["a", "b c"],
            "{flags}: {:?}",
            rep.argv
        );
    }
}

/// `int main() {}` built by the aarch64 cross gcc as a static PIE into
/// `dir/NAME`, with `flags`.
fn aarch64_static_pie(dir: &Path, name: &str, flags: &[&str]) -> PathBuf {
    require_tool("/usr/bin/aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu");
    let src = dir.join("main.c");
    fs::write(&src, "int main(void) { return 0; }\n").unwrap();
    let out = dir.join(name);
    let status = Command::new("aarch64-linux-gnu-gcc")
        .args(["-static-pie", "-O2"])
        .args(flags)
        .arg("-o")
        .args([&out, &src])
        .status()
        .unwrap();
    assert!(status.success(), "aarch64-linux-gnu-gcc -static-pie failed");
    out
}

#[test]
fn an_aarch64_trampoline_bundles_only_what_it_loads_with_16_kib_pages() {
    require_qemu();
    let dir = temp_dir("bundle-aarch64");
    let trampoline = cross_build(
        "aarch64-unknown-linux-gnu",
        "binfmt-dispatcher",
        CrossLinker::Configured,
    );
    // gcc's default for aarch64: segments 64 KiB apart, loadable with any
    // page size.
    let any = aarch64_static_pie(&dir, "any-pages", &[]);
    let out = dir.join("binfmt-dispatcher");
    bundle_ok(&dir, &[s(&trampoline), "--output", s(&out), s(&any)]);
    assert_eq!(paths_in(&out), [any]);
    // Laid out for 4 KiB pages only: its segments would share a 16 KiB
    // page, so an Apple silicon kernel could not load it.
    let small = aarch64_static_pie(
        &dir,
        "4k-pages",
        &["-Wl,-z,max-page-size=4096", "-Wl,-z,common-page-size=4096"],
    );
    let before = fs::read(&out).unwrap();
    let why = format!(
        "{} cannot be bundled: with 16 KiB pages (Apple silicon's kernels): segments share a page",
        small.display()
    );
    bundle_refused(&dir, &[s(&out), s(&small)], &why);
    // The host's qemu is for another machine than the trampoline's.
    bundle_refused(&dir, &[s(&out), QEMU_AARCH64], "built for another machine");
    assert_eq!(fs::read(&out).unwrap(), before);
}

#[test]
fn explain_says_when_the_bundled_copy_runs() {
    // explain runs the trampoline's exec path: given the bundled
    // trampoline, an interpreter missing from the root is the bundled copy,
    // as the trampoline would run it; without it, nothing runs (127).
    require_qemu();
    let dir = temp_dir("bundle-explain");
    let qemu = dir.join("qemu-aarch64-static");
    fs::copy(QEMU_AARCH64, &qemu).unwrap();
    let out = bundled_copy(&dir, &[s(&qemu)]);
    fs::remove_file(&qemu).unwrap();
    let toml = format!(
        "[interpreters.q]\npath = \"{}\"\n\n[[rules]]\narch = \"aarch64\"\ninterpreter = \"q\"\n",
        qemu.display()
    );
    let cache = compile_cache(&dir, "q", &toml);
    let explain = |with: &[&str]| {
        let mut args = vec!["explain", "--json"];
        args.extend_from_slice(with);
        args.push(busybox_arm64().to_str().unwrap());
        let run = Command::new(BINFMTCTL)
            .args(&args)
            .env("BINFMT_DISPATCHER_CACHE", &cache)
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&run.stdout).unwrap()
    };
    let doc = explain(&["--dispatcher", s(&out)]);
    assert_eq!(doc["status"], 0, "{doc}");
    assert_eq!(doc["exec"], s(&qemu), "{doc}");
    assert_eq!(doc["bundled"], true, "{doc}");
    assert_eq!(doc["argv"][1], "-0", "{doc}");
    let doc = explain(&["--dispatcher", dispatcher()]);
    assert_eq!(doc["status"], 127, "{doc}");
    assert_eq!(doc["bundled"], serde_json::Value::Null, "{doc}");
}

#[test]
fn a_bundled_interpreter_that_the_stack_limit_leaves_no_room_for_is_refused_in_one_line() {
    // The bundled interpreter's initial stack is written below the
    // trampoline's own (which holds the strings it points to), where
    // `execve` would have started a fresh one: with many arguments and a
    // small RLIMIT_STACK the trampoline faulted (SIGSEGV) writing it, or
    // the interpreter did at its first call, where the same exec from the
    // root runs. It must say why in one line, before anything moves.
    let dir = temp_dir("bundle-stack");
    let gone = dir.join("gone");
    fs::create_dir(&gone).unwrap();
    let interp = gone.join("interp");
    fs::copy(reporter_static_pie("gcc"), &interp).unwrap();
    let bundled = bundled_copy(&dir, &[s(&interp)]);
    let toml = format!(
        "[interpreters.r]\npath = \"{}\"\nargv = \"plain\"\n\n\
         [[rules]]\narch = \"aarch64\"\ninterpreter = \"r\"\n",
        interp.display()
    );
    let cache = compile_cache(&dir, "stack", &toml);
    let binary = dir.join("guest");
    write_foreign(&binary);
    // 12,000 arguments: about 120 KB of initial stack, under the 128 KB
    // the kernel allows whatever the limit; 160 KiB of stack.
    let many = vec!["x"; 12_000];
    let run = |hide: bool| {
        let hide = if hide {
            format!("mount -t tmpfs none {} || exit 99\n", gone.display())
        } else {
            String::new()
        };
        Command::new("unshare")
            .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
            .arg(format!("{hide}ulimit -s 160 || exit 98\nexec \"$@\""))
            .arg("sh")
            .arg(&bundled)
            .arg(&binary)
            .args(&many)
            .env_clear()
            .env("BINFMT_DISPATCHER_CACHE", &cache)
            .output()
            .unwrap()
    };
    // The control: the interpreter in the root runs under the same limit.
    let control = run(false);
    assert_eq!(control.status.code(), Some(0), "{}", stderr(&control));
    assert_eq!(report_of(&control).argv.len(), 2 + many.len());
    let out = run(true);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(126), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("binfmt-dispatcher: ") && err.contains("argument list too long"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

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

/// The bundled images of a trampoline: (path, bytes).
fn images(image: &[u8]) -> Vec<(PathBuf, Vec<u8>)> {
    embed::bundled(image)
        .unwrap()
        .into_iter()
        .map(|b| (b.path, b.bytes.to_vec()))
        .collect()
}

#[test]
fn bundles_the_arch_interpreter_and_keeps_or_drops_it() {
    require_qemu();
    let dir = temp_dir("bundle-arch");
    let original = fs::read(dispatcher()).unwrap();
    let out = dir.join("binfmt-dispatcher-bundled");
    let run = bundle(&dir, &[dispatcher(), "--output", s(&out), "aarch64"]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stdout(&run).contains(&format!("bundled: {QEMU_AARCH64} (")),
        "{}",
        stdout(&run)
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
    let qemu = fs::read(QEMU_AARCH64).unwrap();
    let image = b.image_for(QEMU_AARCH64.as_bytes()).unwrap();
    assert_eq!(&bundled[image.offset..image.offset + image.len], &qemu[..]);
    assert_eq!(b.count(), 1);
    // The configuration, the same, ends where the bundle starts.
    let config = embed::config_of(&original).unwrap();
    assert_eq!(embed::config_of(&bundled).unwrap(), config);
    let (start, _, _) = loads(&original)[0];
    assert_eq!(start, 0);
    let config_end = loads(&original)[0].1 as usize;
    assert_eq!(b.start, config_end);
    assert_eq!(
        bundled[..config_end - config.len()],
        {
            let mut head = original[..config_end - config.len()].to_vec();
            head[40..48].fill(0); // e_shoff
            head[60..64].fill(0); // e_shnum, e_shstrndx
            for field in [32, 40] {
                let at = 64 + field; // the one PT_LOAD's filesz, memsz
                head[at..at + 8].copy_from_slice(&len.to_le_bytes());
            }
            head
        }[..]
    );

    // compile --embed keeps the bundle, with the new configuration.
    let toml = dir.join("c.toml");
    fs::write(
        &toml,
        format!("[interpreters.q]\npath = \"{QEMU_AARCH64}\"\n[defaults]\ninterpreter = \"q\"\n"),
    )
    .unwrap();
    let embedded = dir.join("binfmt-dispatcher-embedded");
    let run = ctl(
        &dir,
        &[
            "compile",
            "--embed",
            s(&out),
            "--output",
            s(&embedded),
            s(&toml),
        ],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let again = fs::read(&embedded).unwrap();
    assert_ne!(embed::config_of(&again).unwrap(), config);
    assert!(embed::is_embedded(embed::config_of(&again).unwrap()));
    assert_eq!(
        images(&again),
        [(PathBuf::from(QEMU_AARCH64), qemu.clone())]
    );
    let again_len = again.len() as u64;
    assert_eq!(loads(&again), [(0, again_len, again_len)]);

    // --remove: the configuration ends the segment again, the file as
    // long as the original's segment.
    let removed = dir.join("binfmt-dispatcher-removed");
    let run = bundle(&dir, &[s(&out), "--remove", "--output", s(&removed)]);
    assert!(run.status.success(), "{}", stderr(&run));
    let back = fs::read(&removed).unwrap();
    assert_eq!(back.len(), config_end);
    assert!(Bundle::find(&back).is_none());
    assert!(images(&back).is_empty());
    assert_eq!(embed::config_of(&back).unwrap(), config);
    assert_eq!(loads(&back), [(0, config_end as u64, config_end as u64)]);
    assert_eq!(
        back[64..],
        original[64..config_end],
        "but the section headers"
    );
}

#[test]
fn refresh_reads_the_interpreters_again_and_check_tells_stale_copies() {
    require_qemu();
    let dir = temp_dir("bundle-refresh");
    let copy = dir.join("qemu-copy");
    fs::copy(QEMU_AARCH64, &copy).unwrap();
    let out = dir.join("binfmt-dispatcher");
    let run = bundle(&dir, &[dispatcher(), "--output", s(&out), s(&copy)]);
    assert!(run.status.success(), "{}", stderr(&run));
    let check = || {
        let none = dir.join("no-binfmt_misc");
        let root = dir.join("root");
        let args = ["--root", s(&root), "check", "--dispatcher", s(&out)];
        stdout(&ctl(
            &dir,
            &[&args[..], &["--binfmt-misc", s(&none)]].concat(),
        ))
    };
    let shown = format!("{} bundles {}", out.display(), copy.display());
    let report = check();
    assert!(
        report.contains(&format!("ok: {shown} (up to date)")),
        "{report}"
    );

    // The interpreter changes (an upgrade): stale until bundled again.
    let mut changed = fs::read(&copy).unwrap();
    changed.extend_from_slice(b"an upgrade");
    fs::write(&copy, &changed).unwrap();
    let report = check();
    assert!(
        report.contains(&format!(
            "error: {} bundles a stale copy of {}, which has changed since: run `binfmtctl bundle {}`",
            out.display(),
            copy.display(),
            out.display()
        )),
        "{report}"
    );
    let run = bundle(&dir, &[s(&out)]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(images(&fs::read(&out).unwrap()), [(copy.clone(), changed)]);
    assert!(check().contains(&format!("ok: {shown} (up to date)")));
    // Up to date: nothing written.
    let before = fs::metadata(&out).unwrap().modified().unwrap();
    let run = bundle(&dir, &[s(&out)]);
    assert!(stdout(&run).contains("is up to date"), "{}", stdout(&run));
    assert_eq!(fs::metadata(&out).unwrap().modified().unwrap(), before);

    // Another one added, then the first dropped by its path.
    let run = bundle(&dir, &[s(&out), "aarch64"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let paths: Vec<PathBuf> = images(&fs::read(&out).unwrap())
        .into_iter()
        .map(|i| i.0)
        .collect();
    assert_eq!(paths, [copy.clone(), PathBuf::from(QEMU_AARCH64)]);
    let run = bundle(&dir, &[s(&out), "--remove", s(&copy)]);
    assert!(run.status.success(), "{}", stderr(&run));
    let paths: Vec<PathBuf> = images(&fs::read(&out).unwrap())
        .into_iter()
        .map(|i| i.0)
        .collect();
    assert_eq!(paths, [PathBuf::from(QEMU_AARCH64)]);

    // Gone from the host: check warns, a refresh refuses and writes nothing.
    let run = bundle(&dir, &[s(&out), s(&copy)]);
    assert!(run.status.success(), "{}", stderr(&run));
    fs::remove_file(&copy).unwrap();
    let report = check();
    assert!(
        report.contains(&format!("warning: {shown}, which is not on this host")),
        "{report}"
    );
    let before = fs::read(&out).unwrap();
    let run = bundle(&dir, &[s(&out)]);
    assert_eq!(run.status.code(), Some(1));
    assert_eq!(stderr(&run).lines().count(), 1, "{}", stderr(&run));
    assert!(
        stderr(&run).contains("which is no longer on this host"),
        "{}",
        stderr(&run)
    );
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
    let text = dir.join("text");
    fs::write(&text, "#!/bin/sh\n").unwrap();
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
        (&[host], "run x86_64 programs themselves"),
        (&[s(&missing)], "missing: No such file"),
        // Nothing to refresh.
        (&[], "carries no bundle to refresh"),
    ];
    for &(items, why) in cases {
        let why = why.replace("x86_64 programs", &format!("{host} programs"));
        for output in [None, Some(&out)] {
            let mut args = vec![s(&copy)];
            args.extend(output.iter().flat_map(|o| ["--output", s(o)]));
            args.extend_from_slice(items);
            let run = bundle(&dir, &args);
            assert_eq!(run.status.code(), Some(1), "{items:?}: {}", stdout(&run));
            let err = stderr(&run);
            assert_eq!(err.lines().count(), 1, "{items:?}: {err}");
            assert!(
                err.starts_with("binfmtctl: ") && err.contains(&why),
                "{items:?}: {err}"
            );
            assert_eq!(fs::read(&copy).unwrap(), before);
            assert!(!out.exists());
        }
    }
    // What is not a trampoline.
    for (dispatcher, why) in [
        (text.as_path(), "not a 64-bit"),
        (Path::new("/bin/sh"), "not a binfmt-dispatcher trampoline"),
    ] {
        let run = bundle(&dir, &[s(dispatcher), "--output", s(&out), "aarch64"]);
        assert_eq!(run.status.code(), Some(1));
        assert_eq!(stderr(&run).lines().count(), 1, "{}", stderr(&run));
        assert!(stderr(&run).contains(why), "{}", stderr(&run));
        assert!(!out.exists());
    }
    // The configuration decides: a chain with nothing installed is named.
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
    // Usage errors are clap's.
    let run = bundle(&dir, &["--refresh-registered", s(&copy)]);
    assert_eq!(run.status.code(), Some(2));
    let run = bundle(&dir, &[]);
    assert_eq!(run.status.code(), Some(2));
}

#[test]
fn f_entries_run_the_file_written_and_refresh_registered_renews_them() {
    require_qemu();
    let dir = temp_dir("bundle-registered");
    let copy = dir.join("qemu-copy");
    fs::copy(QEMU_AARCH64, &copy).unwrap();
    let bundled = dir.join("binfmt-dispatcher-bundled");
    let run = bundle(&dir, &[dispatcher(), "--output", s(&bundled), s(&copy)]);
    assert!(run.status.success(), "{}", stderr(&run));
    let unbundled = dir.join("binfmt-dispatcher");
    fs::copy(dispatcher(), &unbundled).unwrap();

    // The copy of qemu upgraded, then the package hook's command; one
    // entry with F, one without, one running a trampoline with no bundle.
    let script = format!(
        "printf upgrade >> {copy}\n\
         {ctl} bundle --refresh-registered; echo \"status $?\"; echo ---\n\
         {ctl} status; echo ---; {ctl} check; echo ---\n\
         cat /proc/sys/fs/binfmt_misc/with-f; echo ---\n\
         {ctl} bundle --refresh-registered; echo \"status $?\"\n",
        copy = sh_quote(s(&copy)),
        ctl = sh_quote(BINFMTCTL),
    );
    let entries = [
        ("with-f", AARCH64_MAGIC, AARCH64_MASK, s(&bundled), "POCF"),
        ("without-f", AARCH64_MAGIC, AARCH64_MASK, s(&bundled), "POC"),
        ("other", AARCH64_MAGIC, AARCH64_MASK, s(&unbundled), "POCF"),
    ];
    let out = run_in_private_binfmt_in(&dir, &entries, &script, &[]);
    let text = stdout(&out);
    let [refresh, status, check, entry, again]: [&str; 5] = text
        .split("---\n")
        .collect::<Vec<_>>()
        .try_into()
        .unwrap_or_else(|_| panic!("{text}\n{}", stderr(&out)));
    let b = bundled.display();
    let c = copy.display();
    assert_eq!(
        refresh,
        format!(
            "bundled: {c} (13.0 MB)\nwrote {b}: 1 interpreter(s) bundled, 13.2 MB\n\
             registered again: with-f -> {b} (POCF)\nstatus 0\n"
        )
        .replace(
            "13.0 MB",
            &format!(
                "{:.1} MB",
                (fs::metadata(&copy).unwrap().len()) as f64 / 1e6
            )
        )
        .replace(
            "13.2 MB",
            &format!(
                "{:.1} MB",
                fs::metadata(&bundled).unwrap().len() as f64 / 1e6
            )
        ),
        "{}",
        stderr(&out)
    );
    let mut upgraded = fs::read(QEMU_AARCH64).unwrap();
    upgraded.extend_from_slice(b"upgrade");
    assert_eq!(
        images(&fs::read(&bundled).unwrap()),
        [(copy.clone(), upgraded)]
    );
    // The entry is as it was, enabled, with its flags.
    assert!(entry.starts_with("enabled\n"), "{entry}");
    assert!(entry.contains("flags: POCF\n"), "{entry}");
    // status names what it bundles; check says it is up to date, and
    // that the entry without F cannot reach it in a container.
    assert!(
        status.contains(&format!("note: {b} bundles {c}\n")),
        "{status}"
    );
    assert_eq!(status.matches("bundles").count(), 1, "{status}");
    assert!(
        check.contains(&format!("ok: {b} bundles {c} (up to date)\n")),
        "{check}"
    );
    let no_f = format!("warning: registered: without-f -> {b} (flags: POC): it bundles");
    assert!(check.contains(&no_f), "{check}");
    assert_eq!(
        check.matches("it bundles interpreters").count(),
        1,
        "{check}"
    );
    // The second run has nothing to do.
    assert_eq!(again, format!("{b} is up to date\nstatus 0\n"));
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

//! The package: packaging/binfmt-dispatcher.spec as `rpmspec --parse`
//! reads it, its %install run into a staging directory and its %files
//! against what that installed; and a staged `make install` registered by
//! the real systemd-binfmt in a private binfmt_misc (a user and mount
//! namespace: nothing touches the machine's), with the installed dispatcher
//! at its installed path, running an arm64 busybox through it.

mod support;

use std::fs;
use std::path::Path;
use std::process::Command;

use support::*;

const SPEC: &str = "packaging/binfmt-dispatcher.spec";
const SYSTEMD_BINFMT: &str = "/usr/lib/systemd/systemd-binfmt";

/// The spec as rpm reads it, built for `target` into `buildroot`.
fn parsed_spec(target: &str, buildroot: &Path) -> String {
    let out = Command::new("rpmspec")
        .args(["--parse", "--target", target, "--define"])
        .arg(format!("buildroot {}", buildroot.display()))
        .arg(SPEC)
        .current_dir(ROOT)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run rpmspec ({e}): install rpm (scripts/test does: apt-get install rpm)")
        });
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

/// Whether `line` starts a section of a spec (%install, %files, %post...).
fn starts_section(line: &str) -> bool {
    const SECTIONS: &[&str] = &[
        "package",
        "description",
        "prep",
        "build",
        "install",
        "check",
        "clean",
        "files",
        "changelog",
        "pre",
        "post",
        "preun",
        "postun",
        "pretrans",
        "posttrans",
    ];
    let Some(word) = line.strip_prefix('%') else {
        return false;
    };
    let word = word.split_whitespace().next().unwrap_or("");
    SECTIONS.contains(&word) || word.contains("trigger")
}

/// The body of the section whose first line is `header`.
fn section<'a>(spec: &'a str, header: &str) -> Vec<&'a str> {
    let mut lines = spec.lines().skip_while(|l| l.trim_end() != header);
    assert!(lines.next().is_some(), "no {header} in the spec");
    lines.take_while(|l| !starts_section(l)).collect()
}

/// A %files line: its path and whether it is %ghost, %dir.
struct Listed {
    path: String,
    ghost: bool,
    dir: bool,
}

fn listed(files: &[&str]) -> Vec<Listed> {
    files
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let path = words.last().unwrap().trim_start_matches('/').to_string();
            Listed {
                path,
                ghost: words.contains(&"%ghost"),
                dir: words.contains(&"%dir"),
            }
        })
        .collect()
}

/// rpm's file globs as the spec uses them: `*` within a path component.
fn glob(pattern: &str, path: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == path,
        Some((head, tail)) => {
            let Some(rest) = path.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len())
                .take_while(|&i| !rest[..i].contains('/'))
                .any(|i| glob(tail, &rest[i..]))
        }
    }
}

/// Whether the %files entry `l` packages the installed `path` (a
/// directory ends in `/`): a listed directory takes what is below it.
fn packages(l: &Listed, path: &str) -> bool {
    let path = path.trim_end_matches('/');
    glob(&l.path, path) || (!l.dir && path.starts_with(&format!("{}/", l.path)))
}

#[test]
fn spec_files_are_what_its_install_installs() {
    // Built for aarch64 (Asahi Linux, the original's platform): its x86
    // files are the original package's.
    let stage = temp_dir("rpm-buildroot");
    let spec = parsed_spec("aarch64", &stage);
    let install = section(&spec, "%install").join("\n");
    assert!(install.contains("HOST_ARCH=aarch64"), "{install}");
    let out = Command::new("sh")
        .args(["-ec", &install])
        .env("CARGO", env!("CARGO"))
        .current_dir(ROOT)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));

    let installed = installed_tree(&stage);
    let files = listed(&section(&spec, "%files"));
    for path in &installed {
        let dir = path.ends_with('/');
        // Directories of others (usr/, usr/bin/) are not ours to own; ours
        // and empty ones (the cache's) are.
        let ours = !dir || path.contains("binfmt-dispatcher") || is_empty_dir(&stage.join(path));
        if ours {
            assert!(
                files.iter().any(|l| !l.ghost && packages(l, path)),
                "{path} is installed but not in %files"
            );
        }
    }
    for l in &files {
        let on_disk = installed.iter().any(|p| packages(l, p));
        if l.ghost {
            assert!(!on_disk, "%ghost {} is installed", l.path);
            let parent = Path::new(&l.path).parent().unwrap().to_str().unwrap();
            assert!(
                files.iter().any(|d| d.path == parent) || parent == "etc",
                "nothing owns the directory of %ghost {}",
                l.path
            );
        } else {
            assert!(on_disk, "%files lists {} but nothing installs it", l.path);
        }
    }
    // The original package's binfmt.d files, by name, replaced on upgrade;
    // the host's own architecture not registered.
    let binfmt_d = stage.join("usr/lib/binfmt.d");
    for name in ["x86", "x86_64"] {
        let text =
            fs::read_to_string(binfmt_d.join(format!("zz-binfmt-dispatcher-{name}.conf"))).unwrap();
        assert!(
            text.contains(&format!("\n:binfmt-dispatcher-{name}:M::")),
            "{text}"
        );
    }
    assert!(!binfmt_d.join("zz-binfmt-dispatcher-aarch64.conf").exists());
}

#[test]
fn spec_version_is_the_workspaces_and_upgrades_the_original() {
    let spec = parsed_spec("x86_64", &temp_dir("rpm-version"));
    let tag = |name: &str| {
        spec.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no {name}: in the spec"))
            .trim()
            .to_string()
    };
    let cargo = fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).unwrap();
    let workspace = cargo
        .lines()
        .skip_while(|l| *l != "[workspace.package]")
        .find_map(|l| l.strip_prefix("version = "))
        .unwrap()
        .trim_matches('"');
    assert_eq!(tag("Version"), workspace);
    assert_eq!(
        tag("Name"),
        "binfmt-dispatcher",
        "the original's package name"
    );
    // Newer than the original's 0.1.3 (Fedora ships 0.1.2-1).
    let ours = format!("{}-{}", tag("Version"), tag("Release"));
    let out = Command::new("rpm")
        .arg("--eval")
        .arg(format!("%{{lua: print(rpm.vercmp('{ours}', '0.1.3-99'))}}"))
        .output()
        .unwrap();
    assert_eq!(stdout(&out).trim(), "1", "{ours} does not upgrade 0.1.3");
    // The scriptlets: the cache compiled, the entries registered, and
    // registered again after other packages' binfmt.d files.
    let post = section(&spec, "%post").join("\n");
    assert!(post.contains("/usr/bin/binfmtctl compile"), "{post}");
    assert!(post.contains(SYSTEMD_BINFMT), "{post}");
    for trigger in [
        "%transfiletriggerin -- /usr/lib/binfmt-dispatcher.d",
        "%transfiletriggerpostun -- /usr/lib/binfmt-dispatcher.d",
    ] {
        assert!(section(&spec, trigger)
            .join("\n")
            .contains("binfmtctl compile"));
    }
    let again = section(&spec, "%transfiletriggerin -- /usr/lib/binfmt.d").join("\n");
    assert!(again.contains(SYSTEMD_BINFMT), "{again}");
}

/// The staged install's `usr/bin` over the machine's, its binfmt.d (with a
/// qemu-user-static file of Fedora's name) as the only one: a machine with
/// the package installed, in this mount namespace.
fn mount_staged(stage: &Path, binfmt_d: &Path) -> String {
    let q = |p: &Path| sh_quote(p.to_str().unwrap());
    format!(
        "mount -t overlay overlay -o lowerdir={bin}:/usr/bin /usr/bin || exit 20\n\
         mount --bind {binfmt_d} /usr/lib/binfmt.d || exit 21\n\
         mount -t tmpfs tmpfs /etc/binfmt.d || exit 22\n\
         for d in /run/binfmt.d /usr/local/lib/binfmt.d; do\n\
             [ ! -d $d ] || mount -t tmpfs tmpfs $d || exit 23\n\
         done\n",
        bin = q(&stage.join("usr/bin")),
        binfmt_d = q(binfmt_d),
    )
}

/// The trigger that registers our entries again, as the spec has it.
fn register_again_trigger() -> String {
    let spec = parsed_spec("x86_64", &temp_dir("rpm-trigger"));
    section(&spec, "%transfiletriggerin -- /usr/lib/binfmt.d").join("\n")
}

#[test]
fn systemd_binfmt_registers_the_staged_install() {
    require_qemu();
    assert!(
        Path::new(SYSTEMD_BINFMT).is_file(),
        "{SYSTEMD_BINFMT} is missing: install systemd (scripts/test does)"
    );
    // This machine's package: its own architecture is not registered (it
    // would send this namespace's own programs through the dispatcher).
    let stage = temp_dir("staged");
    let out = Command::new("make")
        .args(["-s", "install", "PREFIX=/usr"])
        .arg(format!("HOST_ARCH={}", rustix_uname()))
        .arg(format!("DESTDIR={}", stage.display()))
        .arg(format!("CARGO={}", env!("CARGO")))
        .current_dir(ROOT)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let binfmt_d = temp_dir("staged-binfmt.d");
    let mut ours = Vec::new();
    for e in fs::read_dir(stage.join("usr/lib/binfmt.d")).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), binfmt_d.join(e.file_name())).unwrap();
        ours.push(e.file_name().to_string_lossy().into_owned());
    }
    assert!(ours.len() > 30, "{ours:?}");
    // Fedora's qemu-user-static-aarch64 file: before ours in systemd-binfmt's order.
    fs::write(
        binfmt_d.join("qemu-aarch64-static.conf"),
        format!(":qemu-aarch64:M::{AARCH64_MAGIC}:{AARCH64_MASK}:{QEMU_AARCH64}:F\n"),
    )
    .unwrap();

    let dir = temp_dir("staged-run");
    link_applets(&dir, busybox_arm64(), &["busybox"]);
    // The dispatcher's log line (on stderr, here in the output) says it ran.
    let run_busybox =
        "BINFMT_DISPATCHER_LOG=info ./busybox sh -c 'echo \"$0:$1\"; exit 3' arg0 one 2>&1\n\
                       echo \"status $?\"\n";
    let script = format!(
        "{mounts}\
         {SYSTEMD_BINFMT} || exit 30\n\
         echo '>>> entries'\nls /proc/sys/fs/binfmt_misc\n\
         echo '>>> aarch64'\ncat /proc/sys/fs/binfmt_misc/binfmt-dispatcher-aarch64\n\
         echo '>>> boot'\n{run_busybox}\
         {SYSTEMD_BINFMT} qemu-aarch64-static.conf || exit 31\n\
         echo '>>> qemu again'\n{run_busybox}\
         {trigger}\n\
         echo '>>> trigger'\n{run_busybox}",
        mounts = mount_staged(&stage, &binfmt_d),
        trigger = register_again_trigger(),
    );
    let out = run_in_private_binfmt_in(&dir, &[], &script, &[]);
    let text = stdout(&out);
    let err = stderr(&out);
    assert!(out.status.success(), "{text}\n{err}");
    let section = |name: &str| labelled(&text, name);
    // Every staged file's entry, and qemu's.
    let entries: Vec<&str> = section("entries").lines().collect();
    for file in &ours {
        let entry = file
            .strip_prefix("zz-")
            .unwrap()
            .strip_suffix(".conf")
            .unwrap();
        assert!(
            entries.contains(&entry),
            "{entry} not registered: {entries:?}"
        );
    }
    assert!(entries.contains(&"qemu-aarch64"));
    assert_eq!(entries.len(), ours.len() + 3, "{entries:?}"); // + register, status
    let aarch64 = section("aarch64");
    assert!(
        aarch64.contains("interpreter /usr/bin/binfmt-dispatcher\nflags: POCF\n"),
        "{aarch64}"
    );
    // At boot ours come after qemu's and win; qemu's package registering
    // its file again takes over; the spec's trigger gives it back.
    for (name, through_dispatcher) in [("boot", true), ("qemu again", false), ("trigger", true)] {
        let ran = section(name);
        assert!(ran.ends_with("arg0:one\nstatus 3\n"), "{name}: {ran}");
        let logged = ran.lines().any(|l| l.contains(QEMU_AARCH64));
        assert_eq!(logged, through_dispatcher, "{name}: {ran}");
    }
}

/// The trigger that bundles again what trampolines bundle when qemu's
/// files change: per package (see the spec for why not per transaction),
/// its body run with this binfmtctl, in a private binfmt_misc whose F
/// entry runs a trampoline that bundles a copy of qemu that changed since.
#[test]
fn the_qemu_trigger_bundles_again_and_registers_again() {
    require_qemu();
    let spec = parsed_spec("x86_64", &temp_dir("rpm-qemu-trigger"));
    let body = section(&spec, "%filetriggerin -- /usr/bin/qemu-").join("\n");
    assert!(
        body.contains("/usr/bin/binfmtctl bundle --refresh-registered || :"),
        "{body}"
    );
    let dir = temp_dir("qemu-trigger");
    let copy = dir.join("qemu-aarch64-static");
    fs::copy(QEMU_AARCH64, &copy).unwrap();
    let bundled = dir.join("binfmt-dispatcher");
    let made = Command::new(BINFMTCTL)
        .args([
            "bundle",
            dispatcher(),
            "--binfmt-misc",
            "/nonexistent",
            "--output",
        ])
        .args([&bundled, &copy])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", stderr(&made));
    fs::write(
        &copy,
        [fs::read(QEMU_AARCH64).unwrap(), b"new".to_vec()].concat(),
    )
    .unwrap();
    let script = body.replace("/usr/bin/binfmtctl", &sh_quote(BINFMTCTL));
    let b = bundled.to_str().unwrap();
    let entry = ("dispatch-aarch64", AARCH64_MAGIC, AARCH64_MASK, b, "POCF");
    let out = run_in_private_binfmt_in(&dir, &[entry], &script, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("registered again: dispatch-aarch64 -> {b} (POCF)")),
        "{}",
        stdout(&out)
    );
    let image = fs::read(&bundled).unwrap();
    let now = binfmtctl::embed::bundled(&image).unwrap();
    assert_eq!(now.len(), 1);
    assert_eq!(now[0].bytes, fs::read(&copy).unwrap());
}

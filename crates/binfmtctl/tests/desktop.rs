//! A person at a desktop, on the real exec path: a program started without
//! a terminal (a file manager, a launcher) while a display is set has every
//! failure that ends its exec shown in a dialog by the helper
//! (data/missing-interpreter), which the dispatcher executes with the line
//! and the status; nothing is shown on a terminal, without a display or in
//! secure mode; the dialog never holds the caller's pipes; a missing
//! interpreter is installed in a terminal window through pkexec; and the
//! polkit policy asks for an administrator every time.
//!
//! The dialogs, the terminal, pkexec and the package managers are
//! stand-ins on a PATH the test controls, recording their argv.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;

const HINT: &str = "Install Wine (Fedora: dnf install wine-core; Debian: apt install wine64).";

/// The dispatcher registered for `MZ` and `CAFEBABE`.
fn entries() -> [Entry<'static>; 2] {
    [
        ("dispatch-pe", "MZ", "", dispatcher(), "POCF"),
        (
            "dispatch-java",
            r"\xca\xfe\xba\xbe",
            "",
            dispatcher(),
            "POCF",
        ),
    ]
}

/// A failure kind: the program, the exit status, the failure line.
struct Case {
    file: &'static str,
    status: i32,
    line: String,
}

/// The programs and the configuration: `prog.exe` finds no interpreter
/// (127), `win64.exe` one it cannot execute (126), `net.exe` one whose
/// RootFS is missing (127), `Hello.class` none configured (127). The
/// helper is `helper`, which notes in `helper.log` that it ran and
/// executes the shipped one.
fn setup(tag: &str) -> (PathBuf, PathBuf, Vec<Case>) {
    let dir = temp_dir(tag);
    let d = dir.display().to_string();
    fs::copy(
        Path::new(ROOT).join("data/missing-interpreter"),
        dir.join("missing-interpreter"),
    )
    .unwrap();
    write_exec(
        &dir.join("helper"),
        format!("#!/bin/sh\necho ran >> {d}/helper.log\nexec {d}/missing-interpreter \"$@\"\n")
            .as_bytes(),
    );
    fs::write(dir.join("not-executable"), "").unwrap();
    write_exec(&dir.join("prog.exe"), &pe(0x80, 0x14c, false, false));
    write_exec(&dir.join("win64.exe"), &pe(0x80, 0x8664, true, false));
    write_exec(&dir.join("net.exe"), &pe(0x80, 0x14c, false, true));
    write_exec(&dir.join("Hello.class"), &java_class());
    let toml = format!(
        r#"[defaults]
missing_helper = "{d}/helper"

[interpreters.wine]
path = "{d}/opt/wine"
argv = "plain"
install_hint = "{HINT}"

[interpreters.broken]
path = "{d}/not-executable"
argv = "plain"

[interpreters.fex]
path = "{r}"
required_paths = ["{d}/RootFS/default.erofs"]

[[rules]]
format = "pe"
dotnet = true
interpreter = "fex"

[[rules]]
format = "pe"
class = 64
interpreter = "broken"

[[rules]]
format = "pe"
interpreter = "wine"
"#,
        r = reporter().display()
    );
    let cache = compile_cache(&dir, "config", &toml);
    // Users other than root write here: the install, and a helper that
    // should not have run.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    let cases = vec![
        Case {
            file: "./prog.exe",
            status: 127,
            line: format!("./prog.exe: cannot run it: wine ({d}/opt/wine): not found. {HINT}"),
        },
        Case {
            file: "./win64.exe",
            status: 126,
            line: format!(
                "./win64.exe: cannot run it: broken ({d}/not-executable): \
                 cannot execute: permission denied"
            ),
        },
        Case {
            file: "./net.exe",
            status: 127,
            line: format!(
                "./net.exe: cannot run it: fex ({}): a required path is missing",
                reporter().display()
            ),
        },
        Case {
            file: "./Hello.class",
            status: 127,
            line: "./Hello.class: no interpreter is configured for this kind of binary \
                   (Java class file)"
                .to_string(),
        },
    ];
    (dir, cache, cases)
}

/// A stand-in for `name` in `bin`: it appends its argv (each argument
/// ended by a unit separator, each run by a record separator: arguments
/// may hold line breaks) to `log_dir/NAME.log`, then runs `then`.
fn stand_in(bin: &Path, name: &str, log_dir: &Path, then: &str) {
    let log = sh_quote(&log_dir.join(format!("{name}.log")).display().to_string());
    write_exec(
        &bin.join(name),
        format!("#!/bin/sh\n{{ printf '%s\\037' \"$@\"; printf '\\036'; }} >> {log}\n{then}\n")
            .as_bytes(),
    );
}

/// The runs recorded in `dir/NAME.log`, each as its argv.
fn recorded(dir: &Path, name: &str) -> Vec<Vec<String>> {
    let text = fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
    text.split_terminator('\x1e')
        .map(|run| run.split_terminator('\x1f').map(str::to_string).collect())
        .collect()
}

/// Waits until `dir/NAME.log` holds `runs` runs; a guard against a hang,
/// not a measurement: a dialog started in the background may not have
/// written yet when the program's caller is done.
fn wait_for_runs(dir: &Path, name: &str, runs: usize) -> Vec<Vec<String>> {
    let start = Instant::now();
    loop {
        let r = recorded(dir, name);
        if r.len() >= runs {
            return r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{name} did not run {runs} time(s): {r:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The dialog a failure line is shown in, by zenity.
fn zenity_error(line: &str) -> Vec<String> {
    [
        "--error",
        "--no-markup",
        "--title",
        "binfmt-dispatcher",
        "--text",
        line,
    ]
    .map(String::from)
    .to_vec()
}

/// Runs `script` in the private binfmt_misc with the cache and `dir/only`
/// as PATH.
fn run(dir: &Path, cache: &Path, script: &str) -> Output {
    let script = format!(
        "export BINFMT_DISPATCHER_CACHE={} PATH={}\n{script}",
        sh_quote(&cache.display().to_string()),
        sh_quote(&dir.join("only").display().to_string()),
    );
    run_in_private_binfmt_in(dir, &entries(), &script, &[])
}

#[test]
fn every_failure_is_shown_in_a_dialog_off_a_terminal_with_a_display() {
    let (dir, cache, cases) = setup("desktop-dialogs");
    let only = only_tools(&dir, &["sed", "head", "id"]);
    stand_in(&only, "zenity", &dir, "exit 0");
    for (i, case) in cases.iter().enumerate() {
        let out = run(
            &dir,
            &cache,
            &format!("DISPLAY=:0 {} arg </dev/null", case.file),
        );
        assert_eq!(out.status.code(), Some(case.status), "{}", stderr(&out));
        assert_eq!(stderr(&out), format!("binfmt-dispatcher: {}\n", case.line));
        let shown = wait_for_runs(&dir, "zenity", i + 1);
        assert_eq!(shown[i], zenity_error(&case.line), "{}", case.file);
    }
    // Wayland alone, and kdialog, else notify-send, when zenity is missing.
    fs::remove_file(only.join("zenity")).unwrap();
    stand_in(&only, "kdialog", &dir, "exit 0");
    let case = &cases[1];
    let script = format!("WAYLAND_DISPLAY=wayland-0 {} </dev/null", case.file);
    assert_eq!(run(&dir, &cache, &script).status.code(), Some(126));
    let shown = wait_for_runs(&dir, "kdialog", 1);
    assert_eq!(
        shown[0],
        ["--title", "binfmt-dispatcher", "--error", &case.line]
    );
    // kdialog reads markup: a name the caller chose is shown as text.
    let marked = "./<b>a&b<i>.exe";
    std::os::unix::fs::symlink(dir.join(&case.file[2..]), dir.join(&marked[2..])).unwrap();
    let script = format!("DISPLAY=:0 '{marked}' </dev/null");
    assert_eq!(run(&dir, &cache, &script).status.code(), Some(126));
    let shown = wait_for_runs(&dir, "kdialog", 2);
    let line = case
        .line
        .replacen(case.file, "./&lt;b&gt;a&amp;b&lt;i&gt;.exe", 1);
    assert_eq!(shown[1], ["--title", "binfmt-dispatcher", "--error", &line]);
    fs::remove_file(only.join("kdialog")).unwrap();
    stand_in(&only, "notify-send", &dir, "exit 0");
    let script = format!("DISPLAY=:0 {} </dev/null", case.file);
    assert_eq!(run(&dir, &cache, &script).status.code(), Some(126));
    let shown = wait_for_runs(&dir, "notify-send", 1);
    assert_eq!(
        shown[0],
        [
            "--app-name",
            "binfmt-dispatcher",
            "--",
            "binfmt-dispatcher",
            &case.line
        ]
    );
}

#[test]
fn nothing_is_shown_on_a_terminal_or_without_a_display() {
    let (dir, cache, cases) = setup("desktop-quiet");
    let only = only_tools(&dir, &["sed", "head", "id", "script"]);
    stand_in(&only, "zenity", &dir, "exit 0");
    // win64.exe (126) and Hello.class (none configured): the dispatcher
    // executes the helper only for a person at a display without a
    // terminal.
    for case in [&cases[1], &cases[3]] {
        for (how, script) in [
            ("no display", format!("{} </dev/null", case.file)),
            (
                "empty DISPLAY",
                format!("DISPLAY= {} </dev/null", case.file),
            ),
            (
                "a terminal (script's pty)",
                format!("DISPLAY=:0 script -qec {} /dev/null", sh_quote(case.file)),
            ),
        ] {
            let out = run(&dir, &cache, &script);
            assert_eq!(
                out.status.code(),
                Some(case.status),
                "{how}: {}",
                stderr(&out)
            );
            let said = format!("{}{}", stdout(&out), stderr(&out)).replace('\r', "");
            assert_eq!(said, format!("binfmt-dispatcher: {}\n", case.line), "{how}");
            assert!(!dir.join("helper.log").exists(), "{how}: the helper ran");
        }
        // The control: without a terminal, with a display, it runs.
        let script = format!("DISPLAY=:0 {} </dev/null", case.file);
        assert_eq!(run(&dir, &cache, &script).status.code(), Some(case.status));
        assert!(dir.join("helper.log").exists(), "{}", case.file);
        fs::remove_file(dir.join("helper.log")).unwrap();
    }
    assert_eq!(wait_for_runs(&dir, "zenity", 2).len(), 2);
}

#[test]
fn the_dialog_does_not_hold_the_callers_pipes_or_its_exit() {
    let (dir, cache, cases) = setup("desktop-detached");
    let only = only_tools(&dir, &["sed", "head", "id"]);
    let fifo = dir.join("release");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    // The dialog stays up until the test opens the FIFO.
    let fifo_q = sh_quote(&fifo.display().to_string());
    let log = sh_quote(&dir.join("dialog.log").display().to_string());
    write_exec(
        &only.join("zenity"),
        format!("#!/bin/sh\necho up >> {log}\nread _ < {fifo_q}\necho down >> {log}\n").as_bytes(),
    );
    let case = &cases[1];
    let finished = Arc::new(AtomicBool::new(false));
    let caller = {
        let (dir, cache, finished) = (dir.clone(), cache.clone(), finished.clone());
        let script = format!("DISPLAY=:0 {} </dev/null", case.file);
        std::thread::spawn(move || {
            // `output` reads stdout and stderr to their end, then waits.
            let out = run(&dir, &cache, &script);
            finished.store(true, Ordering::SeqCst);
            out
        })
    };
    let dialog = || fs::read_to_string(dir.join("dialog.log")).unwrap_or_default();
    // A guard against a hang, not a measurement.
    let start = Instant::now();
    while !(finished.load(Ordering::SeqCst) && dialog() == "up\n") {
        if start.elapsed() > Duration::from_secs(60) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (done, shown) = (finished.load(Ordering::SeqCst), dialog());
    // Released only now, so the dialog was up all along (and only if it
    // started: opening a FIFO with no reader would wait for ever).
    if shown.starts_with("up") {
        fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    }
    let out = caller.join().unwrap();
    assert!(done, "the caller was held by the dialog; dialog: {shown:?}");
    assert_eq!(shown, "up\n", "the dialog did not start, or was not held");
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    assert_eq!(stderr(&out), format!("binfmt-dispatcher: {}\n", case.line));
}

#[test]
fn nothing_is_shown_in_secure_mode() {
    let (dir, cache, cases) = setup("desktop-secure");
    let only = only_tools(&dir, &["sed", "head", "id"]);
    stand_in(&only, "zenity", &dir, "exit 0");
    for case in &cases[..2] {
        let file = dir.join(&case.file[2..]);
        fs::set_permissions(&file, fs::Permissions::from_mode(0o4755)).unwrap();
    }
    let mut script = format!(
        "cp {} /var/cache/binfmt-dispatcher/binfmt-dispatcher.cache\n\
         chmod 644 /var/cache/binfmt-dispatcher/binfmt-dispatcher.cache\n",
        sh_quote(&cache.display().to_string())
    );
    for (i, case) in cases[..2].iter().enumerate() {
        script += &format!(
            "setpriv --reuid=65534 --regid=65534 --clear-groups -- env PATH={} DISPLAY=:0 \
             {} </dev/null > out.{i} 2> err.{i}; echo $? > rc.{i}\n",
            sh_quote(&only.display().to_string()),
            case.file
        );
    }
    let entry = ("dispatch-pe", "MZ", "", dispatcher(), "POCF");
    run_mapped(&dir, entry, &script);
    for (i, case) in cases[..2].iter().enumerate() {
        let read = |n: &str| fs::read_to_string(dir.join(format!("{n}.{i}"))).unwrap();
        assert_eq!(
            read("rc").trim(),
            case.status.to_string(),
            "{}",
            read("err")
        );
        assert!(read("out").is_empty());
        // The binary is named by its descriptor: the line says the name.
        assert_eq!(read("err").lines().count(), 1, "{}", read("err"));
        assert!(read("err").contains(": cannot run it: "), "{}", read("err"));
    }
    assert!(!dir.join("helper.log").exists(), "the helper ran as root");
}

/// A missing Wine installed off a terminal by a user who is not root:
/// asked in a dialog, then `xdg-terminal-exec pkexec PM install PACKAGE`
/// (the package manager asking the person in the terminal window), then the
/// program rerun. `pm` is the package manager on PATH, `package` what it
/// must be asked to install.
fn install_through_a_terminal_window(pm: &str, package: &str) {
    let (dir, cache, cases) = setup(&format!("desktop-install-{pm}"));
    let only = only_tools(&dir, &["sed", "head", "id", "mkdir", "cp"]);
    stand_in(&only, "zenity", &dir, "exit 0");
    stand_in(&only, "xdg-terminal-exec", &dir, "exec \"$@\"");
    stand_in(&only, "pkexec", &dir, "exec \"$@\"");
    let d = dir.display().to_string();
    let r = reporter().display().to_string();
    stand_in(
        &only,
        pm,
        &dir,
        &format!("mkdir -p {d}/opt && cp {r} {d}/opt/wine"),
    );
    fs::copy(&cache, dir.join("user.cache")).unwrap();
    let script = format!(
        "setpriv --reuid=1000 --regid=1000 --clear-groups -- env PATH={d}/only DISPLAY=:0 \
         BINFMT_DISPATCHER_CACHE={d}/user.cache ./prog.exe arg </dev/null > out 2> err; \
         echo $? > rc\n"
    );
    let entry = ("dispatch-pe", "MZ", "", dispatcher(), "POCF");
    run_mapped(&dir, entry, &script);
    let read = |n: &str| fs::read(dir.join(n)).unwrap();
    let err = String::from_utf8_lossy(&read("err")).into_owned();
    assert_eq!(
        String::from_utf8_lossy(&read("rc")).trim(),
        "0",
        "{pm}: {err}"
    );
    let report = parse_report(&read("out"));
    assert_eq!(report.argv, [&format!("{d}/opt/wine"), "./prog.exe", "arg"]);
    let pm_path = format!("{d}/only/{pm}");
    assert_eq!(
        recorded(&dir, "xdg-terminal-exec"),
        [["pkexec", &pm_path, "install", package]]
    );
    assert_eq!(recorded(&dir, "pkexec"), [[&pm_path, "install", package]]);
    assert_eq!(recorded(&dir, pm), [["install", package]]);
    // The question carries the failure line.
    let asked = recorded(&dir, "zenity");
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(
        asked[0][..4],
        ["--question", "--no-markup", "--title", "binfmt-dispatcher"]
    );
    assert!(
        asked[0][5].ends_with(&format!("\n\n{}", cases[0].line)),
        "{asked:?}"
    );
}

#[test]
fn dnf_installs_in_a_terminal_window_through_pkexec() {
    install_through_a_terminal_window("dnf", "wine-core");
}

#[test]
fn apt_installs_in_a_terminal_window_through_pkexec() {
    install_through_a_terminal_window("apt-get", "wine64");
}

/// The package managers the helper knows: its `pm=NAME` assignments.
fn helper_package_managers() -> BTreeSet<String> {
    let helper = fs::read_to_string(Path::new(ROOT).join("data/missing-interpreter")).unwrap();
    helper
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pm="))
        .filter_map(|l| l.split(' ').next().filter(|name| !name.is_empty()))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_polkit_policy_asks_an_administrator_for_each_package_manager_the_helper_runs() {
    let text =
        fs::read_to_string(Path::new(ROOT).join("data/org.AsahiLinux.binfmt_dispatcher.policy"))
            .unwrap();
    // The DOCTYPE names polkit's DTD, as pkaction expects.
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(&text, options).unwrap();
    let mut paths = BTreeSet::new();
    let actions: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("action"))
        .collect();
    for action in &actions {
        let id = action.attribute("id").unwrap();
        assert!(id.starts_with("org.AsahiLinux.binfmt_dispatcher."), "{id}");
        let defaults = action
            .children()
            .find(|n| n.has_tag_name("defaults"))
            .unwrap();
        for key in ["allow_any", "allow_inactive", "allow_active"] {
            let value = defaults
                .children()
                .find(|n| n.has_tag_name(key))
                .and_then(|n| n.text());
            assert_eq!(value, Some("auth_admin"), "{id}: {key}");
        }
        let annotation = |key: &str| -> Vec<String> {
            action
                .children()
                .filter(|n| n.has_tag_name("annotate") && n.attribute("key") == Some(key))
                .filter_map(|n| n.text().map(str::to_string))
                .collect()
        };
        assert_eq!(
            annotation("org.freedesktop.policykit.exec.allow_gui"),
            ["true"],
            "{id}"
        );
        let path = annotation("org.freedesktop.policykit.exec.path");
        assert_eq!(path.len(), 1, "{id}");
        assert!(paths.insert(path[0].clone()), "{} twice", path[0]);
    }
    // One action for each package manager, at its path, and no other.
    let expected: BTreeSet<String> = helper_package_managers()
        .iter()
        .map(|pm| format!("/usr/bin/{pm}"))
        .collect();
    assert_eq!(expected.len(), 4, "{expected:?}");
    assert_eq!(paths, expected);
    assert_eq!(actions.len(), expected.len());
}

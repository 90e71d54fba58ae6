//! Beyond ELF on the real exec path: `MZ` and `CAFEBABE` registered to the
//! dispatcher in a private binfmt_misc; Windows programs, .NET assemblies,
//! Java classes and Mach-O binaries told apart by their headers; and the
//! missing-interpreter helper (data/missing-interpreter) with a fake
//! package manager and a fake zenity.

mod support;

use std::fs;
use std::path::Path;
use std::process::Output;

use support::*;

/// The dispatcher registered for `MZ` and `CAFEBABE`, as `binfmtctl
/// register --arch pe,java` does.
fn entries() -> [Entry<'static>; 2] {
    [
        ("dispatch-pe", "MZ", "", dispatcher(), "POCF"),
        (
            "dispatch-java",
            "\\xca\\xfe\\xba\\xbe",
            "",
            dispatcher(),
            "POCF",
        ),
    ]
}

const ROUTES: &str = r#"
[interpreters.wine64]
path = "@R"
argv = "plain"
env = { ROUTE = "wine64" }
fallback = ["wine"]

[interpreters.wine]
path = "@R"
argv = "plain"
env = { ROUTE = "wine" }

[interpreters.mono]
path = "@R"
argv = "plain"
env = { ROUTE = "mono" }

[interpreters.java]
path = "@R"
argv = "custom"
template = ["{interpreter}", "-cp", "{binary_dir}", "{binary_stem}", "{args}"]
env = { ROUTE = "java" }

[interpreters.mach-o]
path = "@D/no-mach-o-runtime"
install_hint = "This is a macOS (Mach-O) program: Linux cannot run it."

[[rules]]
format = "pe"
dotnet = true
interpreter = "mono"

[[rules]]
format = "pe"
class = 64
interpreter = "wine64"

[[rules]]
format = "pe"
interpreter = "wine"

[[rules]]
format = "java"
interpreter = "java"

[[rules]]
format = "macho"
interpreter = "mach-o"
"#;

/// Compiles `toml` (`@R`: the reporter, `@D`: the directory) into `dir`.
fn cache(dir: &Path, toml: &str) -> std::path::PathBuf {
    let toml = toml
        .replace("@R", reporter().to_str().unwrap())
        .replace("@D", dir.to_str().unwrap());
    compile_cache(dir, "config", &toml)
}

fn run(dir: &Path, cache: &Path, script: &str, env: &[(&str, &str)]) -> Output {
    let script = format!(
        "export BINFMT_DISPATCHER_CACHE={}\n{script}",
        sh_quote(cache.to_str().unwrap())
    );
    run_in_private_binfmt_in(dir, &entries(), &script, env)
}

fn route_of(r: &Report) -> String {
    r.env
        .iter()
        .find_map(|e| e.strip_prefix("ROUTE="))
        .unwrap_or("none")
        .to_string()
}

#[test]
fn windows_dotnet_and_java_go_to_their_interpreters() {
    let dir = temp_dir("formats");
    let cache = cache(&dir, ROUTES);
    write_exec(&dir.join("win64.exe"), &pe(0x80, 0x8664, true, false));
    write_exec(&dir.join("win32.exe"), &pe(0x80, 0x14c, false, false));
    write_exec(&dir.join("net.exe"), &pe(0x80, 0x14c, false, true));
    // A long DOS stub: the PE header lies past the first KiB read.
    write_exec(&dir.join("long-stub.exe"), &pe(0x600, 0x14c, false, true));
    write_exec(&dir.join("Hello.class"), &java_class());
    for (file, route, argv) in [
        ("win64.exe", "wine64", vec!["./win64.exe", "a b"]),
        ("win32.exe", "wine", vec!["./win32.exe", "a b"]),
        ("net.exe", "mono", vec!["./net.exe", "a b"]),
        ("long-stub.exe", "mono", vec!["./long-stub.exe", "a b"]),
        ("Hello.class", "java", vec!["-cp", ".", "Hello", "a b"]),
    ] {
        let out = run(&dir, &cache, &format!("./{file} 'a b'"), &[]);
        let r = report_of(&out);
        assert_eq!(route_of(&r), route, "{file}: {r:?}");
        assert_eq!(&r.argv[1..], &argv[..], "{file}");
        assert!(stderr(&out).is_empty(), "{file}: {}", stderr(&out));
    }
}

#[test]
fn mach_o_gets_one_line_and_127_not_java() {
    let dir = temp_dir("macho");
    let cache = cache(&dir, ROUTES);
    let mut fat = b"\xca\xfe\xba\xbe\x00\x00\x00\x02\x01\x00\x00\x07".to_vec();
    fat.resize(64, 0);
    write_exec(&dir.join("universal"), &fat);
    let out = run(&dir, &cache, "./universal", &[]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "nothing ran: {}", stdout(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("./universal: cannot run it: mach-o")
            && err.contains("macOS (Mach-O) program: Linux cannot run it"),
        "{err}"
    );
}

/// A fake package manager at `path`: it appends its arguments to
/// `dir/log` and "installs" the interpreter `dir/opt/wine` (a copy of the
/// reporter).
fn fake_package_manager(path: &Path, dir: &Path, log: &str) {
    write_exec(
        path,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> {log}\nmkdir -p {d}/opt && cp {r} {d}/opt/wine\n",
            log = sh_quote(dir.join(log).to_str().unwrap()),
            d = sh_quote(dir.to_str().unwrap()),
            r = sh_quote(reporter().to_str().unwrap()),
        )
        .as_bytes(),
    );
}

/// A fake zenity or kdialog at `path`: it appends its arguments to `log`
/// and answers with exit status `answer`.
fn fake_dialog(path: &Path, log: &Path, answer: u8) {
    write_exec(
        path,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> {log}\nexit {answer}\n",
            log = sh_quote(log.to_str().unwrap()),
        )
        .as_bytes(),
    );
}

/// A case for the helper: the data/ helper, a fake `dnf` that records its
/// arguments and installs the "interpreter" (a copy of the reporter), and
/// a fake `zenity` that records its arguments and answers `answer`.
fn helper_case(tag: &str, zenity_answer: u8) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = temp_dir(tag);
    let bin = dir.join("fakebin");
    fs::create_dir_all(&bin).unwrap();
    let helper = Path::new(ROOT).join("data/missing-interpreter");
    fs::copy(&helper, dir.join("missing-interpreter")).unwrap();
    fake_package_manager(&bin.join("dnf"), &dir, "dnf.log");
    fake_dialog(&bin.join("zenity"), &dir.join("zenity.log"), zenity_answer);
    write_exec(&dir.join("prog.exe"), &pe(0x80, 0x14c, false, false));
    let cache = cache(
        &dir,
        r#"
[defaults]
missing_helper = "@D/missing-interpreter"

[interpreters.wine]
path = "@D/opt/wine"
argv = "plain"
install_hint = "Install Wine (Fedora: dnf install wine-core; Debian: apt install wine64; openSUSE: zypper install wine-staging; Arch: pacman -S wine)."

[[rules]]
format = "pe"
interpreter = "wine"
"#,
    );
    (dir, cache)
}

#[test]
fn the_helper_installs_on_a_yes_at_the_terminal_and_reruns() {
    let (dir, cache) = helper_case("helper-yes", 0);
    let out = run(
        &dir,
        &cache,
        "PATH=$PWD/fakebin:$PATH BINFMT_DISPATCHER_HELPER_UI=terminal ./prog.exe x 'y z' <<EOF\ny\nEOF",
        &[],
    );
    let err = stderr(&out);
    let r = report_of(&out);
    let wine = dir.join("opt/wine");
    assert_eq!(r.argv, [wine.to_str().unwrap(), "./prog.exe", "x", "y z"]);
    assert_eq!(
        fs::read_to_string(dir.join("dnf.log")).unwrap(),
        "install -y wine-core\n"
    );
    // The dispatcher's one line, then the question.
    assert!(
        err.starts_with("binfmt-dispatcher: ./prog.exe: cannot run it: wine ("),
        "{err}"
    );
    assert!(
        err.contains("Install wine-core with dnf and run it? [y/N]"),
        "{err}"
    );
    // The helper was told the details.
    assert!(!dir.join("zenity.log").exists());
}

#[test]
fn the_helper_does_nothing_on_a_no_and_exits_127() {
    let (dir, cache) = helper_case("helper-no", 0);
    let out = run(
        &dir,
        &cache,
        "echo n | PATH=$PWD/fakebin:$PATH BINFMT_DISPATCHER_HELPER_UI=terminal ./prog.exe",
        &[],
    );
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(!dir.join("dnf.log").exists());
    assert!(stdout(&out).is_empty());
}

#[test]
fn the_helper_asks_through_zenity_without_a_terminal() {
    // Yes: installed and rerun.
    let (dir, cache) = helper_case("helper-dialog", 0);
    let out = run(
        &dir,
        &cache,
        "PATH=$PWD/fakebin:$PATH DISPLAY=:0 ./prog.exe arg </dev/null",
        &[],
    );
    let r = report_of(&out);
    assert_eq!(&r.argv[1..], ["./prog.exe", "arg"]);
    let zenity = fs::read_to_string(dir.join("zenity.log")).unwrap();
    assert!(
        zenity.starts_with(
            "--question --no-markup --title binfmt-dispatcher --text prog.exe is a Windows program (PE)"
        ),
        "{zenity}"
    );
    assert!(zenity.contains("(wine)"), "{zenity}");
    assert_eq!(
        fs::read_to_string(dir.join("dnf.log")).unwrap(),
        "install -y wine-core\n"
    );
    // No: nothing installed, 127.
    let (dir, cache) = helper_case("helper-dialog-no", 1);
    let out = run(
        &dir,
        &cache,
        "PATH=$PWD/fakebin:$PATH DISPLAY=:0 ./prog.exe </dev/null",
        &[],
    );
    assert_eq!(out.status.code(), Some(127));
    assert!(!dir.join("dnf.log").exists());
    // No display, no terminal: the dispatcher's message only.
    let (dir, cache) = helper_case("helper-headless", 0);
    let out = run(
        &dir,
        &cache,
        "PATH=$PWD/fakebin:$PATH ./prog.exe </dev/null",
        &[],
    );
    assert_eq!(out.status.code(), Some(127));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(!dir.join("zenity.log").exists() && !dir.join("dnf.log").exists());
}

#[test]
fn the_helper_knows_dnf_apt_zypper_and_pacman_and_asks_through_kdialog() {
    for (pm, logged) in [
        ("dnf", "install -y wine-core"),
        ("apt-get", "install -y wine64"),
        ("zypper", "--non-interactive install wine-staging"),
        ("pacman", "-S --noconfirm wine"),
    ] {
        let (dir, cache) = helper_case(&format!("helper-{pm}"), 0);
        // Only this package manager, kdialog, and the tools the helper uses.
        let only = only_tools(&dir, &["sed", "head", "id", "mkdir", "cp"]);
        fake_package_manager(&only.join(pm), &dir, "pm.log");
        fake_dialog(&only.join("kdialog"), &dir.join("kdialog.log"), 0);
        let out = run(
            &dir,
            &cache,
            "PATH=$PWD/only DISPLAY=:0 ./prog.exe arg </dev/null",
            &[],
        );
        let r = report_of(&out);
        assert_eq!(&r.argv[1..], ["./prog.exe", "arg"], "{pm}");
        assert_eq!(
            fs::read_to_string(dir.join("pm.log")).unwrap(),
            format!("{logged}\n"),
            "{pm}"
        );
        let kdialog = fs::read_to_string(dir.join("kdialog.log")).unwrap();
        assert!(
            kdialog.starts_with(
                "--title binfmt-dispatcher --yesno prog.exe is a Windows program (PE)"
            ),
            "{pm}: {kdialog}"
        );
    }
}

/// Runs `path` (argv[0] `argv0`, argument `x`) with `cache`, the helper
/// asking on the terminal and told yes; what the interpreter of the rerun
/// received.
fn rerun_after_yes(dir: &Path, cache: &Path, path: &str, argv0: &str) -> Report {
    let launch = [
        launcher().to_str().unwrap(),
        "-e",
        &format!("BINFMT_DISPATCHER_CACHE={}", cache.display()),
        "-e",
        &format!("PATH={}/fakebin:/usr/bin:/bin", dir.display()),
        "-e",
        "BINFMT_DISPATCHER_HELPER_UI=terminal",
        path,
        argv0,
        "x",
    ]
    .map(sh_quote)
    .join(" ");
    report_of(&run(dir, cache, &format!("echo y | {launch}"), &[]))
}

#[test]
fn the_helper_reruns_the_program_with_its_argv0() {
    let (dir, _) = helper_case("helper-argv0", 0);
    // The interpreter shows argv[0] (qemu's -0); launched with its own argv[0].
    let toml = fs::read_to_string(dir.join("config.toml")).unwrap();
    let cache = cache(&dir, &toml.replace("argv = \"plain\"", "argv = \"qemu\""));
    let r = rerun_after_yes(&dir, &cache, "./prog.exe", "CUSTOM0");
    let wine = dir.join("opt/wine");
    // bash's exec -a, which sets it, names the binary by its absolute path.
    let binary = dir.join("prog.exe");
    assert_eq!(
        r.argv,
        [
            wine.to_str().unwrap(),
            "-0",
            "CUSTOM0",
            binary.to_str().unwrap(),
            "x"
        ]
    );
}

#[test]
fn the_helper_reruns_a_program_whose_name_begins_with_a_dash() {
    // `-prog.exe` reaches wine as `./-prog.exe`, and the helper reruns it
    // (exec would take `-prog.exe` for an option).
    let (dir, cache) = helper_case("helper-dash", 0);
    fs::rename(dir.join("prog.exe"), dir.join("-prog.exe")).unwrap();
    let r = rerun_after_yes(&dir, &cache, "-prog.exe", "-prog.exe");
    let wine = dir.join("opt/wine");
    // The rerun through bash's exec -a names it by its absolute path.
    let binary = dir.join("-prog.exe");
    assert_eq!(
        r.argv,
        [wine.to_str().unwrap(), binary.to_str().unwrap(), "x"]
    );
    assert_eq!(
        fs::read_to_string(dir.join("dnf.log")).unwrap(),
        "install -y wine-core\n"
    );
}

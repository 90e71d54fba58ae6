//! Real clients: Mono, Wine and QEMU each run a program that prints its
//! argv, its own path, environment, descriptors and stdin and exits with a
//! chosen status (tests/support/client.c built with mingw-w64 and the
//! aarch64 cross gcc,
//! tests/support/Client.cs built with mcs), once through the dispatcher as
//! `binfmtctl register` registers it, with the built-in configuration
//! choosing the interpreter, and once through the interpreter's own
//! registration, each in a private binfmt_misc. Both runs must print the
//! same bytes, to stdout and stderr, and the program must see the
//! arguments it was given.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use support::*;

/// The directory the programs are run from: a name with spaces.
const DIR: &str = "dir with space";

/// Arguments a command line or an interpreter could get wrong: spaces, an
/// empty one, non-ASCII, quotes and backslashes (Windows command-line
/// quoting), options of the interpreters, a tab and a newline.
const ARGS: &[&str] = &[
    "a b",
    "",
    "héllo wörld ☃",
    "\"quoted\"",
    r"back\slash",
    r"trailing\",
    r#"x\"y"#,
    "--help",
    "-",
    "tab\there",
    "two\nlines",
];

/// What stdin is fed in the `stdin` case.
const STDIN: &[u8] = b"one\ntwo\n\x01\xff end";

/// The cases, one labelled section each, run with sh from the test
/// directory, each with ARGS; `prog` is the program's file name in DIR.
/// Each ends with the program's exit status.
fn cases(prog: &str) -> String {
    let args: Vec<String> = ARGS.iter().map(|a| sh_quote(a)).collect();
    let args = args.join(" ");
    let dir = sh_quote(DIR);
    let stdin: String = STDIN.iter().map(|b| format!("\\{b:03o}")).collect();
    format!(
        r#"run() {{ echo "== $1"; shift; "$@"; echo "status=$?"; }}
run absolute "$PWD"/{dir}/{prog} {args} </dev/null
run relative ./{dir}/{prog} {args} </dev/null
run relative-bare {dir}/{prog} {args} </dev/null
(cd {dir} && run in-dir ./{prog} {args} </dev/null)
(PATH="$PWD"/{dir}:"$PATH" && run by-path {prog} {args} </dev/null)
printf '{stdin}' | run stdin ./{dir}/{prog} {args}
(CLIENT_EXIT=3 && export CLIENT_EXIT && run status-3 ./{dir}/{prog} {args} </dev/null)
(CLIENT_EXIT=255 && export CLIENT_EXIT && run status-255 ./{dir}/{prog} {args} </dev/null)
"#
    )
}

/// One case's output: the program's report and exit status.
#[derive(Debug, Default)]
struct Case {
    label: String,
    argv: Vec<Vec<u8>>,
    self_path: Vec<u8>,
    env: Vec<Vec<u8>>,
    fds: Vec<u32>,
    stdin: Vec<u8>,
    status: Option<i32>,
}

/// The sections `cases` printed, in order.
fn parse_cases(text: &str) -> Vec<Case> {
    let mut all: Vec<Case> = Vec::new();
    for line in text.lines() {
        if let Some(label) = line.strip_prefix("== ") {
            all.push(Case {
                label: label.to_string(),
                ..Case::default()
            });
            continue;
        }
        let case = all
            .last_mut()
            .unwrap_or_else(|| panic!("{line:?} before a case in\n{text}"));
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{line:?} in\n{text}"));
        match key {
            "argc" => assert!(case.argv.is_empty(), "two reports in {}", case.label),
            "self" => case.self_path = from_hex(value),
            "env" => case.env.push(from_hex(value)),
            "fd" => case.fds.push(value.parse().unwrap()),
            "stdin" => case.stdin = from_hex(value),
            "status" => case.status = Some(value.parse().unwrap()),
            _ if key.starts_with("argv[") => case.argv.push(from_hex(value)),
            _ => panic!("{line:?} in\n{text}"),
        }
    }
    all
}

/// A program to run: which registration to make for it and where it is.
struct Client<'a> {
    /// The program's file name in DIR.
    prog: &'a str,
    /// `binfmtctl register --arch` of the format.
    arch: &'a str,
    /// The interpreter's own registration.
    direct: Entry<'a>,
    /// Environment of both runs (beyond PATH and HOME).
    env: &'a [(&'a str, &'a str)],
    /// Run after the cases, in the same namespace.
    cleanup: &'a str,
}

/// A test directory holding DIR with `program` copied in as `prog`.
fn client_dir(tag: &str, program: &Path, prog: &str) -> PathBuf {
    let dir = temp_dir(tag);
    fs::create_dir(dir.join(DIR)).unwrap();
    fs::copy(program, dir.join(DIR).join(prog)).unwrap();
    dir
}

/// `script` run through the dispatcher (`binfmtctl register --arch`, its
/// default flags, no configuration but the built-in one) and through the
/// direct registration: both outputs.
fn run_both(dir: &Path, client: &Client<'_>, script: &str) -> (Output, Output) {
    let register = format!(
        "\"$CTL\" register --arch {} --interpreter \"$DISP\" >/dev/null || exit 90\n\
         unset CTL DISP\n",
        client.arch
    );
    let mut env = vec![("CTL", BINFMTCTL), ("DISP", dispatcher())];
    env.extend_from_slice(client.env);
    let via = run_in_private_binfmt_in(dir, &[], &(register + script), &env);
    assert_ne!(via.status.code(), Some(90), "register: {}", stderr(&via));
    let direct = run_in_private_binfmt_in(dir, &[client.direct], script, client.env);
    (via, direct)
}

/// Runs the cases both ways; requires the same bytes and returns the cases.
fn same_as_direct(dir: &Path, client: &Client<'_>) -> Vec<Case> {
    let started = Instant::now();
    let script = cases(client.prog) + client.cleanup;
    let (via, direct) = run_both(dir, client, &script);
    eprintln!("{}: both runs took {:?}", client.prog, started.elapsed());
    assert!(
        via.status.success() && direct.status.success(),
        "via the dispatcher: {:?}\n{}\ndirect: {:?}\n{}",
        via.status,
        stderr(&via),
        direct.status,
        stderr(&direct)
    );
    assert_eq!(
        stdout(&via),
        stdout(&direct),
        "{}: stdout differs from the direct registration's; stderr:\n{}",
        client.prog,
        stderr(&via)
    );
    assert_eq!(
        stderr(&via),
        stderr(&direct),
        "{}: stderr differs",
        client.prog
    );
    let cases = parse_cases(&stdout(&via));
    let labels: Vec<&str> = cases.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "absolute",
            "relative",
            "relative-bare",
            "in-dir",
            "by-path",
            "stdin",
            "status-3",
            "status-255"
        ],
        "{}",
        stdout(&via)
    );
    cases
}

/// The program executed by a bare file name that begins with `-` (the
/// kernel's filename is `-NAME`, as from `execve("-NAME", ...)` in DIR),
/// a copy of the client's: through the dispatcher and direct.
fn dash_name(dir: &Path, client: &Client<'_>, dashed: &str) -> (Output, Output) {
    fs::copy(dir.join(DIR).join(client.prog), dir.join(DIR).join(dashed)).unwrap();
    let mut launch = format!(
        "cd {} && {}",
        sh_quote(DIR),
        sh_quote(launcher().to_str().unwrap())
    );
    let mut env = vec![
        "PATH=/usr/bin:/bin".to_string(),
        format!("HOME={}", dir.display()),
    ];
    env.extend(
        client
            .env
            .iter()
            .map(|(key, value)| format!("{key}={value}")),
    );
    for entry in env {
        launch += &format!(" -e {}", sh_quote(&entry));
    }
    let name = sh_quote(dashed);
    let script = format!(
        "{launch} {name} {name} 'a b' '' </dev/null\necho \"status=$?\"\n{}",
        client.cleanup
    );
    run_both(dir, client, &script)
}

/// The dispatcher ran the dash-named program with its arguments.
fn dash_name_ran(via: &Output, dashed: &str) {
    let out = stdout(via);
    assert!(
        out.ends_with("status=0\n"),
        "{dashed}: {out}\n{}",
        stderr(via)
    );
    let case = &parse_cases(&format!("== {dashed}\n{out}"))[0];
    assert_eq!(case.argv[1..], [b"a b".to_vec(), Vec::new()], "{dashed}");
}

/// What every client must show, whoever runs it: the arguments as given,
/// stdin as fed, the status as chosen, and one path to itself throughout.
fn check_cases(cases: &[Case]) {
    let args: Vec<Vec<u8>> = ARGS.iter().map(|a| a.as_bytes().to_vec()).collect();
    for case in cases {
        let label = &case.label;
        assert!(
            !case.argv.is_empty(),
            "{label}: the program did not run: {case:?}"
        );
        assert_eq!(case.argv[1..], args, "{label}");
        let stdin: &[u8] = if label == "stdin" { STDIN } else { b"" };
        assert_eq!(case.stdin, stdin, "{label}");
        let status = label
            .strip_prefix("status-")
            .map_or(0, |s| s.parse().unwrap());
        assert_eq!(case.status, Some(status), "{label}");
        assert_eq!(
            case.self_path, cases[0].self_path,
            "{label}: a different self"
        );
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// qemu-user-static's own aarch64 registration, as systemd-binfmt makes
/// it from /usr/lib/binfmt.d/qemu-aarch64.conf (Debian: the
/// `aarch64-binfmt-P` link to qemu-aarch64-static, flags OPF).
fn debian_qemu_aarch64() -> String {
    require_qemu();
    fs::read_to_string("/usr/lib/binfmt.d/qemu-aarch64.conf")
        .expect("qemu-user-static's /usr/lib/binfmt.d/qemu-aarch64.conf")
}

/// `prog`, an aarch64 program, against `conf`'s registration (a
/// `:name:M::magic:mask:interpreter:flags` line).
fn qemu_client<'a>(prog: &'a str, conf: &'a str) -> Client<'a> {
    let fields: Vec<&str> = conf.trim_end().split(':').collect();
    let [_, name, "M", "", magic, mask, interpreter, flags] = fields[..] else {
        panic!("not a magic entry: {conf}");
    };
    Client {
        prog,
        arch: "aarch64",
        direct: (name, magic, mask, interpreter, flags),
        env: &[],
        cleanup: "",
    }
}

#[test]
fn qemu_runs_an_aarch64_program_as_its_own_registration_does() {
    let conf = debian_qemu_aarch64();
    let client = qemu_client("client", &conf);
    let dir = client_dir("clients-qemu", &client_aarch64(), client.prog);
    let cases = same_as_direct(&dir, &client);
    check_cases(&cases);
    // Both registrations have P: the caller's argv[0], as typed.
    let base = fs::canonicalize(&dir).unwrap().display().to_string();
    let argv0: Vec<String> = cases.iter().map(|c| text(&c.argv[0])).collect();
    let here = format!("./{DIR}/client");
    assert_eq!(
        argv0,
        [
            format!("{}/{DIR}/client", dir.display()),
            here.clone(),
            format!("{DIR}/client"),
            "./client".to_string(),
            "client".to_string(),
            here.clone(),
            here.clone(),
            here
        ]
    );
    assert_eq!(text(&cases[0].self_path), format!("{base}/{DIR}/client"));
    // qemu in Debian's binfmt-P mode parses no options: a name that
    // begins with `-` runs both ways.
    let (via, direct) = dash_name(&dir, &client, "-x");
    dash_name_ran(&via, "-x");
    assert_eq!(stdout(&via), stdout(&direct), "{}", stderr(&direct));
}

#[test]
fn qemu_runs_busybox_as_its_own_registration_does() {
    let conf = debian_qemu_aarch64();
    let client = qemu_client("busybox", &conf);
    let dir = client_dir("clients-busybox", busybox_arm64(), client.prog);
    link_applets(
        &dir.join(DIR),
        Path::new("busybox"),
        &["sh", "cat", "env", "false"],
    );
    let args: Vec<String> = ARGS.iter().map(|a| sh_quote(a)).collect();
    let args = args.join(" ");
    let bin = format!("./{}", sh_quote(DIR));
    // Each applet is chosen by argv[0]; `exec -a` sets it (P both ways);
    // busybox's env execs another arm64 program, through binfmt_misc again.
    let script = format!(
        r#"run() {{ echo "== $1"; shift; "$@"; echo "status=$?"; }}
run sh {bin}/sh -c 'for a in "$0" "$@"; do printf "[%s]" "$a"; done; echo; exit 7' zero {args}
printf 'one
two
' | run cat {bin}/cat
run false {bin}/false
(cd {dir} && run argv0 bash -c 'exec -a echo ./sh "a  b" ""')
run nested {bin}/env -i 'FOO=a b' {bin}/env
"#,
        dir = sh_quote(DIR)
    );
    let (via, direct) = run_both(&dir, &client, &script);
    let bracketed: String = ARGS.iter().map(|a| format!("[{a}]")).collect();
    let expected = format!(
        "== sh\n[zero]{bracketed}\nstatus=7\n\
         == cat\none\ntwo\nstatus=0\n\
         == false\nstatus=1\n\
         == argv0\na  b \nstatus=0\n\
         == nested\nFOO=a b\nstatus=0\n"
    );
    assert_eq!(stdout(&via), expected, "{}", stderr(&via));
    assert_eq!(stdout(&direct), expected, "{}", stderr(&direct));
    assert_eq!(stderr(&via), stderr(&direct));
}

#[test]
fn mono_runs_a_dotnet_assembly_as_its_own_registration_does() {
    // Debian's registration of Mono (binfmt-support's /usr/share/binfmts/cli:
    // /usr/bin/cli, magic MZ, no flags); its detector, which passes over PE
    // files without a CLR header, only matters for those.
    let debian = fs::read_to_string("/usr/share/binfmts/cli")
        .expect("mono-runtime's /usr/share/binfmts/cli");
    let field = |key: &str| {
        debian
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {key} in /usr/share/binfmts/cli"))
            .to_string()
    };
    let (interpreter, magic) = (field("interpreter"), field("magic"));
    require_tool(&interpreter, "mono-runtime");
    let client = Client {
        prog: "Client.exe",
        arch: "pe",
        direct: ("cli", &magic, "", &interpreter, ""),
        env: &[],
        cleanup: "",
    };
    let dir = temp_dir("clients-mono");
    fs::create_dir(dir.join(DIR)).unwrap();
    client_dotnet(&dir.join(DIR).join(client.prog));
    let cases = same_as_direct(&dir, &client);
    check_cases(&cases);
    // Mono gives the assembly's absolute path as argv[0].
    let base = fs::canonicalize(&dir).unwrap().display().to_string();
    for case in &cases {
        assert_eq!(
            text(&case.argv[0]),
            format!("{base}/{DIR}/Client.exe"),
            "{}",
            case.label
        );
    }
    // The one difference: `mono -x.exe` is an option to Mono, so its own
    // registration cannot run a program whose name begins with `-`; the
    // dispatcher names it `./-x.exe`.
    let (via, direct) = dash_name(&dir, &client, "-x.exe");
    dash_name_ran(&via, "-x.exe");
    assert_eq!(stdout(&direct), "status=1\n");
    assert!(
        stderr(&direct).contains("Unknown command line option: '-x.exe'"),
        "{}",
        stderr(&direct)
    );
}

/// A Wine prefix of its own for one test, made with `wineboot -i`; the
/// wineserver is killed and the prefix removed when it is dropped.
struct WinePrefix {
    path: PathBuf,
    home: PathBuf,
}

impl WinePrefix {
    fn new(home: &Path) -> Self {
        require_tool("/usr/bin/wine", "wine and wine64");
        let prefix = WinePrefix {
            path: temp_dir("clients-wineprefix"),
            home: home.to_path_buf(),
        };
        let started = Instant::now();
        // No wine-mono or gecko to offer (there is no display to ask on),
        // no menu entries written into HOME.
        let out = prefix
            .wine_command("wineboot")
            .arg("-i")
            .env("WINEDLLOVERRIDES", "mscoree,mshtml,winemenubuilder.exe=")
            .output()
            .expect("cannot run wineboot");
        assert!(out.status.success(), "wineboot -i: {}", stderr(&out));
        prefix.kill_server();
        eprintln!("wineboot -i took {:?}", started.elapsed());
        prefix
    }

    fn wine_command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &self.home)
            .env("WINEPREFIX", &self.path)
            .env("WINEDEBUG", "-all")
            .stdin(Stdio::null());
        cmd
    }

    fn kill_server(&self) {
        let _ = self.wine_command("wineserver").arg("-k").status();
        let _ = self.wine_command("wineserver").arg("-w").status();
    }

    /// The live (not zombie) processes whose environment names this
    /// prefix: the wineserver and Wine's own services, if any are left.
    fn processes(&self) -> Vec<String> {
        let wanted = format!("WINEPREFIX={}", self.path.display());
        let mut left = Vec::new();
        for entry in fs::read_dir("/proc").unwrap().flatten() {
            let proc_dir = entry.path();
            let stat = fs::read_to_string(proc_dir.join("stat")).unwrap_or_default();
            let state = stat.rsplit_once(") ").map(|(_, rest)| &rest[..1]);
            let environ = fs::read(proc_dir.join("environ")).unwrap_or_default();
            let ours = environ.split(|&b| b == 0).any(|e| e == wanted.as_bytes());
            if ours && state.is_some_and(|s| s != "Z") {
                left.push(stat);
            }
        }
        left
    }
}

impl Drop for WinePrefix {
    fn drop(&mut self) {
        self.kill_server();
        let _ = fs::remove_dir_all(&self.path);
    }
}

#[test]
fn wine_runs_a_windows_program_as_its_own_registration_does() {
    let program = client_windows();
    let dir = client_dir("clients-wine", &program, "client.exe");
    let prefix = WinePrefix::new(&dir);
    let prefix_path = prefix.path.display().to_string();
    // Wine's documented registration (`:windows:M::MZ::/usr/bin/wine:`);
    // Debian's wine-binfmt registers the same.
    let client = Client {
        prog: "client.exe",
        arch: "pe",
        direct: ("windows", "MZ", "", "/usr/bin/wine", ""),
        // Wine decodes argv in the locale's character set: UTF-8 here.
        env: &[
            ("WINEPREFIX", &prefix_path),
            ("WINEDEBUG", "-all"),
            ("LANG", "C.UTF-8"),
        ],
        // No wineserver outlives the namespace it was started in.
        cleanup: "wineserver -k; wineserver -w\n",
    };
    let cases = same_as_direct(&dir, &client);
    check_cases(&cases);
    // Wine names the program by its full DOS path (Z: is the root), in
    // argv[0] too, whatever path it was run by.
    let base = fs::canonicalize(&dir).unwrap().display().to_string();
    let dos = format!("Z:{}\\{DIR}\\client.exe", base.replace('/', "\\"));
    assert_eq!(text(&cases[0].self_path), dos);
    for case in &cases {
        assert_eq!(text(&case.argv[0]), dos, "{}", case.label);
    }
    // Wine takes no option but --help and --version: `-x.exe` runs both ways.
    let (via, direct) = dash_name(&dir, &client, "-x.exe");
    dash_name_ran(&via, "-x.exe");
    assert_eq!(stdout(&via), stdout(&direct), "{}", stderr(&direct));
    // Each namespace's run ended with `wineserver -k`: nothing is left.
    assert_eq!(prefix.processes(), Vec::<String>::new());
    drop(prefix);
}

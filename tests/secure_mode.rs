//! Secure mode for real: a setuid-root foreign binary, the dispatcher
//! registered with the C flag, run by an unprivileged user whose
//! environment and user cache name another interpreter.
//!
//! The private binfmt_misc lives in a new user namespace, as in the other
//! tests, but with uids and gids 0..65535 mapped to the same ids outside
//! (written to `uid_map` by the test, which runs as root) instead of root
//! alone: inside it, `setpriv` can become `nobody` (65534), and `nobody`
//! executing a file owned by root with mode 4755 really changes
//! credentials, so the kernel gives the dispatcher `AT_SECURE`. Nothing is
//! registered in the machine's own binfmt_misc, and the system cache under
//! /var/cache is a tmpfs of the test's own mount namespace.

mod support;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::*;

const NOBODY: u32 = 65534;
const SYSTEM_CACHE: &str = "/var/cache/binfmt-dispatcher/binfmt-dispatcher.cache";

/// Runs `script` with sh in a new user namespace mapping ids 0..65535 to
/// themselves and a new mount namespace with its own binfmt_misc holding
/// the dispatcher (`flags`) and a tmpfs on /var/cache, in `dir`.
fn run_mapped(dir: &Path, flags: &str, script: &str) -> Output {
    let (name, magic, mask, interp, flags) = dispatcher_entry(flags);
    let setup = format!(
        "read _ || exit 90\n\
         set -e\n\
         mount -t binfmt_misc none /proc/sys/fs/binfmt_misc\n\
         printf '%s\\n' {} > /proc/sys/fs/binfmt_misc/register\n\
         mount -t tmpfs -o mode=755 none /var/cache\n\
         mkdir /var/cache/binfmt-dispatcher\n\
         set +e\n{script}",
        sh_quote(&format!(":{name}:M::{magic}:{mask}:{interp}:{flags}"))
    );
    let mut child = Command::new("unshare")
        .args(["--user", "--mount", "sh", "-c", &setup])
        .current_dir(dir)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run unshare");
    // unshare execs sh once it has made the namespaces: wait for that,
    // map the ids, then let the script go on.
    let ours = fs::read_link("/proc/self/ns/user").unwrap();
    let ns = format!("/proc/{}/ns/user", child.id());
    let start = Instant::now();
    while fs::read_link(&ns).ok().is_none_or(|l| l == ours) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "unshare made no user namespace"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    for map in ["uid_map", "gid_map"] {
        fs::write(format!("/proc/{}/{map}", child.id()), "0 0 65536\n")
            .unwrap_or_else(|e| panic!("cannot write {map} (the test must run as root): {e}"));
    }
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        !stderr(&out).contains("binfmt_misc") && !stderr(&out).contains("tmpfs"),
        "setting up the namespace failed:\n{}",
        stderr(&out)
    );
    out
}

/// An interpreter section running the reporter as `REPORTER TAG`.
fn tagged(id: &str, tag: &str) -> String {
    format!(
        "[interpreters.{id}]\npath = \"{}\"\nargv = \"custom\"\ntemplate = [\"{{interpreter}}\", \"{tag}\"]\n",
        reporter().display()
    )
}

/// A cache whose aarch64 rule gives `TAG`, and whose interpreter `evil`
/// gives `EVIL-TAG` (what `BINFMT_DISPATCHER_INTERPRETER=evil` would pick).
fn cache(dir: &Path, tag: &str) -> std::path::PathBuf {
    let toml = format!(
        "{}{}[[rules]]\narch = \"aarch64\"\ninterpreter = \"r\"\n",
        tagged("r", tag),
        tagged("evil", &format!("EVIL-{tag}"))
    );
    compile_cache(dir, &tag.to_lowercase(), &toml)
}

/// Each command's outcome: exit status, stdout, stderr.
struct Outcome {
    status: String,
    stdout: Vec<u8>,
    stderr: String,
}

/// `cmds` as a script: each run as `nobody` under a timeout, its outcome
/// kept in files read back afterwards.
fn run_as_nobody(dir: &Path, flags: &str, setup: &str, cmds: &[String]) -> Vec<Outcome> {
    let mut script = setup.to_string();
    for (i, c) in cmds.iter().enumerate() {
        script += &format!(
            "timeout 20 setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups -- {c} \
             > out.{i} 2> err.{i}; echo $? > rc.{i}\n"
        );
    }
    let out = run_mapped(dir, flags, &script);
    (0..cmds.len())
        .map(|i| {
            let read = |n: &str| {
                fs::read(dir.join(format!("{n}.{i}"))).unwrap_or_else(|e| {
                    panic!("command {i} left no {n}: {e}; stderr:\n{}", stderr(&out))
                })
            };
            Outcome {
                status: String::from_utf8_lossy(&read("rc")).trim().to_string(),
                stdout: read("out"),
                stderr: String::from_utf8_lossy(&read("err")).into_owned(),
            }
        })
        .collect()
}

fn argv_of(o: &Outcome) -> Vec<String> {
    parse_report(&o.stdout).argv
}

fn want(tag: &str) -> Vec<String> {
    vec![reporter().display().to_string(), tag.to_string()]
}

#[test]
fn setuid_binary_ignores_the_callers_environment_and_caches() {
    require_qemu();
    let dir = temp_dir("secure");
    // The setuid-root binary and a plain copy of it.
    let suid = dir.join("suid-foreign");
    write_foreign(&suid);
    fs::set_permissions(&suid, fs::Permissions::from_mode(0o4755)).unwrap();
    write_foreign(&dir.join("plain-foreign"));

    let system = cache(&dir, "SYSTEM");
    let env_cache = cache(&dir, "ENV");
    let user = cache(&dir, "USER");
    let home = dir.join("home");
    fs::create_dir_all(home.join(".cache/binfmt-dispatcher")).unwrap();
    fs::copy(
        &user,
        home.join(".cache/binfmt-dispatcher/binfmt-dispatcher.cache"),
    )
    .unwrap();

    // What an unprivileged caller can say.
    let caller_env = [
        format!("BINFMT_DISPATCHER_CACHE={}", env_cache.display()),
        "BINFMT_DISPATCHER_INTERPRETER=evil".to_string(),
        "BINFMT_DISPATCHER_LOG=debug".to_string(),
        format!("HOME={}", home.display()),
    ];
    let launch = |env: &[String], bin: &str| {
        let mut cmd = sh_quote(launcher().to_str().unwrap());
        for e in env {
            cmd += &format!(" -e {}", sh_quote(e));
        }
        format!("{cmd} ./{bin} {bin}")
    };
    let home_only = [format!("HOME={}", home.display())];
    let no_user_cache = [format!("HOME={}", dir.display())];
    let install = |mode: &str, owner: &str| {
        format!(
            "cp {} {SYSTEM_CACHE} && chmod {mode} {SYSTEM_CACHE} && chown {owner} {SYSTEM_CACHE}\n",
            sh_quote(system.to_str().unwrap())
        )
    };
    let setup = install("644", "0:0");
    let cmds = [
        launch(&caller_env, "suid-foreign"),
        launch(&caller_env, "plain-foreign"),
        launch(&home_only, "plain-foreign"),
        launch(&no_user_cache, "plain-foreign"),
    ];

    // With C: the setuid binary uses the system cache whatever the caller
    // says; the plain one follows the caller.
    let runs = run_as_nobody(&dir, "POCF", &setup, &cmds);
    let [suid_run, plain_env, plain_home, plain_system] = &runs[..] else {
        unreachable!()
    };
    assert_eq!(
        argv_of(suid_run),
        want("SYSTEM"),
        "setuid: {}",
        suid_run.stderr
    );
    assert_eq!(
        suid_run.stderr, "",
        "setuid: BINFMT_DISPATCHER_LOG is ignored"
    );
    assert_eq!(
        argv_of(plain_env),
        want("EVIL-ENV"),
        "plain, caller's environment"
    );
    assert!(
        plain_env.stderr.contains("BINFMT_DISPATCHER_INTERPRETER"),
        "plain: BINFMT_DISPATCHER_LOG=debug is followed: {}",
        plain_env.stderr
    );
    assert_eq!(argv_of(plain_home), want("USER"), "plain, user cache");
    assert_eq!(argv_of(plain_system), want("SYSTEM"), "plain, system cache");

    // An unsafe system cache is refused in secure mode only: the built-in
    // configuration runs the setuid binary (qemu, exit 42).
    for (mode, owner, why) in [
        ("664", "0:0", "group-writable"),
        ("646", "0:0", "world-writable"),
        ("644", "65534:65534", "owned by nobody"),
    ] {
        let runs = run_as_nobody(
            &dir,
            "POCF",
            &install(mode, owner),
            &[launch(&caller_env, "suid-foreign"), cmds[3].clone()],
        );
        let (suid_run, plain_run) = (&runs[0], &runs[1]);
        assert_eq!(suid_run.status, "42", "{why}: {}", suid_run.stderr);
        assert_eq!(
            suid_run.stderr,
            format!(
                "binfmt-dispatcher: ignoring cache {SYSTEM_CACHE}: not owned by root, or writable by others\n"
            ),
            "{why}"
        );
        assert_eq!(argv_of(plain_run), want("SYSTEM"), "{why}, not setuid");
        assert_eq!(plain_run.stderr, "", "{why}, not setuid");
    }

    // No system cache: the built-in configuration, silently.
    let runs = run_as_nobody(&dir, "POCF", "", &[launch(&caller_env, "suid-foreign")]);
    assert_eq!(runs[0].status, "42", "{}", runs[0].stderr);
    assert_eq!(runs[0].stderr, "");

    // Without C the kernel runs the dispatcher with the caller's
    // credentials (the setuid bit of a foreign binary has no effect): no
    // secure mode, the caller's choices apply.
    let runs = run_as_nobody(&dir, "POF", &setup, &[cmds[0].clone()]);
    assert_eq!(
        argv_of(&runs[0]),
        want("EVIL-ENV"),
        "without C: {}",
        runs[0].stderr
    );
}

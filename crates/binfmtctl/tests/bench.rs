//! `binfmtctl bench`: its hand-written ELF helpers run (natively, and the
//! foreign ones under qemu-user), and a short bench completes with the
//! expected lines. Nothing about time is asserted.

mod support;

#[allow(dead_code)]
use binfmtctl::elf;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use elf::Isa;
use support::*;

fn write_exe(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, bytes).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn host() -> Isa {
    Isa::host().expect("the tests run on x86_64 or aarch64")
}

#[test]
fn exit0_exits_zero() {
    let dir = temp_dir("elf-exit0");
    let exit0 = write_exe(&dir, "exit0", &elf::exit0(host()));
    let status = Command::new(&exit0).status().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn floor_execs_its_path_with_its_argv_and_environment() {
    let dir = temp_dir("elf-floor");
    let isa = host();
    let exit0 = write_exe(&dir, "exit0", &elf::exit0(isa));
    let floor = write_exe(
        &dir,
        "floor",
        &elf::floor(isa, exit0.to_str().unwrap().as_bytes()),
    );
    assert_eq!(Command::new(&floor).status().unwrap().code(), Some(0));

    // argv passes through: echo prints its arguments.
    let echo = write_exe(&dir, "floor-echo", &elf::floor(isa, b"/bin/echo"));
    let out = Command::new(&echo)
        .args(["one", "two words"])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "one two words\n");
    // So does the environment: env prints it.
    let env = write_exe(&dir, "floor-env", &elf::floor(isa, b"/usr/bin/env"));
    let out = Command::new(&env)
        .env_clear()
        .env("FOO", "bar")
        .env("EMPTY", "")
        .output()
        .unwrap();
    let mut lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    lines.sort();
    assert_eq!(lines, ["EMPTY=", "FOO=bar"]);
    // A path that cannot be executed: exit 127.
    let none = write_exe(&dir, "floor-none", &elf::floor(isa, b"/nonexistent/exit0"));
    assert_eq!(Command::new(&none).status().unwrap().code(), Some(127));
}

#[test]
fn foreign_helpers_run_under_qemu() {
    require_qemu();
    if host() != Isa::X86_64 {
        return;
    }
    let dir = temp_dir("elf-a64");
    let exit0 = write_exe(&dir, "exit0", &elf::exit0(Isa::Aarch64));
    let out = Command::new(QEMU_AARCH64).arg(&exit0).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // qemu-user passes the guest's execve to the host kernel: the aarch64
    // floor runs the host's echo with the guest's argv.
    let floor = write_exe(&dir, "floor", &elf::floor(Isa::Aarch64, b"/bin/echo"));
    let out = Command::new(QEMU_AARCH64)
        .arg(&floor)
        .args(["from", "aarch64"])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "from aarch64\n", "{}", stderr(&out));
    let none = write_exe(&dir, "none", &elf::floor(Isa::Aarch64, b"/nonexistent"));
    let out = Command::new(QEMU_AARCH64).arg(&none).output().unwrap();
    assert_eq!(out.status.code(), Some(127));
}

/// Checks the report of a bench run with `caches` more `--cache` variants
/// (dispatcher-NAME each).
fn check_report(out: &std::process::Output, rounds: u32, final_line: &str, caches: &[&str]) {
    let text = stdout(out);
    let err = stderr(out);
    assert!(out.status.success(), "{text}\n{err}");
    let all: Vec<&str> = text.lines().collect();
    let n = caches.len();
    assert_eq!(all.len(), 10 + 2 * n, "{text}");
    for (k, name) in caches.iter().enumerate() {
        let header = all[4 + k];
        assert!(
            header.starts_with(&format!("dispatcher-{name}: BINFMT_DISPATCHER_CACHE=/"))
                && header.ends_with(" KiB)"),
            "{text}"
        );
        let line = all[8 + n + k];
        assert!(
            line.starts_with(&format!("dispatcher-{name} ")) && line.contains("x floor, rounds "),
            "{text}"
        );
    }
    // The lines of the four fixed variants, as without --cache.
    let lines: Vec<&str> = all[..4]
        .iter()
        .chain(&all[4 + n..8 + n])
        .chain(&all[8 + 2 * n..])
        .copied()
        .collect();
    assert!(lines[0].starts_with("binfmtctl bench: Linux "), "{text}");
    assert!(lines[0].contains(&format!("{rounds} rounds x ")), "{text}");
    assert!(lines[0].contains(" environment of "), "{text}");
    assert!(lines[1].starts_with(final_line), "{text}");
    assert!(
        lines[2].starts_with(&format!("dispatcher: {} (", dispatcher())),
        "{text}"
    );
    assert!(lines[2].contains("system cache: built-in configuration with interpreter "));
    assert!(
        lines[3].starts_with("embedded: the dispatcher with that configuration embedded"),
        "{text}"
    );
    assert!(
        lines[4].starts_with("direct ") && lines[4].ends_with(" us/exec"),
        "{text}"
    );
    assert!(
        lines[5].starts_with("floor ") && lines[5].ends_with("(1.00x floor)"),
        "{text}"
    );
    for (line, name) in [(lines[6], "dispatcher "), (lines[7], "embedded ")] {
        assert!(
            line.starts_with(name) && line.contains("x floor, rounds "),
            "{text}"
        );
    }
    assert!(
        lines[8].starts_with("(overhead: median of per-round"),
        "{text}"
    );
    let faults = lines[9]
        .strip_prefix("page faults/exec (the child's, spawn to exit): ")
        .unwrap_or_else(|| panic!("{text}"));
    let names: Vec<&str> = faults
        .split(", ")
        .map(|f| f.split(' ').next().unwrap())
        .collect();
    let mut want = vec![
        "direct".to_string(),
        "floor".into(),
        "dispatcher".into(),
        "embedded".into(),
    ];
    want.extend(caches.iter().map(|c| format!("dispatcher-{c}")));
    assert_eq!(names, want, "{text}");
    // Progress on stderr, a line per round when it is not a terminal.
    for r in 1..=rounds {
        assert!(
            err.contains(&format!("binfmtctl bench: round {r}/{rounds}")),
            "{err}"
        );
    }
}

#[test]
fn bench_completes() {
    let out = Command::new(BINFMTCTL)
        .args([
            "bench",
            "--rounds",
            "2",
            "--execs",
            "50",
            "--dispatcher",
            dispatcher(),
        ])
        .output()
        .unwrap();
    check_report(
        &out,
        2,
        "final interpreter: built-in exit0 (exits at once)",
        &[],
    );
}

/// `--cache FILE`, twice: two more variants in the same rounds, each with
/// its cache as BINFMT_DISPATCHER_CACHE (both route the foreign files to an
/// exit0 of their own).
#[test]
fn bench_with_caches() {
    let dir = temp_dir("bench-caches");
    let isa = host();
    let mut caches = Vec::new();
    for name in ["small", "other"] {
        let exit0 = write_exe(&dir, &format!("exit0-{name}"), &elf::exit0(isa));
        let toml = dir.join(format!("{name}.toml"));
        fs::write(
            &toml,
            format!(
                "[interpreters.final]\npath = \"{}\"\nargv = \"qemu\"\n\n\
                 [[rules]]\nmachine = {}\ninterpreter = \"final\"\n",
                exit0.display(),
                isa.other().machine()
            ),
        )
        .unwrap();
        let cache = dir.join(format!("{name}.cache"));
        let out = Command::new(BINFMTCTL)
            .arg("compile")
            .arg("--output")
            .arg(&cache)
            .arg(&toml)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        caches.push(cache);
    }
    let out = Command::new(BINFMTCTL)
        .args([
            "bench",
            "--rounds",
            "2",
            "--execs",
            "20",
            "--dispatcher",
            dispatcher(),
        ])
        .arg("--cache")
        .arg(&caches[0])
        .arg("--cache")
        .arg(&caches[1])
        .output()
        .unwrap();
    check_report(
        &out,
        2,
        "final interpreter: built-in exit0 (exits at once)",
        &["small", "other"],
    );
    // A cache that does not exist: an error before anything runs.
    let out = Command::new(BINFMTCTL)
        .args(["bench", "--dispatcher", dispatcher(), "--cache"])
        .arg(dir.join("none.cache"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--cache "), "{}", stderr(&out));
}

#[test]
fn bench_with_a_real_interpreter() {
    require_qemu();
    if host() != Isa::X86_64 {
        return;
    }
    let out = Command::new(BINFMTCTL)
        .args([
            "bench",
            "--rounds",
            "1",
            "--execs",
            "5",
            "--dispatcher",
            dispatcher(),
        ])
        .args(["--interpreter", QEMU_AARCH64])
        .output()
        .unwrap();
    check_report(
        &out,
        1,
        &format!("final interpreter: {QEMU_AARCH64} (aarch64 exit(0) programs)"),
        &[],
    );
    assert!(stdout(&out).contains("with interpreter qemu-aarch64 at the final interpreter"));
}

#[test]
fn bench_runs_unprivileged() {
    if !Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| stdout(&o).trim() == "0")
    {
        return;
    }
    let out = Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            BINFMTCTL,
        ])
        .args([
            "bench",
            "--rounds",
            "1",
            "--execs",
            "5",
            "--dispatcher",
            dispatcher(),
        ])
        .env("TMPDIR", "/tmp")
        .output()
        .unwrap();
    check_report(
        &out,
        1,
        "final interpreter: built-in exit0 (exits at once)",
        &[],
    );
}

#[test]
fn bench_runs_with_a_minimal_or_the_inherited_environment() {
    let header = |env: &str, extra: usize| {
        let out = Command::new(BINFMTCTL)
            .args(["bench", "--rounds", "1", "--execs", "20", "--env", env])
            .arg("--dispatcher")
            .arg(dispatcher())
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("BINFMT_DISPATCHER_LOG", "debug")
            .envs((0..extra).map(|i| (format!("BENCH_TEST_{i}"), "x")))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out).lines().next().unwrap_or("").to_string()
    };
    // PATH and HOME.
    assert!(
        header("minimal", 5).ends_with("minimal environment of 2 variables"),
        "{}",
        header("minimal", 5)
    );
    // PATH, the 40 variables and HOME; BINFMT_DISPATCHER_LOG is dropped.
    let inherited = header("inherit", 40);
    assert!(
        inherited.ends_with("inherited environment of 42 variables"),
        "{inherited}"
    );
}

//! A real foreign program, an arm64 static busybox, run through the
//! dispatcher with no configuration at all (the baked default picks
//! qemu-aarch64-static), compared with qemu registered directly.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use support::*;

const APPLETS: &[&str] = &["echo", "false", "cat", "env", "sh"];

/// The script run in each private binfmt_misc: one labelled result per line.
const SCRIPT: &str = r#"
echo "echo:[$(./echo a b)]"
./false; echo "false:$?"
echo "cat:[$(printf data | ./cat)]"
echo "env:[$(FOO=bar ./env | grep '^FOO=')]"
echo "sh:[$(./sh -c 'echo "$0" "$#" "$@"' zero one 'two three')]"
echo "argv0:[$(./sh -c 'echo $0')]"
"#;

/// A directory with the applets linked to busybox and an empty HOME.
fn applet_dir(tag: &str) -> PathBuf {
    require_qemu();
    let busybox = busybox_arm64();
    let dir = temp_dir(tag);
    link_applets(&dir, busybox, APPLETS);
    dir
}

fn run(dir: &Path, entry: Entry<'_>, script: &str) -> Output {
    // No BINFMT_DISPATCHER_CACHE; HOME is the (cache-less) test directory and
    // the system cache is hidden by run_in_private_binfmt_in.
    run_in_private_binfmt_in(dir, &[entry], script, &[])
}

fn qemu_entry() -> Entry<'static> {
    (
        "qemu-aarch64",
        AARCH64_MAGIC,
        AARCH64_MASK,
        QEMU_AARCH64,
        "OCF",
    )
}

fn expected() -> String {
    "echo:[a b]\n\
     false:1\n\
     cat:[data]\n\
     env:[FOO=bar]\n\
     sh:[zero 2 one two three]\n\
     argv0:[./sh]\n"
        .to_string()
}

fn check(flags: &str) {
    let dir = applet_dir(&format!("busybox-{flags}"));
    let out = run(&dir, dispatcher_entry(flags), SCRIPT);
    let got = stdout(&out);
    let err = stderr(&out);
    assert!(
        out.status.success(),
        "flags {flags:?}: {:?}\n{got}\n{err}",
        out.status
    );
    assert_eq!(got, expected(), "flags {flags:?}; stderr:\n{err}");
    assert!(err.is_empty(), "flags {flags:?}: unexpected stderr:\n{err}");

    // The same as qemu-aarch64-static registered directly.
    let direct = run(&dir, qemu_entry(), SCRIPT);
    assert_eq!(
        got,
        stdout(&direct),
        "flags {flags:?}: differs from qemu registered directly"
    );
    assert_eq!(out.status.code(), direct.status.code());
}

#[test]
fn busybox_with_zero_config_pocf() {
    check("POCF");
}

#[test]
fn busybox_with_zero_config_f_only() {
    check("F");
}

#[test]
fn busybox_full_env_same_as_direct_qemu() {
    let dir = applet_dir("busybox-env");
    let script = "FOO=bar ./env | sort";
    let via = run(&dir, dispatcher_entry("POCF"), script);
    let direct = run(&dir, qemu_entry(), script);
    assert!(
        stdout(&via).lines().any(|l| l == "FOO=bar"),
        "{}",
        stdout(&via)
    );
    assert_eq!(stdout(&via), stdout(&direct), "stderr:\n{}", stderr(&via));
}

#[test]
fn busybox_applet_chosen_by_caller_argv0_with_p() {
    // With P the caller's argv[0] reaches busybox: `exec -a echo ./sh`
    // runs the echo applet, although the file is named sh.
    let dir = applet_dir("busybox-argv0");
    let script = "bash -c 'exec -a echo ./sh hello world'";
    let out = run(&dir, dispatcher_entry("POCF"), script);
    assert_eq!(stdout(&out), "hello world\n", "stderr:\n{}", stderr(&out));
    // Without P the kernel has dropped it: busybox sees the file name.
    let out = run(
        &dir,
        dispatcher_entry("OCF"),
        "bash -c 'exec -a echo ./sh -c \"echo via-sh\"'",
    );
    assert_eq!(stdout(&out), "via-sh\n", "stderr:\n{}", stderr(&out));
}

/// A root holding only the arm64 busybox, as a foreign container or a
/// `debootstrap --foreign` chroot has it: no interpreter inside. Its files
/// and their bytes, to check that nothing was written into it.
fn foreign_root(tag: &str) -> (PathBuf, Vec<(PathBuf, Vec<u8>)>) {
    require_qemu();
    let dir = temp_dir(tag);
    let bin = dir.join("root/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(busybox_arm64(), bin.join("busybox")).unwrap();
    for applet in ["sh", "echo"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    (dir.clone(), tree(&dir.join("root")))
}

/// In a root without the interpreter, qemu registered directly with F runs
/// the program (the kernel opened qemu at registration); the dispatcher,
/// also F, is found there, but its interpreter is not: one line naming
/// what it looked for, exit 127, and the root left as it was. Foreign
/// containers through the dispatcher are issue 15 (docs/decisions.md,
/// "Foreign containers: the design, measured").
#[test]
fn a_root_without_the_interpreter() {
    let (dir, before) = foreign_root("busybox-foreign-root");
    let script = "chroot root /bin/echo hello; echo \"status=$?\"";
    let direct = run(&dir, qemu_entry(), script);
    assert_eq!(stdout(&direct), "hello\nstatus=0\n", "{}", stderr(&direct));
    let via = run(&dir, dispatcher_entry("POCF"), script);
    assert_eq!(stdout(&via), "status=127\n", "{}", stderr(&via));
    let err = stderr(&via);
    let said = format!(
        "binfmt-dispatcher: /bin/echo: cannot run it: qemu-aarch64 ({QEMU_AARCH64}): not \
         found; qemu-aarch64-dynamic (/usr/bin/qemu-aarch64): not found. Install QEMU"
    );
    assert!(err.starts_with(&said), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(tree(&dir.join("root")), before, "the root was written into");
}

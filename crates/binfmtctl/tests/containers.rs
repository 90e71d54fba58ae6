//! Foreign containers and chroots (issue 15): a root that holds foreign
//! programs (Debian's arm64 and s390x busybox) and no emulator. qemu
//! registered directly with F runs them there, since the kernel opened it
//! at registration; the dispatcher registered with F must too, from the
//! interpreters bundled into it (`binfmtctl bundle`). Each case runs the
//! same script in the same root under both registrations, each in a
//! private binfmt_misc of its own, and compares the outputs byte for byte;
//! the root is never written.

mod support;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use support::*;

const S390X_MAGIC: &str =
    r"\x7fELF\x02\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x16";
const S390X_MASK: &str =
    r"\xff\xff\xff\xff\xff\xff\xff\xfc\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff";
const QEMU_S390X: &str = "/usr/bin/qemu-s390x-static";

/// The test's trampoline with qemu for aarch64 and s390x bundled, as a user
/// makes it: `binfmtctl bundle DISPATCHER --output FILE aarch64 s390x`.
fn bundled() -> &'static Path {
    static B: OnceLock<PathBuf> = OnceLock::new();
    B.get_or_init(|| {
        require_qemu();
        require_tool(QEMU_S390X, "qemu-user-static");
        let out = temp_dir("bundled").join("binfmt-dispatcher");
        let made = Command::new(BINFMTCTL)
            .args(["bundle", dispatcher(), "--output"])
            .arg(&out)
            .args(["--binfmt-misc", "/nonexistent", "aarch64", "s390x"])
            .output()
            .unwrap();
        assert!(made.status.success(), "bundle: {}", stderr(&made));
        out
    })
}

/// The two entries, aarch64 and s390x, running `aarch64` and `s390x`.
fn entries<'a>(aarch64: &'a str, s390x: &'a str, flags: &'a str) -> [Entry<'a>; 2] {
    [
        ("t-aarch64", AARCH64_MAGIC, AARCH64_MASK, aarch64, flags),
        ("t-s390x", S390X_MAGIC, S390X_MASK, s390x, flags),
    ]
}

fn direct(flags: &str) -> [Entry<'_>; 2] {
    entries(QEMU_AARCH64, QEMU_S390X, flags)
}

fn dispatched(flags: &str) -> [Entry<'_>; 2] {
    let path = bundled().to_str().unwrap();
    entries(path, path, flags)
}

/// A directory with `root`: arm64 busybox in /bin with applet links,
/// s390x busybox in /s390x, the empty /proc and /mnt a container has; and
/// the root's files as they are.
fn foreign_root(tag: &str) -> (PathBuf, Vec<(PathBuf, Vec<u8>)>) {
    let dir = temp_dir(tag);
    let root = dir.join("root");
    for (sub, busybox, applets) in [
        (
            "bin",
            busybox_arm64(),
            &[
                "sh", "echo", "cat", "env", "grep", "ls", "readlink", "seq", "tr", "umount",
            ][..],
        ),
        ("s390x", busybox_s390x(), &["sh", "echo"][..]),
    ] {
        fs::create_dir_all(root.join(sub)).unwrap();
        fs::copy(busybox, root.join(sub).join("busybox")).unwrap();
        for applet in applets {
            symlink("busybox", root.join(sub).join(applet)).unwrap();
        }
    }
    for empty in ["proc", "mnt"] {
        fs::create_dir(root.join(empty)).unwrap();
    }
    let before = tree(&root);
    (dir, before)
}

/// What the guest does, run by the guest's own sh in the root: arguments
/// with spaces and empty, argv[0], an exit status, an `sh -c` script with
/// its `$0` and arguments, stdin, the environment, `/proc/self/exe`, and
/// guest execs of another architecture's programs, both ways.
const GUEST: &str = r#"
echo "echo:[$(/bin/echo a 'b  c' '' "d")]"
echo "argv0:[$(exec -a sh /bin/sh -c 'echo "$0"')]"
/bin/sh -c 'exit 3'; echo "exit:$?"
echo "sh-c:[$(/bin/sh -c 'echo $((6 * 7)) "$0" "$#" "$@"' zero one 'two three')]"
echo "stdin:[$(printf 'in put' | /bin/cat)]"
echo "env:[$(FOO='b a r' /bin/env | /bin/grep '^FOO=')]"
echo "exe:[$(/bin/readlink /proc/self/exe)]"
echo "s390x:[$(/s390x/echo from s390x)]"
echo "back:[$(/s390x/sh -c '/bin/echo "to arm64"; echo "$0" "$1"' s390x-zero one)]"
echo "fds:[$(/bin/ls /proc/self/fd 2>&1 | /bin/tr '\n' ' ')]"
exit 7
"#;

/// Runs `script` in `dir` under `entries`, in a private binfmt_misc and
/// user, mount and pid namespaces of its own (a procfs of its own, as a
/// container runtime mounts one).
fn run(dir: &Path, entries: &[Entry<'_>], script: &str) -> Output {
    let setup = private_binfmt_script(entries, script);
    Command::new("unshare")
        .args([
            "--user",
            "--map-root-user",
            "--mount",
            "--pid",
            "--fork",
            "--mount-proc",
        ])
        .args(["sh", "-c", &setup])
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .output()
        .expect("cannot run unshare")
}

/// The outputs of `script` under qemu registered directly and under the
/// bundled dispatcher, with `flags`, in one root; asserts the root is as
/// it was after each.
fn both(tag: &str, flags: &str, script: &str) -> (Output, Output) {
    let (dir, before) = foreign_root(tag);
    let qemu = run(&dir, &direct(flags), script);
    assert_eq!(tree(&dir.join("root")), before, "qemu wrote into the root");
    let ours = run(&dir, &dispatched(flags), script);
    assert_eq!(
        tree(&dir.join("root")),
        before,
        "the dispatcher wrote into the root"
    );
    (qemu, ours)
}

/// The same bytes out, the same status (the caller then checks what the
/// guest printed, so that two equal failures do not pass).
fn assert_same(qemu: &Output, ours: &Output) {
    assert_eq!(
        stdout(ours),
        stdout(qemu),
        "stdout differs; stderr:\n{}",
        stderr(ours)
    );
    assert_eq!(stderr(ours), stderr(qemu), "stderr differs");
    assert_eq!(ours.status.code(), qemu.status.code());
}

fn expected(argv0: &str) -> String {
    format!(
        "echo:[a b  c  d]\n\
         argv0:[{argv0}]\n\
         exit:3\n\
         sh-c:[42 zero 2 one two three]\n\
         stdin:[in put]\n\
         env:[FOO=b a r]\n\
         exe:[/bin/busybox]\n\
         s390x:[from s390x]\n\
         back:[to arm64\ns390x-zero one]\n\
         status=7\n"
    )
}

/// The guest's output without its descriptor line, which the caller
/// checks apart: it depends on whether the root has a /proc.
fn without_fds(out: &Output) -> (String, String) {
    let text = stdout(out);
    let (fds, rest): (Vec<&str>, Vec<&str>) = text.lines().partition(|l| l.starts_with("fds:"));
    (
        rest.iter().map(|l| format!("{l}\n")).collect(),
        fds.concat(),
    )
}

fn in_chroot(guest: &str) -> String {
    format!(
        "chroot root /bin/sh -c {}; echo \"status=$?\"\n",
        sh_quote(guest)
    )
}

#[test]
fn a_chroot_runs_as_under_qemu_registered_directly() {
    for flags in ["POCF", "F"] {
        let (qemu, ours) = both(&format!("chroot-{flags}"), flags, &in_chroot(GUEST));
        assert_same(&qemu, &ours);
        // Without P, the kernel drops argv[0]: the guest sees the path.
        let argv0 = if flags.contains('P') { "sh" } else { "/bin/sh" };
        let (printed, fds) = without_fds(&ours);
        assert_eq!(printed, expected(argv0), "flags {flags}");
        // No /proc in the chroot: ls says so, under qemu's entry too.
        assert!(fds.contains("No such file or directory"), "{fds}");
    }
}

#[test]
fn a_pivot_rooted_namespace_runs_as_under_qemu_registered_directly() {
    // The root becomes the namespace's `/` with a procfs of its own and the
    // old root detached, as a container runtime sets it up; from there on
    // only the guest's own programs run. The private binfmt_misc is mounted
    // in the new procfs too: its entries live only as long as one of its
    // mounts, and the old root's goes with the old root.
    let guest = format!("/bin/umount -l /mnt && cd / && ( {GUEST} ); echo \"status=$?\"");
    let script = format!(
        "mount --bind root root && mount -t proc proc root/proc && \
         mount -t binfmt_misc none root/proc/sys/fs/binfmt_misc && \
         cd root && pivot_root . mnt && exec /bin/sh -c {}\n",
        sh_quote(&guest)
    );
    let (qemu, ours) = both("pivot-root", "POCF", &script);
    assert_same(&qemu, &ours);
    let (printed, fds) = without_fds(&ours);
    assert_eq!(printed, expected("sh"));
    // The guest's descriptors are listed, and are those it has under
    // qemu's entry (compared above): the trampoline leaves none behind.
    assert!(fds.starts_with("fds:[0 1 "), "{fds}");
}

#[test]
fn without_a_bundle_the_root_still_lacks_the_interpreter() {
    // The control: the same root, the plain trampoline.
    let (dir, before) = foreign_root("no-bundle");
    let plain = entries(dispatcher(), dispatcher(), "POCF");
    let out = run(&dir, &plain, &in_chroot("/bin/echo hello"));
    assert_eq!(stdout(&out), "status=127\n", "{}", stderr(&out));
    assert!(stderr(&out).contains("qemu-aarch64 (/usr/bin/qemu-aarch64-static): not found"));
    assert_eq!(tree(&dir.join("root")), before);
}

#[test]
fn a_setuid_program_in_the_root_runs_as_under_qemu_registered_directly() {
    // Ids 0..65535 mapped to themselves (run_mapped): `nobody` executing a
    // root-owned 4755 program really gains root, and the kernel gives the
    // dispatcher AT_SECURE under C. The root has the host's /proc (a
    // container has one; secure mode names the binary by its descriptor).
    let (dir, _) = foreign_root("setuid");
    let suid = dir.join("root/suid");
    fs::copy(whoami_aarch64("SUID"), &suid).unwrap();
    std::os::unix::fs::chown(&suid, Some(0), Some(0)).unwrap();
    fs::set_permissions(&suid, fs::Permissions::from_mode(0o4755)).unwrap();
    let before = tree(&dir.join("root"));
    let script = "mount --rbind /proc root/proc && \
                  chroot --userspec=65534:65534 root /suid a 'b  c' ''; echo \"status=$?\"\n";
    let bundled = bundled().to_str().unwrap();
    let entry = |interp| ("t-aarch64", AARCH64_MAGIC, AARCH64_MASK, interp, "POCF");
    let qemu = run_mapped(&dir, entry(QEMU_AARCH64), script);
    let ours = run_mapped(&dir, entry(bundled), script);
    assert_same(&qemu, &ours);
    assert_eq!(
        stdout(&ours),
        "SUID ruid=65534 euid=0 exe=/suid argv=/suid|a|b  c|\nstatus=0\n"
    );
    assert_eq!(tree(&dir.join("root")), before);
}

#[test]
fn hundreds_of_execs_in_a_row_all_run() {
    // Where the guest and qemu's heap land varies from exec to exec (ASLR);
    // a loader that left the trampoline in the guest's way failed a few in
    // a thousand. Without /proc (qemu probes for the guest's space) and
    // with it.
    let guest =
        "n=0; for i in $(/bin/seq 300); do [ \"$(/bin/echo $i)\" = $i ] && n=$((n+1)); done; \
                 echo ran=$n";
    let (dir, before) = foreign_root("loop");
    for proc in ["", "mount -t proc proc root/proc && "] {
        let script = format!("{proc}{}", in_chroot(guest));
        let out = run(&dir, &dispatched("POCF"), &script);
        assert_eq!(
            stdout(&out),
            "ran=300\nstatus=0\n",
            "{proc}: {}",
            stderr(&out)
        );
    }
    assert_eq!(tree(&dir.join("root")), before);
}

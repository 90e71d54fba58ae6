//! A private binfmt_misc: a user and mount namespace of this process's own,
//! with binfmt_misc mounted afresh on /proc/sys/fs/binfmt_misc. Since Linux
//! 6.7 each user namespace can have its own binfmt_misc instance, so what
//! is registered there is seen by this process and its children only: no
//! root needed, nothing changes on the machine. `binfmtctl run` and
//! `binfmtctl bench` work in one.
//!
//! The steps are those of `unshare --user --map-root-user --mount`:
//! unshare(CLONE_NEWUSER | CLONE_NEWNS); deny setgroups; map the caller's
//! uid and gid to root; make every mount private (nothing propagates back);
//! mount binfmt_misc. The process must still be single-threaded.

use std::fs;
use std::path::Path;

use rustix::io::Errno;
use rustix::mount::{MountFlags, MountPropagationFlags};
use rustix::thread::UnshareFlags;

use crate::binfmt_misc::{Instance, DEFAULT_DIR};

/// The first Linux with a binfmt_misc instance per user namespace.
const FIRST_LINUX: (u32, u32) = (6, 7);

/// Enters a new user and mount namespace with its own, empty binfmt_misc.
pub fn enter() -> Result<Instance, String> {
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();

    // rustix 1.1 deprecates the safe `unshare` in favour of `unshare_unsafe`
    // because of CLONE_FILES, which can leave other threads with descriptors
    // that are not theirs. CLONE_NEWUSER | CLONE_NEWNS share nothing of the
    // kind (and the kernel refuses CLONE_NEWUSER to a multithreaded process).
    #[allow(deprecated)]
    rustix::thread::unshare(UnshareFlags::NEWUSER | UnshareFlags::NEWNS)
        .map_err(|e| format!("cannot make a user namespace: {e}{}", userns_hint(e)))?;

    // Unprivileged processes must give up setgroups before mapping gids.
    match fs::write("/proc/self/setgroups", "deny") {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!(
                "/proc/self/setgroups: {e}{}",
                userns_hint(Errno::PERM)
            ))
        }
        _ => {}
    }
    fs::write("/proc/self/uid_map", format!("0 {uid} 1"))
        .map_err(|e| format!("/proc/self/uid_map: {e}{}", userns_hint(Errno::PERM)))?;
    fs::write("/proc/self/gid_map", format!("0 {gid} 1"))
        .map_err(|e| format!("/proc/self/gid_map: {e}{}", userns_hint(Errno::PERM)))?;

    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )
    .map_err(|e| format!("cannot make the mounts private: {e}{}", userns_hint(e)))?;

    let dir = Path::new(DEFAULT_DIR);
    if !dir.is_dir() {
        return Err(format!(
            "{DEFAULT_DIR} does not exist: this kernel has no binfmt_misc, or its module is \
             not loaded (modprobe binfmt_misc)"
        ));
    }
    rustix::mount::mount(
        "binfmt_misc",
        DEFAULT_DIR,
        "binfmt_misc",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        None,
    )
    .map_err(|e| format!("cannot mount a private binfmt_misc: {e}{}", mount_hint(e)))?;
    Instance::open(dir)
}

/// This kernel's (major, minor) version.
pub fn linux_version() -> Option<(u32, u32)> {
    let uname = rustix::system::uname();
    let release = uname.release().to_string_lossy();
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn read_number(path: &str) -> Option<i64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Why user namespaces may be refused here.
fn userns_hint(e: Errno) -> String {
    let mut why = Vec::new();
    if read_number("/proc/sys/kernel/unprivileged_userns_clone") == Some(0) {
        why.push(
            "unprivileged user namespaces are disabled (sysctl kernel.unprivileged_userns_clone=0)"
                .to_string(),
        );
    }
    if read_number("/proc/sys/user/max_user_namespaces") == Some(0) {
        why.push("user namespaces are disabled (sysctl user.max_user_namespaces=0)".to_string());
    }
    if read_number("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == Some(1) {
        why.push(
            "AppArmor restricts unprivileged user namespaces (sysctl \
             kernel.apparmor_restrict_unprivileged_userns=1, as on Ubuntu 23.10 and later): \
             allow them for binfmtctl with an AppArmor profile, or run as root"
                .to_string(),
        );
    }
    if why.is_empty() {
        why.push(match e {
            Errno::INVAL => "the kernel lacks user namespaces (CONFIG_USER_NS)".to_string(),
            Errno::NOSPC => {
                "the limit of user namespaces is reached (sysctl user.max_user_namespaces)"
                    .to_string()
            }
            _ => "in a container, its seccomp profile or missing privileges may forbid user \
                  namespaces (podman and docker need --security-opt seccomp=unconfined or \
                  --privileged)"
                .to_string(),
        });
    }
    format!(": {}", why.join("; "))
}

/// Why mounting binfmt_misc in a user namespace may fail.
fn mount_hint(e: Errno) -> String {
    match linux_version() {
        Some(v) if v < FIRST_LINUX => format!(
            ": Linux {}.{} has one binfmt_misc for the whole machine; a private one per user \
             namespace needs Linux {}.{} or later",
            v.0, v.1, FIRST_LINUX.0, FIRST_LINUX.1
        ),
        _ => userns_hint(e),
    }
}

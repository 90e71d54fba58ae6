//! FEX behind the dispatcher decides as under its own registration: a
//! stand-in at FEX's installed path (tests/support/fex.c) takes FEX's
//! decisions from what FEX reads (AT_EXECFD, FEX_EXECVEFD, AT_FLAGS, the
//! binfmt_misc entries FEX-x86 and FEX-x86_64) and carries out a guest's
//! `execve` as FEX does (docs/argv-conventions.md, "FEX behind the
//! dispatcher").
//!
//! binfmtctl makes FEX's names when it registers the x86 formats, which
//! this x86-64 host runs itself: binfmtctl built for arm64 registers them
//! under qemu-aarch64-static (its `uname -m` is aarch64 there), with
//! binfmt_misc off meanwhile, and the x86 entries are then disabled, since
//! they would take this host's own programs. The guests are arm64
//! binaries, the one foreign format that reaches binfmt_misc here; the
//! stand-in counts them as x86 (FEX_STANDIN_MACHINE). Needs the aarch64
//! rustup target, the cross gcc and qemu-user-static (scripts/test
//! installs them); never skipped.

mod support;

use std::process::{Command, Output, Stdio};

use support::*;

const EM_AARCH64: &str = "183";

/// Runs `script` in a private binfmt_misc where binfmtctl registered the
/// x86 formats (FEX's names with them, their own entries then disabled)
/// and aarch64, all for the dispatcher; in a directory holding the guests
/// `first` and `second`, and with /usr/bin holding only the FEX stand-in
/// as FEX. `$BM` is binfmt_misc.
fn run_behind_dispatcher(script: &str) -> Output {
    require_qemu();
    let binfmtctl_arm64 = cross_build(
        "aarch64-unknown-linux-gnu",
        "binfmtctl",
        CrossLinker::Gcc("aarch64-linux-gnu"),
    );
    let dir = temp_dir("fex");
    write_foreign(&dir.join("first"));
    write_foreign(&dir.join("second"));
    let bin = dir.join("usr-bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::copy(fex_stand_in(), bin.join("FEX")).unwrap();
    let cache = compile_cache(
        &dir,
        "fex",
        "[interpreters.fex]\npath = \"/usr/bin/FEX\"\nargv = \"fex\"\n\
         [[rules]]\narch = \"aarch64\"\ninterpreter = \"fex\"\n",
    );
    // /usr/bin replaced last: after it, only builtins and the guests run.
    let setup = format!(
        "set -e\n\
         BM=/proc/sys/fs/binfmt_misc\n\
         mount -t binfmt_misc none $BM\n\
         if [ -d /var/cache/binfmt-dispatcher ]; then mount -t tmpfs none /var/cache/binfmt-dispatcher; fi\n\
         echo 0 > $BM/status\n\
         qemu-aarch64-static -L /usr/aarch64-linux-gnu {arm64} register --arch i386,x86_64 --interpreter {disp} >&2\n\
         for e in $BM/binfmt-dispatcher-*; do echo 0 > \"$e\"; done\n\
         {ctl} register --arch aarch64 --interpreter {disp} >&2\n\
         echo 1 > $BM/status\n\
         mount --bind {bin} /usr/bin\n\
         set +e\n{script}",
        arm64 = sh_quote(binfmtctl_arm64.to_str().unwrap()),
        disp = sh_quote(dispatcher()),
        ctl = sh_quote(BINFMTCTL),
        bin = sh_quote(bin.to_str().unwrap()),
    );
    Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", &setup])
        .current_dir(&dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("BINFMT_DISPATCHER_CACHE", &cache)
        .env("FEX_STANDIN_MACHINE", EM_AARCH64)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run unshare")
}

/// The text of `out` after the line `>>> name` up to the next `>>>`.
fn section(out: &Output, name: &str) -> String {
    let text = stdout(out);
    let start = text
        .find(&format!(">>> {name}\n"))
        .unwrap_or_else(|| panic!("no section {name}:\n{text}\n{}", stderr(out)))
        + name.len()
        + 5;
    let end = text[start..].find(">>> ").map_or(text.len(), |e| start + e);
    text[start..end].to_string()
}

/// A guest that execs another with its own argv[0], `child0`.
const GUEST_EXECS: &str = "./first exec ./second child0\n";

/// What the stand-in prints when FEX leaves the guest's execve to
/// binfmt_misc: argv[0] kept on both starts.
const AS_INSTALLED: &str = "FEX installed=1 argv=./first|exec|./second|child0 euid=0\n\
                            FEX installed=1 argv=child0|child euid=0\n";

#[test]
fn fex_behind_the_dispatcher_leaves_guest_execs_to_binfmt_misc() {
    let out = run_behind_dispatcher(&format!(
        "echo '>>> binfmtctl'\n{GUEST_EXECS}\
         echo '>>> without FEX-x86_64'\n\
         echo -1 > $BM/FEX-x86_64\n{GUEST_EXECS}\
         echo '>>> FEX registered itself'\n\
         echo -1 > $BM/FEX-x86\n\
         echo -1 > $BM/binfmt-dispatcher-aarch64\n\
         printf '%s\\n' ':FEX-x86_64:M::{AARCH64_MAGIC}:{AARCH64_MASK}:/usr/bin/FEX:POCF' > $BM/register\n\
         {GUEST_EXECS}"
    ));
    let err = stderr(&out);
    assert_eq!(section(&out, "binfmtctl"), AS_INSTALLED, "{err}");
    // Because binfmtctl made FEX's names, disabled.
    assert!(
        err.contains("registered: FEX-x86, disabled")
            && err.contains("registered: FEX-x86_64, disabled"),
        "{err}"
    );
    // The control, as before binfmtctl made them: FEX runs the guest's
    // exec itself, through /proc/self/exe, and argv[0] is the path.
    assert_eq!(
        section(&out, "without FEX-x86_64"),
        "FEX installed=0 argv=./first|exec|./second|child0 euid=0\n\
         FEX installed=0 argv=./second|child euid=0\n",
        "{err}"
    );
    // FEX's own registration (POCF, FEX as the interpreter): the same.
    assert_eq!(
        section(&out, "FEX registered itself"),
        AS_INSTALLED,
        "{err}"
    );
}

//! Bad input on the real exec path, in a private binfmt_misc: malformed
//! binaries, broken caches, unusable interpreters, huge and non-UTF-8
//! argument lists, binaries run through a descriptor or deleted under the
//! dispatcher. Each case states its outcome: the exit status and either
//! silence or the one line on stderr. Every command runs under `timeout`,
//! so a hang fails its case (status 124) instead of blocking the suite,
//! and a crash shows as a status above 128.

mod support;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use support::*;

/// Seconds any one command may take.
const TIMEOUT: &str = "timeout 20";

/// What one command of a batch did.
#[derive(Debug)]
struct Run {
    status: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn report(&self) -> Report {
        parse_report(&self.stdout)
    }
}

/// Runs each of `cmds` in turn, under [`TIMEOUT`], in one private
/// binfmt_misc with the dispatcher registered with `flags`, in `dir`; the
/// environment of the shell is `env` plus PATH and HOME.
fn run_each(dir: &Path, flags: &str, cmds: &[String], env: &[(&str, &str)]) -> Vec<Run> {
    let mut script = String::new();
    for (i, cmd) in cmds.iter().enumerate() {
        script += &format!("{TIMEOUT} {cmd} > out.{i} 2> err.{i}; echo $? > rc.{i}\n");
    }
    let out = run_in_private_binfmt_in(dir, &[dispatcher_entry(flags)], &script, env);
    (0..cmds.len())
        .map(|i| {
            let read = |name: &str| {
                fs::read(dir.join(format!("{name}.{i}"))).unwrap_or_else(|e| {
                    panic!(
                        "flags {flags:?}: command {i} left no {name}: {e}\nstderr:\n{}",
                        stderr(&out)
                    )
                })
            };
            let status = String::from_utf8_lossy(&read("rc")).trim().parse().unwrap();
            Run {
                status,
                stdout: read("out"),
                stderr: String::from_utf8_lossy(&read("err")).into_owned(),
            }
        })
        .collect()
}

/// `launch -e KEY=VALUE... PATH ARGV0 ARGS...` as a shell command; `args`
/// are shell words, already quoted as needed.
fn launch(env: &[String], opts: &str, path: &str, argv0: &str, args: &str) -> String {
    let mut cmd = sh_quote(launcher().to_str().unwrap());
    if !opts.is_empty() {
        cmd += " ";
        cmd += opts;
    }
    for e in env {
        cmd += &format!(" -e {}", sh_quote(e));
    }
    format!("{cmd} {} {} {args}", sh_quote(path), sh_quote(argv0))
}

/// An interpreter section: the reporter, run as `REPORTER TAG`.
fn tagged(id: &str, tag: &str) -> String {
    format!(
        "[interpreters.{id}]\npath = \"{}\"\nargv = \"custom\"\ntemplate = [\"{{interpreter}}\", \"{tag}\"]\n",
        reporter().display()
    )
}

fn reporter_argv(tag: &str) -> Vec<String> {
    vec![reporter().display().to_string(), tag.to_string()]
}

/// The aarch64 test binary with `f` applied to its bytes.
fn variant(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = aarch64_elf();
    f(&mut b);
    b
}

/// The aarch64 test binary whose second program header is a `PT_INTERP`
/// at `off`, `size` bytes long.
fn with_interp(off: u64, size: u64) -> Vec<u8> {
    variant(|b| {
        b[56..58].copy_from_slice(&2u16.to_le_bytes()); // e_phnum
        let ph = &mut b[120..176];
        ph[0..4].copy_from_slice(&3u32.to_le_bytes()); // PT_INTERP
        ph[8..16].copy_from_slice(&off.to_le_bytes()); // p_offset
        ph[32..40].copy_from_slice(&size.to_le_bytes()); // p_filesz
    })
}

const GLIBC_INTERP: &[u8] = b"/lib/ld-linux-aarch64.so.1";

/// Each malformed binary, with the interpreter it must go to: `AARCH64`
/// when its ELF header names the machine, `GLIBC` when a well-formed
/// `PT_INTERP` matches, `OTHER` (the default) when the header is too short
/// to be recognised. None may crash, hang or warn.
fn malformed_binaries() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let elf = aarch64_elf();
    let interp_at_200 = {
        let mut b = with_interp(200, GLIBC_INTERP.len() as u64 + 1);
        b[200..200 + GLIBC_INTERP.len()].copy_from_slice(GLIBC_INTERP);
        b
    };
    vec![
        ("truncated to 20 bytes", elf[..20].to_vec(), "OTHER"),
        ("truncated to 40 bytes", elf[..40].to_vec(), "OTHER"),
        ("truncated to 64 bytes", elf[..64].to_vec(), "AARCH64"),
        (
            "e_phoff past EOF",
            variant(|b| b[32..40].copy_from_slice(&(1u64 << 40).to_le_bytes())),
            "AARCH64",
        ),
        (
            "e_phoff near 2^64",
            variant(|b| b[32..40].copy_from_slice(&(u64::MAX - 8).to_le_bytes())),
            "AARCH64",
        ),
        (
            "e_phnum 65535",
            variant(|b| b[56..58].copy_from_slice(&u16::MAX.to_le_bytes())),
            "AARCH64",
        ),
        (
            "e_phentsize 0",
            variant(|b| b[54..56].copy_from_slice(&0u16.to_le_bytes())),
            "AARCH64",
        ),
        (
            "PT_INTERP well-formed (control)",
            interp_at_200.clone(),
            "GLIBC",
        ),
        ("PT_INTERP past EOF", with_interp(1 << 33, 27), "AARCH64"),
        (
            "PT_INTERP size 2^64-1",
            with_interp(200, u64::MAX),
            "AARCH64",
        ),
        (
            "PT_INTERP without NUL, to EOF",
            {
                let mut b = interp_at_200.clone();
                b.truncate(200 + GLIBC_INTERP.len());
                b[120 + 32..120 + 40].copy_from_slice(&(GLIBC_INTERP.len() as u64).to_le_bytes());
                b
            },
            "AARCH64",
        ),
        (
            "PT_INTERP without NUL, 3.9 KiB long",
            {
                let mut b = with_interp(200, 4096 - 200);
                b[200..].fill(b'a');
                b
            },
            "AARCH64",
        ),
        (
            "magic, then 1 MiB of zeros",
            {
                let mut b = elf[..20].to_vec();
                b.resize(1 << 20, 0);
                b
            },
            "AARCH64",
        ),
        (
            "ELF header, then 64 KiB of zeros",
            {
                let mut b = elf[..64].to_vec();
                b.resize(64 << 10, 0);
                b
            },
            "AARCH64",
        ),
    ]
}

#[test]
fn malformed_binaries_never_crash_hang_or_warn() {
    let dir = temp_dir("bad-headers");
    let toml = format!(
        "[defaults]\ninterpreter = \"other\"\n{}{}{}\
         [[rules]]\narch = \"aarch64\"\ninterp = \"/lib/ld-linux-aarch64.so.*\"\ninterpreter = \"glibc\"\n\
         [[rules]]\narch = \"aarch64\"\ninterpreter = \"aarch64\"\n",
        tagged("glibc", "GLIBC"),
        tagged("aarch64", "AARCH64"),
        tagged("other", "OTHER"),
    );
    let cache = compile_cache(&dir, "config", &toml);
    let env = [format!("BINFMT_DISPATCHER_CACHE={}", cache.display())];
    let cases = malformed_binaries();
    let mut cmds = Vec::new();
    for (i, (_, bytes, _)) in cases.iter().enumerate() {
        let path = dir.join(format!("bin{i}"));
        fs::write(&path, bytes).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        cmds.push(launch(&env, "", &format!("./bin{i}"), "x", ""));
    }
    for flags in ["", "POCF"] {
        let runs = run_each(&dir, flags, &cmds, &[]);
        for ((what, _, tag), run) in cases.iter().zip(&runs) {
            assert_eq!(run.status, 0, "{what}, flags {flags:?}: {run:?}");
            assert_eq!(run.stderr, "", "{what}, flags {flags:?}");
            assert_eq!(
                run.report().argv,
                reporter_argv(tag),
                "{what}, flags {flags:?}"
            );
        }
    }
}

/// A pseudo-random byte string (xorshift), the same on every run.
fn random_bytes(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

/// Each broken cache named by `BINFMT_DISPATCHER_CACHE`, and what the one
/// warning about it says. `lazy`: the fault is found only by the lookup
/// (a data chunk's checksum), after the cache was chosen, so the built-in
/// configuration is used rather than the next cache.
fn broken_caches(valid: &[u8]) -> Vec<(&'static str, Vec<u8>, &'static str, bool)> {
    let mut wrong_version = valid.to_vec();
    wrong_version[8..12].copy_from_slice(&2u32.to_le_bytes());
    let mut bad_header = valid.to_vec();
    bad_header[30] ^= 0x40;
    let mut bad_data = valid.to_vec();
    let last = bad_data.len() - 2;
    bad_data[last] ^= 0x01;
    let mut bad_magic = valid.to_vec();
    bad_magic[0] = b'X';
    vec![
        ("empty", Vec::new(), "truncated", false),
        ("40 bytes", valid[..40].to_vec(), "truncated", false),
        (
            "half",
            valid[..valid.len() / 2].to_vec(),
            "truncated",
            false,
        ),
        (
            "one byte short",
            valid[..valid.len() - 1].to_vec(),
            "truncated",
            false,
        ),
        (
            "random",
            random_bytes(4096, 0x9e37_79b9_7f4a_7c15),
            "not a binfmt-dispatcher cache",
            false,
        ),
        (
            "bad magic",
            bad_magic,
            "not a binfmt-dispatcher cache",
            false,
        ),
        (
            "version 2",
            wrong_version,
            "written for another version",
            false,
        ),
        ("corrupt header", bad_header, "checksum mismatch", false),
        ("corrupt data", bad_data, "checksum mismatch", true),
    ]
}

#[test]
fn broken_caches_warn_once_and_fall_back() {
    require_qemu();
    let dir = temp_dir("bad-caches");
    write_foreign(&dir.join("foreign"));
    let rule = "[[rules]]\narch = \"aarch64\"\ninterpreter = \"r\"\n";
    let env_cache = compile_cache(&dir, "env", &(tagged("r", "ENV") + rule));
    let valid = fs::read(&env_cache).unwrap();
    let user = compile_cache(&dir, "user", &(tagged("r", "USER") + rule));
    fs::create_dir_all(dir.join("xdg/binfmt-dispatcher")).unwrap();
    fs::copy(
        &user,
        dir.join("xdg/binfmt-dispatcher/binfmt-dispatcher.cache"),
    )
    .unwrap();
    fs::create_dir_all(dir.join("no-xdg")).unwrap();

    let cases = broken_caches(&valid);
    let mut cmds = Vec::new();
    for (i, (_, bytes, _, _)) in cases.iter().enumerate() {
        let path = dir.join(format!("broken{i}.cache"));
        fs::write(&path, bytes).unwrap();
        for xdg in ["xdg", "no-xdg"] {
            let env = [
                format!("BINFMT_DISPATCHER_CACHE={}", path.display()),
                format!("XDG_CACHE_HOME={}", dir.join(xdg).display()),
            ];
            cmds.push(launch(&env, "", "./foreign", "x", ""));
        }
    }
    for flags in ["", "POCF"] {
        let runs = run_each(&dir, flags, &cmds, &[]);
        for (i, (what, _, reason, lazy)) in cases.iter().enumerate() {
            let name = format!("broken{i}.cache");
            for (j, with_user_cache) in [true, false].into_iter().enumerate() {
                let run = &runs[2 * i + j];
                let ctx = format!("{what} cache, user cache {with_user_cache}, flags {flags:?}");
                assert_eq!(run.stderr.lines().count(), 1, "{ctx}: one warning: {run:?}");
                assert!(run.stderr.contains(reason), "{ctx}: {}", run.stderr);
                assert!(run.stderr.contains(&name), "{ctx}: {}", run.stderr);
                if *lazy {
                    assert!(run.stderr.contains("built-in"), "{ctx}: {}", run.stderr);
                }
                if with_user_cache && !lazy {
                    // The next cache in line.
                    assert_eq!(run.status, 0, "{ctx}: {run:?}");
                    assert_eq!(run.report().argv, reporter_argv("USER"), "{ctx}");
                } else {
                    // The built-in configuration: qemu runs the binary, exit(42).
                    assert_eq!(run.status, 42, "{ctx}: {run:?}");
                    assert!(run.stdout.is_empty(), "{ctx}: {run:?}");
                }
            }
        }
    }
}

#[test]
fn unusable_interpreters_exit_127_or_126_naming_the_path() {
    let dir = temp_dir("bad-interp");
    write_foreign(&dir.join("foreign"));
    let missing = dir.join("no-such-interpreter");
    let not_exec = dir.join("not-executable");
    fs::copy(reporter(), &not_exec).unwrap();
    fs::set_permissions(&not_exec, fs::Permissions::from_mode(0o644)).unwrap();
    let directory = dir.join("a-directory");
    fs::create_dir(&directory).unwrap();
    let cases: [(&str, Vec<&Path>, i32, &str); 4] = [
        ("missing", vec![&missing], 127, "not found"),
        ("not executable", vec![&not_exec], 126, "permission denied"),
        ("a directory", vec![&directory], 126, "permission denied"),
        (
            "missing, then not executable",
            vec![&missing, &not_exec],
            126,
            "permission denied",
        ),
    ];
    let mut cmds = Vec::new();
    for (i, (_, chain, _, _)) in cases.iter().enumerate() {
        let mut toml = String::new();
        for (n, path) in chain.iter().enumerate() {
            toml += &format!(
                "[interpreters.i{n}]\npath = \"{}\"\nargv = \"plain\"\n",
                path.display()
            );
        }
        if chain.len() > 1 {
            toml = toml.replacen(
                "argv = \"plain\"\n",
                "argv = \"plain\"\nfallback = [\"i1\"]\n",
                1,
            );
        }
        toml += "[[rules]]\narch = \"aarch64\"\ninterpreter = \"i0\"\n";
        let cache = compile_cache(&dir, &format!("c{i}"), &toml);
        let env = [format!("BINFMT_DISPATCHER_CACHE={}", cache.display())];
        cmds.push(launch(&env, "", "./foreign", "x", ""));
    }
    for flags in ["", "POCF"] {
        let runs = run_each(&dir, flags, &cmds, &[]);
        for ((what, chain, status, why), run) in cases.iter().zip(&runs) {
            let ctx = format!("{what}, flags {flags:?}");
            assert_eq!(run.status, *status, "{ctx}: {run:?}");
            assert!(run.stdout.is_empty(), "{ctx}: {run:?}");
            assert_eq!(run.stderr.lines().count(), 1, "{ctx}: one line: {run:?}");
            let line = &run.stderr;
            assert!(
                line.starts_with("binfmt-dispatcher: ./foreign: "),
                "{ctx}: {line}"
            );
            for path in chain {
                assert!(
                    line.contains(path.to_str().unwrap()),
                    "{ctx}: names {path:?}: {line}"
                );
            }
            assert!(line.contains(why), "{ctx}: {line}");
        }
    }
}

/// A cache whose aarch64 rule runs the reporter with qemu's convention.
fn qemu_style_cache(dir: &Path) -> PathBuf {
    compile_cache(
        dir,
        "qemu",
        &format!(
            "[interpreters.q]\npath = \"{}\"\nargv = \"qemu\"\n[[rules]]\narch = \"aarch64\"\ninterpreter = \"q\"\n",
            reporter().display()
        ),
    )
}

#[test]
fn a_hundred_thousand_arguments_pass_through() {
    let dir = temp_dir("many-args");
    write_foreign(&dir.join("foreign"));
    let cache = qemu_style_cache(&dir);
    let env = [format!("BINFMT_DISPATCHER_CACHE={}", cache.display())];
    // 100,000 arguments of up to 6 bytes: about 1.4 MB with their
    // pointers, below the 2 MB ARG_MAX of an 8 MB stack.
    let cmd = launch(&env, "", "./foreign", "ARGV0", "$(seq 100000)");
    for flags in ["P", "POCF", ""] {
        let runs = run_each(&dir, flags, std::slice::from_ref(&cmd), &[]);
        let run = &runs[0];
        assert_eq!(run.status, 0, "flags {flags:?}: {}", run.stderr);
        assert_eq!(run.stderr, "", "flags {flags:?}");
        let argv = run.report().argv;
        let argv0 = if flags.contains('P') {
            "ARGV0"
        } else {
            "./foreign"
        };
        assert_eq!(
            argv[..4],
            [reporter().to_str().unwrap(), "-0", argv0, "./foreign"]
        );
        assert_eq!(argv.len(), 4 + 100_000, "flags {flags:?}");
        for (i, a) in argv[4..].iter().enumerate() {
            assert_eq!(a, &(i + 1).to_string(), "flags {flags:?}");
        }
    }
}

#[test]
fn non_utf8_names_and_arguments_pass_through_byte_exact() {
    let dir = temp_dir("non-utf8");
    let name = std::ffi::OsStr::from_bytes(b"f\xff\xfeoreign");
    write_foreign(&dir.join(name));
    let cache = qemu_style_cache(&dir);
    let env = [format!("BINFMT_DISPATCHER_CACHE={}", cache.display())];
    // The shell makes the bytes: printf's octal escapes.
    let cmd = format!(
        "{} -e {} \"$(printf './f\\377\\376oreign')\" \"$(printf '\\200zero')\" \
         \"$(printf '\\377\\376')\" \"$(printf 'caf\\351')\" \"$(printf 'tab\\there')\"",
        sh_quote(launcher().to_str().unwrap()),
        sh_quote(&env[0]),
    );
    for flags in ["P", "POCF", ""] {
        let run = &run_each(&dir, flags, std::slice::from_ref(&cmd), &[])[0];
        assert_eq!(run.status, 0, "flags {flags:?}: {run:?}");
        // The reporter prints bytes outside printable ASCII as \xHH.
        let text = String::from_utf8(run.stdout.clone()).unwrap();
        let argv: Vec<&str> = text.lines().filter(|l| l.starts_with("argv[")).collect();
        let argv0 = if flags.contains('P') {
            r"\x80zero"
        } else {
            r"./f\xff\xfeoreign"
        };
        assert_eq!(
            argv,
            [
                format!("argv[0]={}", reporter().display()),
                "argv[1]=-0".to_string(),
                format!("argv[2]={argv0}"),
                r"argv[3]=./f\xff\xfeoreign".to_string(),
                r"argv[4]=\xff\xfe".to_string(),
                r"argv[5]=caf\xe9".to_string(),
                r"argv[6]=tab\x09here".to_string(),
            ],
            "flags {flags:?}"
        );
    }
}

#[test]
fn fexecve_with_an_inheritable_descriptor_and_a_deleted_binary_run() {
    // The built-in configuration: qemu-aarch64-static really opens the
    // binary it is named, whatever name the dispatcher gives it.
    require_qemu();
    let dir = temp_dir("fexecve-deleted");
    write_foreign(&dir.join("foreign"));
    let mut cmds = Vec::new();
    for (i, opts) in ["-f", "-f -u"].iter().enumerate() {
        // A copy per command: -u deletes it.
        cmds.push(format!(
            "sh -c {}",
            sh_quote(&format!(
                "cp foreign copy{i} && exec {}",
                launch(&[], opts, &format!("./copy{i}"), "x", "")
            ))
        ));
    }
    for flags in ["", "P", "O", "POCF"] {
        let runs = run_each(&dir, flags, &cmds, &[]);
        for (opts, run) in ["-f", "-f -u"].iter().zip(&runs) {
            assert_eq!(run.status, 42, "launch {opts}, flags {flags:?}: {run:?}");
            assert_eq!(run.stderr, "", "launch {opts}, flags {flags:?}");
        }
    }
}

#[test]
fn binary_deleted_while_the_dispatcher_runs_is_still_run() {
    // strace holds the dispatcher at its first pread of the binary for two
    // seconds; meanwhile, as soon as the dispatcher holds the binary open
    // (binfmt_misc's descriptor, or its own), the binary is deleted. The
    // interpreter must still be able to open it: the dispatcher names it
    // /proc/self/fd/N, the descriptor left open.
    require_qemu();
    let dir = temp_dir("deleted-during");
    write_foreign(&dir.join("foreign"));
    let deleter = format!(
        "for i in $(seq 1 1500); do \
           for p in /proc/[0-9]*; do \
             [ \"$(readlink $p/exe)\" = {d} ] || continue; \
             for f in $p/fd/*; do \
               case \"$(readlink $f)\" in */victim) rm -f victim; exit 0;; esac; \
             done; \
           done; \
           sleep 0.01; \
         done 2>/dev/null; echo deleter gave up >&2",
        d = sh_quote(dispatcher())
    );
    let script = format!(
        "cp foreign victim\n\
         ( {deleter} ) &\n\
         {TIMEOUT} strace -f -qq -o /dev/null -e trace=pread64 \
           -e inject=pread64:delay_enter=2000000:when=1 ./victim\n\
         echo \"status=$?\"\n\
         wait\n\
         [ -e victim ] && echo still-there\n"
    );
    for flags in ["", "P", "O", "POCF"] {
        let out = run_in_private_binfmt_in(&dir, &[dispatcher_entry(flags)], &script, &[]);
        assert_eq!(
            stdout(&out),
            "status=42\n",
            "flags {flags:?}; stderr:\n{}",
            stderr(&out)
        );
        assert_eq!(stderr(&out), "", "flags {flags:?}");
    }
}

#[test]
fn a_user_cache_found_corrupt_by_the_lookup_is_named_in_the_warning() {
    require_qemu();
    let dir = temp_dir("bad-user-cache");
    write_foreign(&dir.join("foreign"));
    let rule = "[[rules]]\narch = \"aarch64\"\ninterpreter = \"r\"\n";
    let user = compile_cache(&dir, "user", &(tagged("r", "USER") + rule));
    // A data chunk's checksum, so the fault shows only once the lookup
    // reads it, after the cache was chosen.
    let (_, bytes, reason, lazy) = broken_caches(&fs::read(&user).unwrap())
        .into_iter()
        .find(|c| c.0 == "corrupt data")
        .unwrap();
    assert!(lazy);
    let cache = dir.join("xdg/binfmt-dispatcher/binfmt-dispatcher.cache");
    fs::create_dir_all(cache.parent().unwrap()).unwrap();
    fs::write(&cache, bytes).unwrap();
    let env = [format!("XDG_CACHE_HOME={}", dir.join("xdg").display())];
    let runs = run_each(&dir, "POCF", &[launch(&env, "", "./foreign", "x", "")], &[]);
    let run = &runs[0];
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    assert!(
        run.stderr.starts_with(&format!(
            "binfmt-dispatcher: ignoring cache {}: ",
            cache.display()
        )),
        "{run:?}"
    );
    assert!(run.stderr.contains(reason), "{run:?}");
    assert!(run.stderr.contains("built-in"), "{run:?}");
    // The built-in configuration: qemu runs the binary, exit(42).
    assert_eq!(run.status, 42, "{run:?}");
}

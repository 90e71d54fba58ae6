//! Concurrency on the real exec path: the cache recompiled (atomically
//! replaced) over and over while four shells exec foreign binaries through
//! the dispatcher. No exec may fail or warn: each sees the old cache or the
//! new one, never a torn one, and parallel execs do not disturb each other.

mod support;

use std::fs;

use support::*;

const EXECS_PER_SHELL: usize = 500;
const SHELLS: usize = 4;
const RECOMPILES: usize = 200;
/// The shells go on past [`EXECS_PER_SHELL`] until the recompiles are
/// done, so that every recompile overlaps execs, but no further than this.
const MAX_EXECS_PER_SHELL: usize = 20_000;

#[test]
fn recompiling_the_cache_never_fails_a_parallel_exec() {
    let dir = temp_dir("concurrent");
    write_foreign(&dir.join("foreign"));
    // Two configurations, both running an interpreter that exits 0; a torn
    // cache would warn, and the built-in configuration's qemu would exit 42.
    let a = dir.join("a.toml");
    let b = dir.join("b.toml");
    fs::write(
        &a,
        "[interpreters.t]\npath = \"/bin/true\"\nargv = \"plain\"\n[[rules]]\narch = \"aarch64\"\ninterpreter = \"t\"\n",
    )
    .unwrap();
    fs::write(
        &b,
        "[defaults]\ninterpreter = \"u\"\n[interpreters.u]\npath = \"/usr/bin/true\"\nargv = \"plain\"\nenv = { X = \"1\" }\n\
         [binaries.foreign]\npath = \"/nonexistent/foreign\"\ninterpreter = \"u\"\n",
    )
    .unwrap();
    let cache = dir.join("live.cache");
    let compile = |src: &std::path::Path| {
        format!(
            "{} compile --output {} {}",
            sh_quote(BINFMTCTL),
            sh_quote(cache.to_str().unwrap()),
            sh_quote(src.to_str().unwrap())
        )
    };
    let script = format!(
        "{first} || exit 3\n\
         ( n=0; while [ $n -lt {half} ]; do \
             {ca} || echo compile-a-failed; {cb} || echo compile-b-failed; n=$((n+1)); \
           done; echo compiles-done; touch compiles.done ) > compiles.log 2>&1 &\n\
         for s in $(seq {SHELLS}); do \
           ( f=0; i=0; while [ $i -lt {EXECS_PER_SHELL} ] || \
               {{ [ ! -e compiles.done ] && [ $i -lt {MAX_EXECS_PER_SHELL} ]; }}; do \
               ./foreign x || f=$((f+1)); i=$((i+1)); \
             done; echo \"failures=$f\"; echo $i > shell.$s.count ) > shell.$s 2> shell.$s.err & \
         done\n\
         wait\n",
        first = compile(&a),
        half = RECOMPILES / 2,
        ca = compile(&a),
        cb = compile(&b),
    );
    let out = run_in_private_binfmt_in(
        &dir,
        &[dispatcher_entry("POCF")],
        &format!("timeout 600 sh -c {}", sh_quote(&script)),
        &[("BINFMT_DISPATCHER_CACHE", cache.to_str().unwrap())],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        fs::read_to_string(dir.join("compiles.log")).unwrap(),
        "compiles-done\n",
        "every recompile succeeds"
    );
    for s in 1..=SHELLS {
        let report = fs::read_to_string(dir.join(format!("shell.{s}"))).unwrap();
        let err = fs::read_to_string(dir.join(format!("shell.{s}.err"))).unwrap();
        assert_eq!(report, "failures=0\n", "shell {s}; stderr:\n{err}");
        assert_eq!(err, "", "shell {s}: no warning");
        let count: usize = fs::read_to_string(dir.join(format!("shell.{s}.count")))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(count >= EXECS_PER_SHELL, "shell {s} ran {count} execs");
    }
}

//! Java on the real exec path, with the real JDK: classes compiled with
//! javac (the default package, `com/x/Main` in a package, one that needs
//! `CLASSPATH` for a helper class in another directory, one reached
//! through a symlink, one in a directory with a space) and an executable
//! JAR built with `jar`, each printing its class, argv, class path and the
//! descriptors it has open on the test's files. Each runs through the
//! dispatcher registered as `binfmtctl register --arch java,jar` does, in
//! a private binfmt_misc, and must print what `java` run by hand prints
//! and what the kernel's documented wrapper approach
//! (Documentation/admin-guide/java.rst) prints; `binfmtctl explain`
//! predicts the argv. Class files java cannot be given fail with one line
//! and exit 126.

mod support;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use support::*;

/// A class that prints what it was given and the descriptors it holds on
/// files below `$WATCH` (the test's directory); with `helper`, also what
/// a class found only through `CLASSPATH` says.
fn source(package: Option<&str>, class: &str, helper: bool) -> String {
    let package = package.map_or(String::new(), |p| format!("package {p};\n"));
    let helper = if helper {
        "out.append(\"helper \").append(helper.Helper.greet()).append('\\n');"
    } else {
        ""
    };
    format!(
        r#"{package}
public class {class} {{
    public static void main(String[] args) throws Exception {{
        StringBuilder out = new StringBuilder();
        out.append("class ").append({class}.class.getName()).append('\n');
        for (String a : args) out.append("arg ").append(a).append('\n');
        out.append("cp ").append(System.getProperty("java.class.path")).append('\n');
        {helper}
        String watch = System.getenv("WATCH");
        java.util.List<String> open = new java.util.ArrayList<>();
        for (java.io.File fd : new java.io.File("/proc/self/fd").listFiles()) {{
            try {{
                String target = java.nio.file.Files.readSymbolicLink(fd.toPath()).toString();
                if (target.startsWith(watch)) open.add(target);
            }} catch (java.io.IOException gone) {{}}
        }}
        java.util.Collections.sort(open);
        for (String t : open) out.append("fd ").append(t).append('\n');
        System.out.print(out);
    }}
}}
"#
    )
}

/// Runs `tool args` in `cwd`, which must succeed.
fn tool(cwd: &Path, tool: &str, args: &[&str]) {
    let out = Command::new(tool)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{tool}: {e}: install a JDK (default-jdk-headless; these tests are never skipped)"
            )
        });
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Compiles `source` (`src/NAME.java`) into `out` with `cp`.
fn javac(dir: &Path, name: &str, text: &str, out: &str, cp: &str) {
    let file = dir.join("src").join(format!("{name}.java"));
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    fs::write(&file, text).unwrap();
    tool(
        dir,
        "javac",
        &["-cp", cp, "-d", out, file.to_str().unwrap()],
    );
}

fn make_executable(path: &Path) {
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// The programs, compiled once into a directory the tests share (and
/// only read).
fn programs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = fs::canonicalize(temp_dir("java")).unwrap();
        build(&dir);
        dir
    })
}

/// The programs, compiled into `dir`.
fn build(dir: &Path) {
    javac(dir, "Hello", &source(None, "Hello", false), "app", ".");
    javac(
        dir,
        "Main",
        &source(Some("com.x"), "Main", false),
        "proj",
        ".",
    );
    let greet = "package helper;\npublic class Helper { public static String greet() { return \"from lib\"; } }\n";
    javac(dir, "Helper", greet, "lib", ".");
    javac(dir, "Needs", &source(None, "Needs", true), "app2", "lib");
    javac(
        dir,
        "Spaced",
        &source(None, "Spaced", false),
        "with space",
        ".",
    );
    javac(dir, "Colon", &source(None, "Colon", false), "a:b", ".");
    javac(
        dir,
        "Jarred",
        &source(None, "Jarred", false),
        "classes",
        ".",
    );
    tool(
        dir,
        "jar",
        &[
            "--create",
            "--file",
            "app.jar",
            "--main-class",
            "Jarred",
            "-C",
            "classes",
            ".",
        ],
    );
    fs::create_dir_all(dir.join("bin")).unwrap();
    symlink("../app/Hello.class", dir.join("bin/hello")).unwrap();
    // Not where its package says; and a constant pool cut short.
    fs::copy(dir.join("proj/com/x/Main.class"), dir.join("Main.class")).unwrap();
    let whole = fs::read(dir.join("app/Hello.class")).unwrap();
    fs::write(dir.join("Cut.class"), &whole[..40]).unwrap();
    for f in [
        "app/Hello.class",
        "proj/com/x/Main.class",
        "app2/Needs.class",
        "with space/Spaced.class",
        "a:b/Colon.class",
        "app.jar",
        "Main.class",
        "Cut.class",
    ] {
        make_executable(&dir.join(f));
    }
}

/// The kernel's documented wrapper approach, written for sh: the class's
/// name from the file (javap, which wants a `.class` name, standing in for
/// javaclassname), the class path
/// root from its directory as given, then as resolved, following the file's
/// symlinks; `CLASSPATH` with the root first; `java CLASS ARGS`.
const JAVAWRAPPER: &str = r#"#!/bin/sh
class=$1; shift
fq=$(javap "$(readlink -f "$class")" | sed -n 's/.*class \([^ {]*\).*/\1/p' | head -n 1)
name=${fq##*.}
pkg=
case $fq in *.*) pkg=$(printf %s "${fq%.*}" | tr . /) ;; esac
base=
for level in 0 1 2 3 4 5; do
    if [ "$(basename "$class" .class)" = "$name" ]; then
        for mode in -L -P; do
            dir=$(cd $mode "$(dirname "$class")" && pwd)
            if [ -z "$pkg" ]; then base=$dir; break 2; fi
            case $dir in */"$pkg") base=${dir%/"$pkg"}; break 2 ;; esac
        done
    fi
    [ -L "$class" ] || break
    target=$(readlink "$class")
    case $target in /*) class=$target ;; *) class=$(dirname "$class")/$target ;; esac
done
[ -n "$base" ] || { echo "$fq should be in a file called ${pkg:+$pkg/}$name.class" >&2; exit 1; }
export CLASSPATH="$base${CLASSPATH:+:$CLASSPATH}"
exec java "$fq" "$@"
"#;

const JARWRAPPER: &str = "#!/bin/sh\njar=$1; shift\nexec java -jar \"$jar\" \"$@\"\n";

/// One program run three ways.
struct Case {
    /// What the shell runs (relative to the test's directory).
    command: &'static str,
    /// `java` run by hand, the same program.
    by_hand: &'static str,
    /// Environment for all three.
    env: &'static str,
}

const CASES: &[Case] = &[
    Case {
        command: "./app/Hello.class a 'b c' ''",
        by_hand: "java -cp \"$D/app\" Hello a 'b c' ''",
        env: "",
    },
    Case {
        command: "./proj/com/x/Main.class -version --x",
        by_hand: "java -cp \"$D/proj\" com.x.Main -version --x",
        env: "",
    },
    Case {
        command: "\"$D/proj/com/x/Main.class\" abs",
        by_hand: "java -cp \"$D/proj\" com.x.Main abs",
        env: "",
    },
    Case {
        command: "./app2/Needs.class x",
        by_hand: "java -cp \"$D/app2:$D/lib\" Needs x",
        env: "CLASSPATH=\"$D/lib\"",
    },
    Case {
        command: "./bin/hello linked",
        by_hand: "java -cp \"$D/app\" Hello linked",
        env: "",
    },
    Case {
        command: "'./with space/Spaced.class' s",
        by_hand: "java -cp \"$D/with space\" Spaced s",
        env: "",
    },
    Case {
        command: "./app.jar j 'k l'",
        by_hand: "java -jar ./app.jar j 'k l'",
        env: "",
    },
];

/// Runs `script` in a private binfmt_misc in `dir`, with `$D` the
/// directory, `$CTL` binfmtctl, `$DISP` the dispatcher, `$WATCH` the
/// directory for the programs.
fn run(dir: &Path, script: &str) -> std::process::Output {
    let d = dir.to_str().unwrap();
    run_in_private_binfmt_in(
        dir,
        &[],
        &format!("D={}\n{script}", sh_quote(d)),
        &[("CTL", BINFMTCTL), ("DISP", dispatcher()), ("WATCH", d)],
    )
}

/// Every case's stdout, in order: `== N` then what it printed, then `rc`.
fn sections(text: &str) -> Vec<String> {
    text.split("== case\n")
        .skip(1)
        .map(str::to_string)
        .collect()
}

fn each_case(run_it: impl Fn(&Case) -> String) -> String {
    CASES
        .iter()
        .map(|c| format!("echo '== case'\n{}\necho \"rc $?\"\n", run_it(c)))
        .collect()
}

#[test]
fn classes_and_jars_run_as_by_hand_and_as_the_kernels_wrapper_runs_them() {
    let dir = programs();
    fs::write(dir.join("javawrapper"), JAVAWRAPPER).unwrap();
    fs::write(dir.join("jarwrapper"), JARWRAPPER).unwrap();
    make_executable(&dir.join("javawrapper"));
    make_executable(&dir.join("jarwrapper"));

    let with_env = |c: &Case, cmd: &str| match c.env {
        "" => cmd.to_string(),
        env => format!("env {env} {cmd}"),
    };
    let dispatched = run(
        dir,
        &format!(
            "\"$CTL\" register --arch java,jar --interpreter \"$DISP\" >/dev/null || exit 9\n{}",
            each_case(|c| with_env(c, c.command))
        ),
    );
    let by_hand = run(dir, &each_case(|c| with_env(c, c.by_hand)));
    let wrapped = run(
        dir,
        &format!(
            "printf '%s\\n' ':kjava:M::\\xca\\xfe\\xba\\xbe::'\"$D\"'/javawrapper:' \
             ':kjar:E::jar::'\"$D\"'/jarwrapper:' | while read -r l; do \
             printf '%s\\n' \"$l\" > /proc/sys/fs/binfmt_misc/register || exit 9; done\n{}",
            each_case(|c| with_env(c, c.command))
        ),
    );
    for out in [&dispatched, &by_hand, &wrapped] {
        assert!(out.status.success(), "{}", stderr(out));
    }
    let (ours, hand, kernel) = (
        sections(&stdout(&dispatched)),
        sections(&stdout(&by_hand)),
        sections(&stdout(&wrapped)),
    );
    assert_eq!(ours.len(), CASES.len(), "{}", stderr(&dispatched));
    for (i, case) in CASES.iter().enumerate() {
        let at = format!("{}\nstderr: {}", case.command, stderr(&dispatched));
        assert!(ours[i].ends_with("rc 0\n"), "{at}\n{}", ours[i]);
        assert!(ours[i].contains("\ncp "), "{at}\n{}", ours[i]);
        assert_eq!(ours[i], hand[i], "{at}: through the dispatcher vs by hand");
        assert_eq!(ours[i], kernel[i], "{at}: vs the kernel's wrapper");
        // No descriptor on the program left in the JVM: a class file none,
        // a JAR the one the JVM opens itself.
        let fds = ours[i].lines().filter(|l| l.starts_with("fd ")).count();
        let jar = case.command.contains(".jar");
        assert_eq!(fds, usize::from(jar), "{at}\n{}", ours[i]);
    }
    assert!(ours[1].contains("class com.x.Main\narg -version\narg --x\n"));
    assert!(ours[3].contains("helper from lib\n"), "{}", ours[3]);
    let dir_text = dir.to_str().unwrap();
    assert!(
        ours[4].contains(&format!("cp {dir_text}/app\n")),
        "{}",
        ours[4]
    );
    assert!(ours[6].contains("class Jarred\narg j\narg k l\ncp ./app.jar\n"));
}

#[test]
fn explain_shows_the_class_path_and_the_jar() {
    let dir = programs();
    let d = dir.to_str().unwrap();
    for (file, env, want) in [
        (
            "./proj/com/x/Main.class",
            None,
            vec!["-cp".to_string(), format!("{d}/proj"), "com.x.Main".into()],
        ),
        (
            "./bin/hello",
            Some(format!("{d}/lib:/x")),
            vec!["-cp".into(), format!("{d}/app:{d}/lib:/x"), "Hello".into()],
        ),
        ("./app.jar", None, vec!["-jar".into(), "./app.jar".into()]),
    ] {
        let mut cmd = Command::new(BINFMTCTL);
        cmd.args(["explain", "--json", "--", file, "z"])
            .current_dir(dir)
            .env("HOME", dir)
            .env_remove("XDG_CACHE_HOME")
            .env_remove("CLASSPATH")
            .env_remove("BINFMT_DISPATCHER_CACHE");
        if let Some(cp) = &env {
            cmd.env("CLASSPATH", cp);
        }
        let out = cmd.output().unwrap();
        let json: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{file}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
        let argv: Vec<&str> = json["argv"]
            .as_array()
            .unwrap_or_else(|| panic!("{file}: no argv: {json:#}"))
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(argv[1..argv.len() - 1], want, "{file}: {json:#}");
        assert_eq!(argv.last(), Some(&"z"));
    }
}

#[test]
fn class_files_java_cannot_take_fail_with_one_line_and_126() {
    let dir = programs();
    let out = run(
        dir,
        "\"$CTL\" register --arch java --interpreter \"$DISP\" >/dev/null || exit 9\n\
         for f in ./a:b/Colon.class ./Main.class ./Cut.class; do\n\
         echo \"== $f\"; \"$f\" 2>&1; echo \"rc $?\"; done\n",
    );
    let text = stdout(&out);
    for (file, why) in [
        ("./a:b/Colon.class", "its class path root holds a ':'"),
        (
            "./Main.class",
            "the class is not in a file its package and name call for",
        ),
        (
            "./Cut.class",
            "not a valid class file: it ends inside its constant pool",
        ),
    ] {
        let section = text
            .split(&format!("== {file}\n"))
            .nth(1)
            .and_then(|s| s.split("== ").next())
            .unwrap_or_else(|| panic!("{file}: {text}\n{}", stderr(&out)));
        let lines: Vec<&str> = section.lines().collect();
        assert_eq!(
            lines.len(),
            2,
            "{file}: one line, then the status: {section}"
        );
        let line = format!("binfmt-dispatcher: {file}: cannot run it: java (/usr/bin/java): {why}");
        assert!(lines[0].starts_with(&line), "{file}: {section}");
        assert!(
            !lines[0].contains("Install"),
            "the runtime is there: {section}"
        );
        assert_eq!(lines[1], "rc 126", "{file}: {section}");
    }
}

//! The no_std core end to end without a kernel: TOML -> blob -> decide ->
//! walk -> argv, with a fake `System`.

use std::collections::HashSet;
use std::ffi::CString;

use binfmt_dispatcher_config::{compile, Config};
use binfmt_dispatcher_core::blob::{self, Blob, BlobError};
use binfmt_dispatcher_core::decide::{
    self, Candidate, Failure, NothingRan, Reason, Subject, System,
};
use binfmt_dispatcher_core::launch::{
    self, ArgvStyle, Buffers, BuildError, Guest, JavaClass, Strings,
};
use binfmt_dispatcher_core::probe::{self, Facts, Format};

fn blob_of(toml: &str) -> Vec<u8> {
    compile(&Config::parse("test.toml", toml).expect("parses")).expect("compiles")
}

fn elf_facts(machine: u16, class: u8, endian: u8) -> Facts<'static> {
    Facts {
        format: Format::Elf,
        class,
        endian,
        osabi: 0,
        kind: 2,
        machine,
        flags: 0,
        interp: None,
        ..Facts::UNKNOWN
    }
}

const AARCH64: Facts<'static> = Facts {
    format: Format::Elf,
    class: probe::ELFCLASS64,
    endian: probe::ELFDATA2LSB,
    osabi: 0,
    kind: 2,
    machine: 183,
    flags: 0,
    interp: Some(b"/lib/ld-linux-aarch64.so.1"),
    ..Facts::UNKNOWN
};

/// Strings owned by the test.
struct Owned(Vec<CString>);

impl Owned {
    fn new(items: &[&str]) -> Owned {
        Owned(items.iter().map(|s| CString::new(*s).unwrap()).collect())
    }
}

impl Strings for Owned {
    fn count(&self) -> usize {
        self.0.len()
    }
    fn ptr(&self, i: usize) -> *const u8 {
        self.0[i].as_ptr().cast()
    }
    fn bytes(&self, i: usize) -> &[u8] {
        self.0[i].as_bytes()
    }
    fn with_nul(&self, i: usize) -> &[u8] {
        self.0[i].as_bytes_with_nul()
    }
}

/// A world where only `present` paths exist and `broken` ones fail to run.
#[derive(Default)]
struct Fake {
    present: HashSet<Vec<u8>>,
    broken: HashSet<Vec<u8>>,
    /// The errno `broken` paths fail with (EACCES when 0).
    errno: i32,
    ran: Vec<String>,
    failed: Vec<(String, Failure<'static>)>,
}

impl Fake {
    fn with(present: &[&str]) -> Fake {
        Fake {
            present: present.iter().map(|p| p.as_bytes().to_vec()).collect(),
            ..Fake::default()
        }
    }
}

fn bare(c: &[u8]) -> String {
    String::from_utf8_lossy(c.strip_suffix(&[0]).unwrap_or(c)).into_owned()
}

impl System for Fake {
    fn exists(&mut self, path: &[u8]) -> bool {
        self.present.contains(bare(path).as_bytes())
    }
    fn run(&mut self, c: &Candidate<'_>) -> Result<(), Failure<'static>> {
        let path = bare(c.muvm.unwrap_or(c.path));
        if self.broken.contains(path.as_bytes()) {
            return Err(Failure::NotExecutable(if self.errno == 0 {
                13
            } else {
                self.errno
            }));
        }
        if !self.present.contains(path.as_bytes()) {
            return Err(Failure::Missing);
        }
        self.ran.push(path);
        Ok(())
    }
    fn failed(&mut self, c: &Candidate<'_>, f: Failure<'_>) {
        let stored = match f {
            Failure::RequiredPathMissing(_) => Failure::RequiredPathMissing(b""),
            Failure::Missing => Failure::Missing,
            Failure::NotExecutable(e) => Failure::NotExecutable(e),
            Failure::NoSafeName => Failure::NoSafeName,
            Failure::Java(why) => Failure::Java(why),
        };
        self.failed.push((bare(c.path), stored));
    }
}

const CHAIN: &str = r#"
[muvm]
path = "/usr/bin/muvm"

[interpreters.fex]
path = "/usr/bin/FEXInterpreter"
fallback = ["box64", "qemu"]
use_muvm = true

[interpreters.box64]
path = "/usr/bin/box64"
required_paths = ["/usr/lib/box64-x86_64-linux-gnu"]
fallback = ["box64-local"]

[interpreters.box64-local]
path = "/usr/local/bin/box64"

[interpreters.qemu]
path = "/usr/bin/qemu-x86_64-static"
fallback = ["fex"]

[interpreters.qemu-arm]
path = "/usr/bin/qemu-aarch64-static"

[[rules]]
arch = "x86_64"
interpreter = "fex"

[[rules]]
path = "/opt/games/**"
interpreter = "box64"

[[rules]]
machine = "aarch64"
interp = "/lib/ld-linux-*"
interpreter = "qemu-arm"
"#;

fn walk(
    blob: &Blob<'_>,
    facts: Facts<'_>,
    paths: &[&[u8]],
    world: &mut Fake,
    page: usize,
) -> Result<(), NothingRan> {
    let plan = decide::decide(blob, &Subject { facts, paths }, None)
        .unwrap()
        .expect("a plan");
    decide::walk(blob, &plan, page, world).unwrap()
}

#[test]
fn fallback_chain_is_flattened_in_order_and_deduplicated() {
    let bytes = blob_of(CHAIN);
    let blob = Blob::open(&bytes).unwrap();
    let x86 = elf_facts(62, probe::ELFCLASS64, probe::ELFDATA2LSB);
    let mut nothing = Fake::with(&[]);
    assert_eq!(
        walk(&blob, x86, &[], &mut nothing, 4096),
        Err(NothingRan::NotFound)
    );
    let tried: Vec<&str> = nothing.failed.iter().map(|(p, _)| p.as_str()).collect();
    // fex -> box64 (its required path is missing) -> box64-local -> qemu;
    // qemu's fallback to fex is a cycle and is not tried twice.
    assert_eq!(
        tried,
        [
            "/usr/bin/FEXInterpreter",
            "/usr/bin/box64",
            "/usr/local/bin/box64",
            "/usr/bin/qemu-x86_64-static"
        ]
    );
    assert_eq!(nothing.failed[1].1, Failure::RequiredPathMissing(b""));

    let mut some = Fake::with(&["/usr/bin/box64", "/usr/bin/qemu-x86_64-static"]);
    walk(&blob, x86, &[], &mut some, 4096).unwrap();
    assert_eq!(
        some.ran,
        ["/usr/bin/qemu-x86_64-static"],
        "box64 lacks its required path"
    );

    let mut all = Fake::with(&["/usr/bin/box64", "/usr/lib/box64-x86_64-linux-gnu"]);
    walk(&blob, x86, &[], &mut all, 4096).unwrap();
    assert_eq!(all.ran, ["/usr/bin/box64"]);
}

#[test]
fn broken_interpreter_gives_126_missing_gives_127() {
    let bytes = blob_of(CHAIN);
    let blob = Blob::open(&bytes).unwrap();
    let x86 = elf_facts(62, probe::ELFCLASS64, probe::ELFDATA2LSB);
    let mut world = Fake::with(&["/usr/bin/FEXInterpreter"]);
    world.broken.insert(b"/usr/bin/FEXInterpreter".to_vec());
    let outcome = walk(&blob, x86, &[], &mut world, 4096);
    assert_eq!(outcome, Err(NothingRan::CannotExecute));
    assert_eq!(outcome.unwrap_err().exit_code(), 126);
    assert_eq!(NothingRan::NotFound.exit_code(), 127);
}

#[test]
fn muvm_wraps_only_off_4k_pages() {
    let bytes = blob_of(CHAIN);
    let blob = Blob::open(&bytes).unwrap();
    let x86 = elf_facts(62, probe::ELFCLASS64, probe::ELFDATA2LSB);
    let mut world = Fake::with(&["/usr/bin/FEXInterpreter", "/usr/bin/muvm"]);
    walk(&blob, x86, &[], &mut world, 16384).unwrap();
    assert_eq!(world.ran, ["/usr/bin/muvm"]);
    let mut world = Fake::with(&["/usr/bin/FEXInterpreter", "/usr/bin/muvm"]);
    walk(&blob, x86, &[], &mut world, 4096).unwrap();
    assert_eq!(world.ran, ["/usr/bin/FEXInterpreter"]);
}

#[test]
fn rules_in_order_path_globs_and_pt_interp() {
    let bytes = blob_of(CHAIN);
    let blob = Blob::open(&bytes).unwrap();
    let x86 = elf_facts(62, probe::ELFCLASS64, probe::ELFDATA2LSB);
    let decide = |facts, paths: &[&[u8]]| {
        decide::decide(&blob, &Subject { facts, paths }, None)
            .unwrap()
            .map(|p| (p.reason, p.interpreter))
    };
    // The arch rule comes first, so the games rule never sees x86-64.
    assert_eq!(
        decide(x86, &[b"/opt/games/a/b"]).unwrap().0,
        Reason::Rule(0)
    );
    let i386 = elf_facts(3, probe::ELFCLASS32, probe::ELFDATA2LSB);
    assert_eq!(
        decide(i386, &[b"/opt/games/a/b"]).unwrap().0,
        Reason::Rule(1)
    );
    assert_eq!(decide(i386, &[b"/opt/other"]), None);
    assert_eq!(decide(AARCH64, &[]).unwrap().0, Reason::Rule(2));
    let static_arm = Facts {
        interp: None,
        ..AARCH64
    };
    assert_eq!(
        decide(static_arm, &[]),
        None,
        "interp glob needs a PT_INTERP"
    );
    assert_eq!(
        decide(Facts::UNKNOWN, &[b"/opt/games/x"]).unwrap().0,
        Reason::Rule(1)
    );
}

#[test]
fn overrides_beat_rules_and_env_beats_all() {
    let toml = format!(
        "{CHAIN}\n[binaries.special]\npath = \"/usr/bin/special\"\ninterpreter = \"box64\"\n\n[defaults]\ninterpreter = \"qemu\"\n"
    );
    let bytes = blob_of(&toml);
    let blob = Blob::open(&bytes).unwrap();
    assert_ne!(blob.flags() & blob::Flags::PATH_MATCHERS, 0);
    let x86 = elf_facts(62, probe::ELFCLASS64, probe::ELFDATA2LSB);
    let subject = Subject {
        facts: x86,
        paths: &[b"/usr/bin/special"],
    };
    let plan = decide::decide(&blob, &subject, None).unwrap().unwrap();
    assert_eq!(plan.reason, Reason::Binary(b"/usr/bin/special"));
    let box64 = decide::interpreter_by_id(&blob, b"box64").unwrap().unwrap();
    assert_eq!(plan.interpreter, box64);
    let plan = decide::decide(&blob, &subject, Some(b"qemu"))
        .unwrap()
        .unwrap();
    assert_eq!(plan.reason, Reason::Environment);
    // An unknown ID in the environment is ignored.
    let plan = decide::decide(&blob, &subject, Some(b"nope"))
        .unwrap()
        .unwrap();
    assert_eq!(plan.reason, Reason::Binary(b"/usr/bin/special"));
    // Nothing matches a PE file but the default.
    let plan = decide::decide(
        &blob,
        &Subject {
            facts: Facts::UNKNOWN,
            paths: &[],
        },
        None,
    )
    .unwrap()
    .unwrap();
    assert_eq!(plan.reason, Reason::Default);
}

#[test]
fn ten_thousand_overrides_are_found_by_hash() {
    let mut toml =
        String::from("[interpreters.a]\npath = \"/a\"\n[interpreters.b]\npath = \"/b\"\n");
    for i in 0..10_000 {
        let id = if i % 2 == 0 { "a" } else { "b" };
        toml.push_str(&format!(
            "[binaries.x{i}]\npath = \"/games/{i}/bin\"\ninterpreter = \"{id}\"\n"
        ));
    }
    let bytes = blob_of(&toml);
    let blob = Blob::open(&bytes).unwrap();
    let a = decide::interpreter_by_id(&blob, b"a").unwrap().unwrap();
    let b = decide::interpreter_by_id(&blob, b"b").unwrap().unwrap();
    for i in [0, 1, 4_999, 9_998, 9_999] {
        let path = format!("/games/{i}/bin");
        let subject = Subject {
            facts: Facts::UNKNOWN,
            paths: &[path.as_bytes()],
        };
        let plan = decide::decide(&blob, &subject, None).unwrap().unwrap();
        assert_eq!(plan.interpreter, if i % 2 == 0 { a } else { b }, "{path}");
    }
    let subject = Subject {
        facts: Facts::UNKNOWN,
        paths: &[b"/games/10000/bin"],
    };
    assert_eq!(decide::decide(&blob, &subject, None).unwrap(), None);
}

#[test]
fn every_byte_of_a_blob_is_covered_by_a_checksum() {
    let bytes = blob_of(CHAIN);
    let x86 = elf_facts(62, probe::ELFCLASS64, probe::ELFDATA2LSB);
    for i in 8..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x40;
        let Ok(blob) = Blob::open(&bad) else { continue };
        // A flipped byte the header check missed must be caught when read:
        // every decision either errs or reads none of the corrupted chunk.
        let result = (|| -> Result<(), BlobError> {
            for facts in [x86, AARCH64, Facts::UNKNOWN] {
                let paths: &[&[u8]] = &[b"/opt/games/x"];
                if let Some(plan) = decide::decide(&blob, &Subject { facts, paths }, None)? {
                    let _ = decide::walk(&blob, &plan, 4096, &mut Fake::with(&[]))?;
                }
            }
            // Touch every byte.
            blob.bytes(0, bad.len() as u32)?;
            Ok(())
        })();
        assert_eq!(
            result,
            Err(BlobError::Checksum),
            "flipped byte {i} went unnoticed"
        );
    }
}

#[test]
fn truncated_and_foreign_blobs_are_rejected() {
    let bytes = blob_of(CHAIN);
    for len in [0, 10, 95, 96, bytes.len() - 1] {
        assert!(Blob::open(&bytes[..len]).is_err(), "len {len}");
    }
    let mut other = bytes.clone();
    other[8] = 99;
    assert_eq!(Blob::open(&other).err(), Some(BlobError::Version));
    let mut bad = bytes.clone();
    bad[0] = b'X';
    assert_eq!(Blob::open(&bad).err(), Some(BlobError::BadMagic));
}

#[test]
fn compile_is_deterministic() {
    assert_eq!(blob_of(CHAIN), blob_of(CHAIN));
}

/// Builds the argv and envp for `id`, as strings.
fn argv_for(toml: &str, id: &str, guest_argv0: &str, env: &[&str]) -> (Vec<String>, Vec<String>) {
    let guest = GuestOf {
        binary: "/bin/foreign",
        by_descriptor: false,
        secure: false,
    };
    argv_for_binary(toml, id, &guest, guest_argv0, env).expect("builds")
}

/// How the guest of [`argv_for_binary`] is named, and whether the exec is
/// secure.
struct GuestOf<'a> {
    binary: &'a str,
    by_descriptor: bool,
    secure: bool,
}

/// [`argv_for`] for the guest `g`.
fn argv_for_binary(
    toml: &str,
    id: &str,
    g: &GuestOf<'_>,
    guest_argv0: &str,
    env: &[&str],
) -> Result<(Vec<String>, Vec<String>), BuildError> {
    let bytes = blob_of(toml);
    let blob = Blob::open(&bytes).unwrap();
    let index = decide::interpreter_by_id(&blob, id.as_bytes())
        .unwrap()
        .unwrap();
    let interpreter = blob.interpreter(index).unwrap();
    let candidate = Candidate {
        interpreter,
        path: interpreter.path().unwrap().with_nul(),
        muvm: None,
    };
    // The kernel's argv with P: dispatcher, filename, argv0, args.
    let args = Owned::new(&[
        "/usr/bin/binfmt-dispatcher",
        g.binary,
        guest_argv0,
        "a",
        "",
        "b c",
    ]);
    let argv0 = CString::new(guest_argv0).unwrap();
    let binary = CString::new(g.binary).unwrap();
    let env = Owned::new(env);
    let guest = Guest {
        binary: binary.as_bytes_with_nul(),
        argv0: argv0.as_bytes_with_nul(),
        args: &args,
        first_arg: 3,
        execfd: Some(3),
        by_descriptor: g.by_descriptor,
        secure: g.secure,
        java_class: None,
    };
    let (mut argv, mut envp, mut arena) = ([std::ptr::null(); 2], [std::ptr::null(); 2], [0u8; 4]);
    let mut small = Buffers {
        argv: &mut argv,
        envp: &mut envp,
        arena: &mut arena,
    };
    let sizes = match launch::build(&candidate, &guest, Some(&env), &mut small) {
        Err(BuildError::TooSmall(sizes)) => sizes,
        Err(e) => return Err(e),
        Ok(_) => panic!("tiny buffers must be reported too small"),
    };
    let mut argv = vec![std::ptr::null(); sizes.argv];
    let mut envp = vec![std::ptr::null(); sizes.envp];
    let mut arena = vec![0u8; sizes.arena];
    let mut out = Buffers {
        argv: &mut argv,
        envp: &mut envp,
        arena: &mut arena,
    };
    assert_eq!(
        launch::build(&candidate, &guest, Some(&env), &mut out),
        Ok(sizes)
    );
    let strings = |list: &[*const u8]| -> Vec<String> {
        assert!(list.last().unwrap().is_null(), "NULL-terminated");
        list[..list.len() - 1]
            .iter()
            // SAFETY (test only): build() points every entry at a live
            // NUL-terminated string owned by this function's buffers.
            .map(|&p| {
                unsafe { std::ffi::CStr::from_ptr(p.cast()) }
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    };
    Ok((strings(&argv), strings(&envp)))
}

const STYLES: &str = r#"
[interpreters.qemu]
path = "/usr/bin/qemu-aarch64-static"
[interpreters.box64]
path = "/usr/bin/box64"
env = { BOX64_LOG = "0" }
[interpreters.box86]
path = "/usr/bin/box86"
[interpreters.fex]
path = "/usr/bin/FEXInterpreter"
[interpreters.wine]
path = "/usr/bin/wine"
[interpreters.custom]
path = "/opt/emu"
argv = "custom"
template = ["{interpreter}", "--fd={execfd}", "--argv0", "{argv0}", "{binary}", "--", "{args}", "x{binary}y{argv0}z"]
"#;

#[test]
fn argv_conventions() {
    let env = ["PATH=/bin", "BOX64_ARG0=stale", "BOX64_LOG=1", "HOME=/root"];
    let (argv, envp) = argv_for(STYLES, "qemu", "busybox-echo", &env);
    assert_eq!(
        argv,
        [
            "/usr/bin/qemu-aarch64-static",
            "-0",
            "busybox-echo",
            "/bin/foreign",
            "a",
            "",
            "b c"
        ]
    );
    assert_eq!(envp, env);

    let (argv, envp) = argv_for(STYLES, "box64", "name0", &env);
    assert_eq!(argv, ["/usr/bin/box64", "/bin/foreign", "a", "", "b c"]);
    assert_eq!(
        envp,
        ["PATH=/bin", "HOME=/root", "BOX64_LOG=0", "BOX64_ARG0=name0"]
    );

    let (argv, envp) = argv_for(STYLES, "box86", "name0", &env);
    assert_eq!(argv, ["/usr/bin/box86", "/bin/foreign", "a", "", "b c"]);
    assert_eq!(
        envp,
        [
            "PATH=/bin",
            "BOX64_ARG0=stale",
            "BOX64_LOG=1",
            "HOME=/root",
            "BOX86_ARG0=name0"
        ]
    );

    let (argv, envp) = argv_for(STYLES, "fex", "name0", &env);
    assert_eq!(
        argv,
        [
            "/usr/bin/FEXInterpreter",
            "/bin/foreign",
            "name0",
            "a",
            "",
            "b c"
        ]
    );
    assert_eq!(envp, [&env[..], &["FEX_EXECVEFD=3"]].concat());

    let (argv, envp) = argv_for(STYLES, "wine", "name0", &env);
    assert_eq!(argv, ["/usr/bin/wine", "/bin/foreign", "a", "", "b c"]);
    assert_eq!(envp, env);

    let (argv, _) = argv_for(STYLES, "custom", "name0", &env);
    assert_eq!(
        argv,
        [
            "/opt/emu",
            "--fd=3",
            "--argv0",
            "name0",
            "/bin/foreign",
            "--",
            "a",
            "",
            "b c",
            "x/bin/foreignyname0z"
        ]
    );
}

/// Every style's argv for a binary named `name` (argv0 `name0`).
fn every_style(name: &str, by_descriptor: bool) -> Vec<Result<Vec<String>, BuildError>> {
    let java = "[interpreters.java]\npath = \"/usr/bin/java\"\nargv = \"custom\"\n\
                template = [\"{interpreter}\", \"-cp\", \"{binary_dir}\", \"{binary_stem}\", \"{args}\"]\n";
    let toml = format!("{STYLES}{java}");
    ["qemu", "box64", "box86", "fex", "wine", "custom", "java"]
        .iter()
        .map(|id| {
            let guest = GuestOf {
                binary: name,
                by_descriptor,
                secure: false,
            };
            argv_for_binary(&toml, id, &guest, "name0", &[]).map(|(a, _)| a)
        })
        .collect()
}

#[test]
fn no_file_name_is_read_as_an_interpreter_option() {
    // A relative name that begins with `-` reaches every interpreter as
    // `./NAME`, the same file; the guest's argv[0] is untouched.
    let args = ["a", "", "b c"];
    let with = |head: &[&str], tail: &[&str]| -> Vec<String> {
        head.iter()
            .chain(&args)
            .chain(tail)
            .map(|s| s.to_string())
            .collect()
    };
    let argvs = every_style("--", false);
    assert_eq!(
        argvs[..5],
        [
            Ok(with(
                &["/usr/bin/qemu-aarch64-static", "-0", "name0", "./--"],
                &[]
            )),
            Ok(with(&["/usr/bin/box64", "./--"], &[])),
            Ok(with(&["/usr/bin/box86", "./--"], &[])),
            Ok(with(&["/usr/bin/FEXInterpreter", "./--", "name0"], &[])),
            Ok(with(&["/usr/bin/wine", "./--"], &[])),
        ]
    );
    assert_eq!(
        argvs[5],
        Ok(with(
            &["/opt/emu", "--fd=3", "--argv0", "name0", "./--", "--"],
            &["x--yname0z"]
        ))
    );
    // java -cp DIR STEM: a directory gets `./`, a stem cannot.
    assert_eq!(
        every_style("-x/Main.class", false)[6],
        Ok(with(&["/usr/bin/java", "-cp", "./-x", "Main"], &[]))
    );
    assert_eq!(
        every_style("-Main.class", false)[6],
        Err(BuildError::NoSafeName)
    );
    // Names that cannot be options are passed as they are.
    for name in ["/x/-y", "./-y", "y-", "/proc/self/fd/3"] {
        let argv = every_style(name, false)[1].clone().unwrap();
        assert_eq!(argv[1], name);
    }
}

#[test]
fn a_binary_named_by_its_descriptor_has_no_directory_or_stem() {
    let argvs = every_style("/proc/self/fd/3", true);
    assert!(argvs[..6].iter().all(Result::is_ok), "{argvs:?}");
    assert_eq!(argvs[6], Err(BuildError::NoSafeName), "java -cp DIR STEM");
}

#[test]
fn under_at_secure_the_emulators_own_variables_are_dropped() {
    // QEMU_LD_PREFIX picks the guest's dynamic loader, FEX_ROOTFS its
    // whole root: the caller's, for an emulator running as root.
    let env = [
        "PATH=/bin",
        "QEMU_LD_PREFIX=/home/eve",
        "BOX64_LD_LIBRARY_PATH=/home/eve",
        "BOX86_PATH=/home/eve",
        "FEX_ROOTFS=/home/eve",
        "FEX_EXECVEFD=9",
        "WINEPREFIX=/home/eve",
    ];
    let envp = |id: &str, secure: bool| {
        let guest = GuestOf {
            binary: "/proc/self/fd/3",
            by_descriptor: true,
            secure,
        };
        argv_for_binary(STYLES, id, &guest, "name0", &env)
            .unwrap()
            .1
    };
    let without = |prefix: &str| -> Vec<String> {
        env.iter()
            .filter(|e| !e.starts_with(prefix))
            .map(|e| e.to_string())
            .collect()
    };
    assert_eq!(envp("qemu", true), without("QEMU_"));
    assert_eq!(
        envp("box64", true),
        [
            without("BOX64_"),
            vec!["BOX64_LOG=0".into(), "BOX64_ARG0=name0".into()]
        ]
        .concat()
    );
    assert_eq!(
        envp("box86", true),
        [without("BOX86_"), vec!["BOX86_ARG0=name0".into()]].concat()
    );
    assert_eq!(
        envp("fex", true),
        [without("FEX_"), vec!["FEX_EXECVEFD=3".into()]].concat()
    );
    // Wine's are Wine's own business (docs/SECURITY.md); nothing is
    // dropped outside secure mode.
    assert_eq!(envp("wine", true), env);
    assert_eq!(envp("qemu", false), env);
    // qemu given a template is still qemu.
    let toml = format!(
        "{STYLES}[interpreters.qcustom]\npath = \"/usr/bin/qemu-aarch64-static\"\n\
         argv = \"custom\"\ntemplate = [\"{{interpreter}}\", \"{{binary}}\"]\n"
    );
    let guest = GuestOf {
        binary: "/proc/self/fd/3",
        by_descriptor: true,
        secure: true,
    };
    let (_, envp) = argv_for_binary(&toml, "qcustom", &guest, "name0", &env).unwrap();
    assert_eq!(envp, without("QEMU_"));
}

#[test]
fn a_binary_named_by_its_descriptor_is_not_given_to_muvm() {
    let toml = "[muvm]\npath = \"/usr/bin/muvm\"\n\
                [interpreters.fex]\npath = \"/usr/bin/FEX\"\nuse_muvm = true\n";
    let bytes = blob_of(toml);
    let blob = Blob::open(&bytes).unwrap();
    let index = decide::interpreter_by_id(&blob, b"fex").unwrap().unwrap();
    let candidate = Candidate {
        interpreter: blob.interpreter(index).unwrap(),
        path: b"/usr/bin/FEX\0",
        muvm: Some(b"/usr/bin/muvm\0"),
    };
    let args = Owned::new(&["dispatcher", "/proc/self/fd/3"]);
    for by_descriptor in [false, true] {
        let guest = Guest {
            binary: b"/proc/self/fd/3\0",
            argv0: b"x\0",
            args: &args,
            first_arg: 2,
            execfd: Some(3),
            by_descriptor,
            secure: false,
            java_class: None,
        };
        let (mut argv, mut envp, mut arena) =
            ([std::ptr::null(); 8], [std::ptr::null(); 4], [0u8; 64]);
        let mut out = Buffers {
            argv: &mut argv,
            envp: &mut envp,
            arena: &mut arena,
        };
        let built = launch::build(&candidate, &guest, Some(&Owned::new(&[])), &mut out);
        assert_eq!(built == Err(BuildError::NoSafeName), by_descriptor);
    }
}

#[test]
fn the_walk_moves_on_only_past_interpreters_that_cannot_run() {
    use rustix::io::Errno;
    // Every error execve(2) documents, and whether it says the interpreter
    // cannot run (the next may) or comes from the caller's arguments,
    // environment or limits (the walk ends).
    let table = [
        (Errno::TOOBIG, false),
        (Errno::ACCESS, true),
        (Errno::AGAIN, false),
        (Errno::FAULT, false),
        (Errno::INVAL, false),
        (Errno::IO, false),
        (Errno::ISDIR, true),
        (Errno::LIBBAD, true),
        (Errno::LOOP, true),
        (Errno::MFILE, false),
        (Errno::NAMETOOLONG, true),
        (Errno::NFILE, false),
        (Errno::NOENT, true),
        (Errno::NOEXEC, true),
        (Errno::NOMEM, false),
        (Errno::NOTDIR, true),
        (Errno::PERM, false),
        (Errno::TXTBSY, true),
        (Errno::INTR, false),
        (Errno::NOSYS, false),
    ];
    let arm = elf_facts(183, probe::ELFCLASS64, probe::ELFDATA2LSB);
    let toml_chain = blob_of(
        "[interpreters.a]\npath = \"/a\"\nfallback = [\"b\"]\n\
         [interpreters.b]\npath = \"/b\"\n[[rules]]\narch = \"aarch64\"\ninterpreter = \"a\"\n",
    );
    let chain = Blob::open(&toml_chain).unwrap();
    for (errno, falls_back) in table {
        let n = errno.raw_os_error();
        assert_eq!(decide::falls_back(n), falls_back, "{errno:?}");
        let mut world = Fake::with(&["/a", "/b"]);
        world.broken.insert(b"/a".to_vec());
        world.errno = n;
        let outcome = walk(&chain, arm, &[], &mut world, 4096);
        if falls_back {
            assert_eq!((outcome, &world.ran[..]), (Ok(()), &["/b".to_string()][..]));
        } else {
            assert_eq!(outcome, Err(NothingRan::CannotExecute), "{errno:?}");
            assert!(world.ran.is_empty(), "{errno:?}: /b must not run");
            assert_eq!(
                world.failed,
                [("/a".to_string(), Failure::NotExecutable(n))]
            );
        }
    }
    assert!(!decide::falls_back(0) && !decide::falls_back(-1) && !decide::falls_back(4095));
}

#[test]
fn config_errors_name_file_line_and_column() {
    let cases: &[(&str, &str)] = &[
        ("[defaults\n", "test.toml:1:10: TOML syntax error"),
        (
            "[interpreters.a]\npath = \"rel/x\"\n",
            "test.toml:2:8: [interpreters.a] path must be an absolute path",
        ),
        (
            "[interpreters.a]\npath = \"/x\"\nsurprise = 1\n",
            "test.toml:3:1: unknown key `surprise` in [interpreters.a]",
        ),
        (
            "[[rules]]\nmachne = 62\ninterpreter = \"a\"\n",
            "test.toml:2:1: unknown key `machne` in [[rules]] #1 (known: arch, format, \
             machine, class, endian, osabi, flags, flags_mask, interp, path, pe_machine, \
             dotnet, interpreter)",
        ),
        (
            "[defaults]\ninterpreter = \"ghost\"\n",
            "test.toml:2:15: [defaults] interpreter names interpreter `ghost`",
        ),
        (
            "[interpreters.a]\nname = \"A\"\n",
            "test.toml:1:15: [interpreters.a] has no path",
        ),
        (
            "[[rules]]\narch = \"pdp11\"\ninterpreter = \"a\"\n",
            "test.toml:2:8: [[rules]] #1 arch `pdp11`",
        ),
        (
            "[interpreters.a]\npath = \"/x\"\nargv = \"custom\"\n",
            "test.toml:1:15: [interpreters.a] has argv = \"custom\" but no template",
        ),
        (
            "[interpreters.a]\npath = \"/x\"\nargv = \"custom\"\ntemplate = [\"{nope}\"]\n",
            "test.toml:4:13: [interpreters.a] template: unknown placeholder `{nope}`",
        ),
        (
            "[defaults]\nlog_level = \"loud\"\n",
            "test.toml:2:13: [defaults] log_level `loud`",
        ),
    ];
    for (toml, expected) in cases {
        let message = Config::parse("test.toml", toml)
            .and_then(|c| compile(&c))
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with(expected),
            "{toml:?}\n got: {message}\nwant: {expected}"
        );
    }
}

#[test]
fn later_layers_win_key_by_key_and_their_rules_come_first() {
    let base = "[interpreters.q]\npath = \"/usr/bin/q\"\nname = \"Q\"\n[[rules]]\narch = \"arm\"\ninterpreter = \"q\"\n";
    let over = "[interpreters.q]\npath = \"/opt/q\"\n[interpreters.r]\npath = \"/opt/r\"\n[[rules]]\narch = \"arm\"\ninterpreter = \"r\"\n";
    let config = Config::parse_layers([("base.toml", base), ("over.toml", over)]).unwrap();
    let q = &config.interpreters["q"];
    assert_eq!(q.path.as_ref().unwrap().value, "/opt/q");
    assert_eq!(
        q.name.as_deref(),
        Some("Q"),
        "keys the later layer leaves out are kept"
    );
    let ids: Vec<&str> = config
        .rules
        .iter()
        .map(|r| r.interpreter.value.as_str())
        .collect();
    assert_eq!(ids, ["r", "q"]);
}

#[test]
fn the_default_config_compiles_and_covers_every_qemu_target() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/binfmt-dispatcher.toml"
    ))
    .unwrap();
    let bytes = compile(&Config::parse("data/binfmt-dispatcher.toml", &text).unwrap()).unwrap();
    let blob = Blob::open(&bytes).unwrap();
    for arch in probe::ARCHES {
        let facts = Facts {
            flags: arch.flags,
            ..elf_facts(arch.machine, arch.class, arch.endian)
        };
        let plan = decide::decide(&blob, &Subject { facts, paths: &[] }, None).unwrap();
        let plan = plan.unwrap_or_else(|| panic!("{} has no rule", arch.name));
        let mut world = Fake::with(&[]);
        let _ = decide::walk(&blob, &plan, 4096, &mut world).unwrap();
        let tried: Vec<&str> = world.failed.iter().map(|(p, _)| p.as_str()).collect();
        let qemu = match arch.name {
            "i486" => "i386",
            name => name,
        };
        let static_path = format!("/usr/bin/qemu-{qemu}-static");
        let dynamic_path = format!("/usr/bin/qemu-{qemu}");
        let at = tried
            .iter()
            .position(|p| *p == static_path)
            .unwrap_or_else(|| panic!("{}: {tried:?}", arch.name));
        assert_eq!(
            tried.get(at + 1),
            Some(&dynamic_path.as_str()),
            "{}",
            arch.name
        );
        if matches!(arch.name, "x86_64" | "i386" | "i486") {
            assert_eq!(
                tried[..2],
                ["/usr/bin/FEX", "/usr/bin/FEXInterpreter"],
                "{}",
                arch.name
            );
        }
    }
}

#[test]
fn path_rules_are_filtered_by_directory_without_changing_the_outcome() {
    // A thousand path rules for one machine; the ones that can match are
    // spread among them, and priority order must still decide.
    let mut toml = String::from("[interpreters.a]\npath = \"/a\"\n[interpreters.b]\npath = \"/b\"\n[interpreters.c]\npath = \"/c\"\n");
    for i in 0..1000 {
        let (glob, id) = match i {
            400 => ("**/special-*".to_string(), "c"),
            500 => ("/opt/x/**".to_string(), "a"),
            600 => ("/opt/x/y/*".to_string(), "b"),
            _ => (format!("/nowhere/{i}/**"), "b"),
        };
        toml.push_str(&format!(
            "[[rules]]\nmachine = \"aarch64\"\npath = \"{glob}\"\ninterpreter = \"{id}\"\n"
        ));
    }
    let bytes = blob_of(&toml);
    let blob = Blob::open(&bytes).unwrap();
    let rule = |path: &str| {
        let subject = Subject {
            facts: AARCH64,
            paths: &[path.as_bytes()],
        };
        decide::decide(&blob, &subject, None)
            .unwrap()
            .map(|p| p.reason)
    };
    assert_eq!(rule("/opt/x/y/z"), Some(Reason::Rule(500)));
    assert_eq!(
        rule("/opt/x"),
        Some(Reason::Rule(500)),
        "dir/** matches dir itself"
    );
    assert_eq!(rule("/opt/xy/z"), None);
    assert_eq!(rule("/nowhere/7/bin"), Some(Reason::Rule(7)));
    assert_eq!(rule("/nowhere/999"), Some(Reason::Rule(999)));
    assert_eq!(
        rule("/opt/x/special-1"),
        Some(Reason::Rule(400)),
        "a glob with no literal directory"
    );
    let deep = format!("/{}z", "d/".repeat(100));
    assert_eq!(rule(&deep), None, "more directories than the filter holds");
    let deep_special = format!("/{}special-9", "d/".repeat(100));
    assert_eq!(rule(&deep_special), Some(Reason::Rule(400)));
}

fn pe_facts(pe_machine: u16, class: u8, dotnet: bool) -> Facts<'static> {
    Facts {
        format: Format::Pe,
        class,
        pe_machine,
        dotnet,
        ..Facts::UNKNOWN
    }
}

const JAVA: Facts<'static> = Facts {
    format: Format::JavaClass,
    java_major: 52,
    ..Facts::UNKNOWN
};

const MACHO_FAT: Facts<'static> = Facts {
    format: Format::MachO,
    macho_arches: 2,
    macho_cpu: 0x0100_0007,
    ..Facts::UNKNOWN
};

/// The first interpreter that would run for `facts` when `present` exist,
/// and the paths tried before it.
fn route(blob: &Blob<'_>, facts: Facts<'_>, present: &[&str]) -> (Option<String>, Vec<String>) {
    let Some(plan) = decide::decide(blob, &Subject { facts, paths: &[] }, None).unwrap() else {
        return (None, Vec::new());
    };
    let mut world = Fake::with(present);
    let _ = decide::walk(blob, &plan, 4096, &mut world).unwrap();
    let tried = world.failed.iter().map(|(p, _)| p.clone()).collect();
    (world.ran.first().cloned(), tried)
}

#[test]
fn pe_java_and_mach_o_rules_match_their_facts_only() {
    let bytes = blob_of(
        r#"
[interpreters.a]
path = "/a"
[interpreters.b]
path = "/b"
[interpreters.c]
path = "/c"
[interpreters.d]
path = "/d"
[interpreters.e]
path = "/e"
[interpreters.f]
path = "/f"

[[rules]]
arch = "aarch64"
interpreter = "f"

[[rules]]
pe_machine = "arm64"
interpreter = "a"

[[rules]]
format = "pe"
dotnet = true
interpreter = "b"

[[rules]]
format = "pe"
class = 64
interpreter = "c"

[[rules]]
format = "java"
interpreter = "d"

[[rules]]
format = "macho"
interpreter = "e"

[[rules]]
class = 64
interpreter = "f"
"#,
    );
    let blob = Blob::open(&bytes).unwrap();
    let decide = |facts| {
        decide::decide(&blob, &Subject { facts, paths: &[] }, None)
            .unwrap()
            .map(|p| p.reason)
    };
    let c32 = probe::ELFCLASS32;
    let c64 = probe::ELFCLASS64;
    assert_eq!(decide(pe_facts(0xaa64, c64, true)), Some(Reason::Rule(1)));
    assert_eq!(decide(pe_facts(0x14c, c32, true)), Some(Reason::Rule(2)));
    assert_eq!(decide(pe_facts(0x8664, c64, false)), Some(Reason::Rule(3)));
    assert_eq!(decide(pe_facts(0x14c, c32, false)), None);
    assert_eq!(decide(JAVA), Some(Reason::Rule(4)));
    assert_eq!(decide(MACHO_FAT), Some(Reason::Rule(5)));
    // A 64-bit thin Mach-O matches `class = 64` of the last rule only if no
    // format rule takes it first.
    let thin = Facts {
        format: Format::MachO,
        class: c64,
        ..Facts::UNKNOWN
    };
    assert_eq!(decide(thin), Some(Reason::Rule(5)));
    // ELF binaries skip the PE, Java and Mach-O rules.
    assert_eq!(decide(AARCH64), Some(Reason::Rule(0)));
    assert_eq!(
        decide(elf_facts(62, c64, probe::ELFDATA2LSB)),
        Some(Reason::Rule(6))
    );
    assert_eq!(decide(elf_facts(3, c32, probe::ELFDATA2LSB)), None);
    assert_eq!(decide(Facts::UNKNOWN), None);
}

#[test]
fn rules_mixing_formats_are_rejected() {
    for (toml, what) in [
        (
            "machine = 62\npe_machine = \"i386\"",
            "ELF conditions with PE ones",
        ),
        (
            "format = \"pe\"\nosabi = 3",
            "a non-ELF format with ELF conditions",
        ),
        (
            "format = \"java\"\ndotnet = true",
            "a non-PE format with PE conditions",
        ),
        (
            "format = \"wasm\"",
            "is not one of elf, pe, java, macho, jar",
        ),
        ("pe_machine = \"vax\"", "not a known PE machine name"),
        ("dotnet = 1", "must be true or false"),
    ] {
        let text =
            format!("[interpreters.a]\npath = \"/a\"\n[[rules]]\n{toml}\ninterpreter = \"a\"\n");
        let e = Config::parse("t.toml", &text).unwrap_err();
        assert!(e.message.contains(what), "{toml}: {e}");
    }
}

#[test]
fn the_default_config_routes_windows_dotnet_java_and_mach_o() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/binfmt-dispatcher.toml"
    ))
    .unwrap();
    let bytes = compile(&Config::parse("data/binfmt-dispatcher.toml", &text).unwrap()).unwrap();
    let blob = Blob::open(&bytes).unwrap();
    let c32 = probe::ELFCLASS32;
    let c64 = probe::ELFCLASS64;
    let all = [
        "/usr/bin/wine64",
        "/usr/bin/wine",
        "/usr/bin/mono",
        "/usr/bin/dotnet",
        "/usr/bin/java",
    ];
    let ran = |facts, present: &[&str]| route(&blob, facts, present).0;
    let win64 = pe_facts(0x8664, c64, false);
    let win32 = pe_facts(0x14c, c32, false);
    let net = pe_facts(0x14c, c32, true);
    assert_eq!(ran(win64, &all).as_deref(), Some("/usr/bin/wine64"));
    assert_eq!(
        ran(win64, &["/usr/bin/wine"]).as_deref(),
        Some("/usr/bin/wine")
    );
    assert_eq!(ran(win32, &all).as_deref(), Some("/usr/bin/wine"));
    assert_eq!(ran(win32, &["/usr/bin/wine64"]), None);
    assert_eq!(ran(net, &all).as_deref(), Some("/usr/bin/mono"));
    // .NET falls back to Wine (which runs it with wine-mono): the 32-bit one.
    assert_eq!(ran(net, &all[..2]).as_deref(), Some("/usr/bin/wine"));
    assert_eq!(
        ran(pe_facts(0x8664, c64, true), &["/usr/bin/dotnet"]).as_deref(),
        Some("/usr/bin/dotnet")
    );
    assert_eq!(ran(JAVA, &all).as_deref(), Some("/usr/bin/java"));
    let (none, tried) = route(&blob, MACHO_FAT, &all);
    assert_eq!(none, None);
    assert_eq!(tried, ["/usr/libexec/binfmt-dispatcher/no-mach-o-runtime"]);
    // ELF x86-64 still goes to FEX first: the new rules come last.
    let (_, tried) = route(&blob, elf_facts(62, c64, probe::ELFDATA2LSB), &[]);
    assert_eq!(tried[0], "/usr/bin/FEX");
    // The Java launcher's argv: java -cp ROOT[:CLASSPATH] CLASS ARGS for a
    // class, java -jar JAR ARGS for anything else.
    let plan = decide::decide(
        &blob,
        &Subject {
            facts: JAVA,
            paths: &[],
        },
        None,
    )
    .unwrap()
    .unwrap();
    let candidate = Candidate {
        interpreter: blob.interpreter(plan.interpreter).unwrap(),
        path: b"/usr/bin/java\0",
        muvm: None,
    };
    let in_package = JavaClass {
        root: b"/home/ann/src",
        class_path: b"",
        name: b"com.x.Hello",
    };
    for (java_class, want) in [
        (
            Some(in_package),
            vec!["/usr/bin/java", "-cp", "/home/ann/src", "com.x.Hello", "x"],
        ),
        (
            Some(JavaClass {
                class_path: b"/lib/a.jar:/lib/b",
                ..in_package
            }),
            vec![
                "/usr/bin/java",
                "-cp",
                "/home/ann/src:/lib/a.jar:/lib/b",
                "com.x.Hello",
                "x",
            ],
        ),
        (
            None,
            vec!["/usr/bin/java", "-jar", "/home/ann/Hello.class", "x"],
        ),
    ] {
        let args = Owned::new(&["dispatcher", "/home/ann/Hello.class", "Hello.class", "x"]);
        let guest = Guest {
            binary: b"/home/ann/Hello.class\0",
            argv0: b"Hello.class\0",
            args: &args,
            first_arg: 3,
            execfd: Some(3),
            by_descriptor: false,
            secure: false,
            java_class,
        };
        let (mut argv, mut envp, mut arena) =
            ([std::ptr::null(); 16], [std::ptr::null(); 4], [0u8; 256]);
        let mut out = Buffers {
            argv: &mut argv,
            envp: &mut envp,
            arena: &mut arena,
        };
        let sizes = launch::build(&candidate, &guest, Some(&Owned::new(&[])), &mut out).unwrap();
        let shown: Vec<String> = out.argv[..sizes.argv - 1]
            .iter()
            // SAFETY (test only): build() points every entry at a live
            // NUL-terminated string owned by this function's buffers.
            .map(|&p| {
                unsafe { std::ffi::CStr::from_ptr(p.cast()) }
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(shown, want);
        assert!(
            !ArgvStyle::Java.passes_execfd(),
            "the JVM keeps no descriptor"
        );
    }
}

/// Path rules for x86-64 only (one under a literal directory, one starting
/// with a wildcard), a machine rule for aarch64, a default.
const PATH_RULES: &str = r#"
[interpreters.fex]
path = "/usr/bin/FEXInterpreter"
[interpreters.qemu]
path = "/usr/bin/qemu-x86_64"
[interpreters.arm]
path = "/usr/bin/qemu-aarch64"
[defaults]
interpreter = "qemu"
[[rules]]
machine = 62
path = "/home/*/Games/**"
interpreter = "fex"
[[rules]]
machine = 62
path = "**/*.fex"
interpreter = "fex"
[[rules]]
machine = 183
interpreter = "arm"
"#;

#[test]
fn the_canonical_path_is_asked_for_only_when_it_could_change_the_decision() {
    use decide::Partial;
    let x86 = elf_facts(62, probe::ELFCLASS64, probe::ELFDATA2LSB);
    let arm = elf_facts(183, probe::ELFCLASS64, probe::ELFDATA2LSB);
    let partial = |toml: &str, facts, name: &[u8]| {
        let bytes = blob_of(toml);
        let blob = Blob::open(&bytes).unwrap();
        let paths: &[&[u8]] = if name.is_empty() { &[] } else { &[name] };
        let subject = Subject { facts, paths };
        match decide::decide_without_canonical(&blob, &subject, None).unwrap() {
            Partial::Decided(plan) => Some(plan.map(|p| format!("{:?}", p.reason))),
            Partial::NeedsCanonicalPath => None,
        }
    };
    // No rule for this machine looks at paths, and there are no overrides.
    assert_eq!(
        partial(PATH_RULES, arm, b"/usr/bin/tool"),
        Some(Some("Rule(2)".into()))
    );
    // The filename matches the first path rule: nothing comes before it.
    assert_eq!(
        partial(PATH_RULES, x86, b"/home/me/Games/a/game"),
        Some(Some("Rule(0)".into()))
    );
    // Elsewhere, or by a relative name, the canonical path might match.
    assert_eq!(partial(PATH_RULES, x86, b"/usr/bin/tool"), None);
    assert_eq!(partial(PATH_RULES, x86, b""), None);
    // Overrides: a hit on the filename decides, a miss needs the canonical path.
    let with_override =
        format!("{PATH_RULES}\n[binaries.tool]\npath = \"/usr/bin/tool\"\ninterpreter = \"fex\"\n");
    assert!(partial(&with_override, arm, b"/usr/bin/tool")
        .flatten()
        .is_some_and(|r| r.starts_with("Binary(")));
    assert_eq!(partial(&with_override, arm, b"/usr/bin/other"), None);
    // The environment decides before any path.
    let bytes = blob_of(&with_override);
    let blob = Blob::open(&bytes).unwrap();
    let subject = Subject {
        facts: x86,
        paths: &[],
    };
    assert!(matches!(
        decide::decide_without_canonical(&blob, &subject, Some(b"arm")).unwrap(),
        Partial::Decided(Some(p)) if p.reason == Reason::Environment
    ));
}

#[test]
fn a_decision_without_the_canonical_path_is_the_one_with_it() {
    use decide::Partial;
    let configs = [
        PATH_RULES.to_string(),
        format!(
            "{PATH_RULES}\n[binaries.a]\npath = \"/home/me/Games/a\"\ninterpreter = \"arm\"\n\
             [binaries.b]\npath = \"/opt/b.fex\"\ninterpreter = \"qemu\"\n"
        ),
        CHAIN.to_string(),
    ];
    let names: &[&[u8]] = &[
        b"",
        b"/home/me/Games/a",
        b"/home/me/Games/x/y",
        b"/opt/b.fex",
        b"/opt/games/a/b",
        b"/usr/bin/tool",
        b"/home/me/c.fex",
    ];
    let facts = [
        elf_facts(62, probe::ELFCLASS64, probe::ELFDATA2LSB),
        elf_facts(3, probe::ELFCLASS32, probe::ELFDATA2LSB),
        elf_facts(183, probe::ELFCLASS64, probe::ELFDATA2LSB),
        AARCH64,
        Facts::UNKNOWN,
    ];
    let mut decided = 0;
    for toml in &configs {
        let bytes = blob_of(toml);
        let blob = Blob::open(&bytes).unwrap();
        for &f in &facts {
            for &name in names {
                let known: &[&[u8]] = if name.is_empty() { &[] } else { &[name] };
                let subject = Subject {
                    facts: f,
                    paths: known,
                };
                let Partial::Decided(plan) =
                    decide::decide_without_canonical(&blob, &subject, None).unwrap()
                else {
                    continue;
                };
                decided += 1;
                // Whatever the canonical path turns out to be.
                for &canonical in names.iter().filter(|n| !n.is_empty()) {
                    let mut all = known.to_vec();
                    all.push(canonical);
                    let full = decide::decide(
                        &blob,
                        &Subject {
                            facts: f,
                            paths: &all,
                        },
                        None,
                    )
                    .unwrap();
                    assert_eq!(
                        plan,
                        full,
                        "{} then {}",
                        String::from_utf8_lossy(name),
                        String::from_utf8_lossy(canonical)
                    );
                }
            }
        }
    }
    assert!(
        decided > 20,
        "only {decided} decisions without the canonical path"
    );
}

#[test]
fn a_rule_that_contradicts_its_candidate_entry_is_decided_alike_with_or_without_the_canonical_path()
{
    // Fuzz finding (decide target): a candidate entry naming a directory for
    // a rule whose conditions have no path glob. The complete decision
    // skips it unread when the directory is not the binary's; the decision
    // without the canonical path must not take it either.
    use decide::Partial;
    let mut bytes = blob_of(
        "[interpreters.a]\npath = \"/a\"\n[interpreters.b]\npath = \"/b\"\n\
         [defaults]\ninterpreter = \"b\"\n\
         [[rules]]\nmachine = 62\npath = \"/opt/games/**\"\ninterpreter = \"a\"\n",
    );
    let rules = Blob::open(&bytes).unwrap().rules().array();
    let conditions = rules.off as usize + blob::rule::CONDITIONS;
    let cond = u32::from_le_bytes(bytes[conditions..conditions + 4].try_into().unwrap());
    let path = decide::Condition::Path.bit();
    assert_ne!(cond & path, 0);
    bytes[conditions..conditions + 4].copy_from_slice(&(cond & !path).to_le_bytes());
    blob::seal(&mut bytes);
    let blob = Blob::open(&bytes).unwrap();
    let x86 = elf_facts(62, probe::ELFCLASS64, probe::ELFDATA2LSB);
    let paths: &[&[u8]] = &[b"/usr/bin/tool"];
    let full = decide::decide(&blob, &Subject { facts: x86, paths }, None).unwrap();
    assert_eq!(full.map(|p| p.reason), Some(Reason::Default));
    let partial =
        decide::decide_without_canonical(&blob, &Subject { facts: x86, paths }, None).unwrap();
    assert!(
        match partial {
            Partial::NeedsCanonicalPath => true,
            Partial::Decided(plan) => plan == full,
        },
        "{partial:?}"
    );
}

#[test]
fn the_system_cache_is_its_directory_and_its_name() {
    use binfmt_dispatcher_core::paths;
    let joined = [
        paths::SYSTEM_CACHE_DIR.to_bytes(),
        b"/",
        paths::SYSTEM_CACHE_NAME.to_bytes(),
    ]
    .concat();
    assert_eq!(paths::SYSTEM_CACHE.to_bytes(), joined);
}

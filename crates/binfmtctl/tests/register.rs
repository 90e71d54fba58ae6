//! Registration: the architecture table against Debian's qemu-user-static,
//! QEMU's qemu-binfmt-conf.sh and probe::ARCHES (which core's build.rs
//! makes of it); the shipped binfmt.d files; `binfmtctl register`,
//! `unregister`, `status` and `run` in private binfmt_misc instances (a
//! user namespace each: nothing touches the machine's); `make install` into
//! a DESTDIR.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use binfmt_dispatcher_core::probe::{self, ARCHES};
use support::*;

const MANIFEST_DIR: &str = ROOT;

/// QEMU's scripts/qemu-binfmt-conf.sh values for the targets Debian's
/// qemu-user-static does not register on an x86_64 build host (x86) or
/// ships no entry for.
const QEMU_CONF: &[(&str, &str, &str)] = &[
    (
        "i386",
        r"\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x03\x00",
        r"\xff\xff\xff\xff\xff\xfe\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
    ),
    (
        "i486",
        r"\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x06\x00",
        r"\xff\xff\xff\xff\xff\xfe\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
    ),
    (
        "x86_64",
        r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00",
        r"\xff\xff\xff\xff\xff\xfe\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
    ),
    (
        "aarch64_be",
        r"\x7fELF\x02\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7",
        r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff",
    ),
    (
        "microblazeel",
        r"\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xab\xba",
        r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
    ),
    (
        "or1k",
        r"\x7fELF\x01\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x5c",
        r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff",
    ),
];

#[test]
fn table_is_debians_qemu_user_static() {
    require_qemu();
    let rows = table();
    let mut seen = 0;
    for entry in fs::read_dir("/usr/share/binfmts").expect("/usr/share/binfmts") {
        let entry = entry.unwrap();
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(name) = file.strip_prefix("qemu-") else {
            continue;
        };
        let text = fs::read_to_string(entry.path()).unwrap();
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{k} ")))
                .map(str::to_string)
        };
        assert_eq!(field("offset").as_deref().unwrap_or("0"), "0", "{file}");
        let row = rows
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("{file} has no row in data/binfmt-arches.tsv"));
        assert_eq!(row.source, "debian", "{name}");
        assert_eq!(
            row.magic,
            unescape_hex(&field("magic").unwrap()),
            "magic of {name}"
        );
        assert_eq!(
            row.mask,
            unescape_hex(&field("mask").unwrap()),
            "mask of {name}"
        );
        seen += 1;
    }
    let debian_rows = rows.iter().filter(|r| r.source == "debian").count();
    assert_eq!(
        seen, debian_rows,
        "a row says debian but Debian has no such file"
    );
    assert!(seen >= 29, "only {seen} qemu-* files in /usr/share/binfmts");
}

#[test]
fn table_is_qemus_where_debian_has_nothing() {
    let rows = table();
    for row in rows.iter().filter(|r| r.source == "qemu") {
        let (_, magic, mask) = QEMU_CONF
            .iter()
            .find(|(n, _, _)| *n == row.name)
            .unwrap_or_else(|| panic!("{}: no qemu-binfmt-conf.sh value in this test", row.name));
        assert_eq!(row.magic, unescape_hex(magic), "magic of {}", row.name);
        assert_eq!(row.mask, unescape_hex(mask), "mask of {}", row.name);
    }
}

/// A minimal ELF header of `arch` (e_type ET_EXEC, flags set as the target
/// requires), 64 bytes.
fn header_of(arch: &probe::Arch) -> Vec<u8> {
    let big = arch.endian == probe::ELFDATA2MSB;
    let wide = arch.class == probe::ELFCLASS64;
    let mut h = vec![0u8; 64];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = arch.class;
    h[5] = arch.endian;
    h[6] = 1;
    let put16 = |h: &mut Vec<u8>, at: usize, v: u16| {
        h[at..at + 2].copy_from_slice(&if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        })
    };
    put16(&mut h, 16, 2);
    put16(&mut h, 18, arch.machine);
    let flags_at = if wide { 48 } else { 36 };
    let flags = if big {
        arch.flags.to_be_bytes()
    } else {
        arch.flags.to_le_bytes()
    };
    h[flags_at..flags_at + 4].copy_from_slice(&flags);
    h
}

fn matches(row: &Row, header: &[u8]) -> bool {
    row.magic.iter().enumerate().all(|(i, &m)| {
        let k = row.mask.get(i).copied().unwrap_or(0xff);
        header.get(i).is_some_and(|&b| b & k == m & k)
    })
}

#[test]
fn table_agrees_with_probe_arches() {
    let rows = elf_rows();
    for arch in ARCHES {
        assert!(
            rows.iter().any(|r| r.name == arch.name),
            "probe::ARCHES has {} but data/binfmt-arches.tsv does not",
            arch.name
        );
        // A typical binary of each target matches its own entry and no other.
        let header = header_of(arch);
        let hits: Vec<&str> = rows
            .iter()
            .filter(|r| matches(r, &header))
            .map(|r| r.name.as_str())
            .collect();
        // i386 and i486 binaries are told apart by e_machine only.
        assert_eq!(hits, [arch.name], "a {} header matches {hits:?}", arch.name);
    }
    for row in &rows {
        // A header that is the row's magic, zeros after: probe names it
        // after the row (core's build.rs made ARCHES of these bytes).
        let mut header = row.magic.clone();
        header.resize(64, 0);
        let facts = probe::probe(&header);
        assert_eq!(
            probe::arch_of(&facts).map(|a| a.name),
            Some(row.name.as_str()),
            "probe of data/binfmt-arches.tsv's {} magic",
            row.name
        );
    }
}

#[test]
fn shipped_binfmt_d_files_are_up_to_date() {
    let dir = temp_dir("binfmt-d");
    let out = Command::new(BINFMTCTL)
        .args(["binfmt-d", "--host", "none", "--output"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let listing = |d: &Path| -> BTreeMap<String, String> {
        fs::read_dir(d)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    fs::read_to_string(e.path()).unwrap(),
                )
            })
            .collect()
    };
    let shipped = listing(&Path::new(MANIFEST_DIR).join("data/binfmt.d"));
    assert_eq!(
        shipped,
        listing(&dir),
        "data/binfmt.d is stale: regenerate with `binfmtctl binfmt-d --host none --output data/binfmt.d`"
    );
    assert_eq!(shipped.len(), elf_rows().len());
    for row in elf_rows() {
        let text = &shipped[&format!("zz-{}.conf", row.entry)];
        let line = format!(
            ":{}:M::{}:{}:/usr/bin/binfmt-dispatcher:POCF\n",
            row.entry,
            escaped(&row.magic),
            escaped(&row.entry_mask)
        );
        assert_eq!(
            unescape_hex(text.lines().last().unwrap()),
            unescape_hex(line.trim_end()),
            "{text}"
        );
    }
}

/// The original binfmt-dispatcher's binfmt.d lines (its data/*.conf, which
/// Fedora's package installs as /usr/lib/binfmt.d/zz-binfmt-dispatcher-x86.conf
/// and zz-binfmt-dispatcher-x86_64.conf).
const ORIGINALS: [(&str, &str); 2] = [
    (
        "zz-binfmt-dispatcher-x86.conf",
        r":binfmt-dispatcher-x86:M:0:\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x03\x00:\xff\xff\xff\xff\xff\xfe\xfe\x00\x00\x00\x00\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/binfmt-dispatcher:POCF",
    ),
    (
        "zz-binfmt-dispatcher-x86_64.conf",
        r":binfmt-dispatcher-x86_64:M:0:\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00:\xff\xff\xff\xff\xff\xfe\xfe\x00\x00\x00\x00\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/binfmt-dispatcher:POCF",
    ),
];

/// A binfmt.d line's fields, the magic and mask decoded and an empty
/// offset read as the kernel reads it (0).
fn fields(line: &str) -> Vec<Vec<u8>> {
    let mut f: Vec<Vec<u8>> = line.split(':').skip(1).map(unescape_hex).collect();
    if f[2].is_empty() {
        f[2] = b"0".to_vec();
    }
    f
}

#[test]
fn x86_files_are_the_original_packages() {
    let shipped = Path::new(MANIFEST_DIR).join("data/binfmt.d");
    for (file, original) in ORIGINALS {
        let text = fs::read_to_string(shipped.join(file)).unwrap();
        let ours = text.lines().find(|l| l.starts_with(':')).unwrap();
        assert_eq!(fields(ours), fields(original), "{file}");
    }
    // The x86 rows keep QEMU's mask for the comparison with QEMU's values;
    // only the entry's differs, in EI_ABIVERSION and EI_PAD's first bytes.
    for row in elf_rows()
        .iter()
        .filter(|r| r.name == "i386" || r.name == "x86_64")
    {
        let differ: Vec<usize> = (0..row.mask.len())
            .filter(|&i| row.mask[i] != row.entry_mask[i])
            .collect();
        assert_eq!(differ, [8, 9, 10], "{}", row.name);
    }
}

/// Runs `script` in a private binfmt_misc (none registered beforehand but
/// `entries`), with `$CTL` the binfmtctl under test and `$DISP` the
/// dispatcher.
fn private(entries: &[Entry<'_>], script: &str) -> Output {
    run_in_private_binfmt(
        entries,
        script,
        &[("CTL", BINFMTCTL), ("DISP", dispatcher())],
    )
}

/// The entries a script printed with `dump_entries`: name -> file text.
const DUMP: &str = r#"for f in /proc/sys/fs/binfmt_misc/*; do n=${f##*/}; [ "$n" = register ] || [ "$n" = status ] || { echo "== $n"; cat "$f"; }; done"#;

fn parse_dump(text: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("== ") {
            current = Some(name.to_string());
            map.insert(name.to_string(), String::new());
        } else if let Some(name) = &current {
            let e = map.get_mut(name).unwrap();
            e.push_str(line);
            e.push('\n');
        }
    }
    map
}

fn field<'a>(entry: &'a str, key: &str) -> Option<&'a str> {
    entry.lines().find_map(|l| l.strip_prefix(key))
}

fn and(a: &[u8], mask: &[u8]) -> Vec<u8> {
    a.iter().zip(mask).map(|(x, m)| x & m).collect()
}

const QEMU_ENTRY: Entry<'static> = (
    "qemu-aarch64",
    AARCH64_MAGIC,
    AARCH64_MASK,
    QEMU_AARCH64,
    "F",
);

#[test]
fn register_all_matches_the_table_and_status_decodes_it() {
    require_qemu();
    let out = private(
        &[QEMU_ENTRY],
        &format!(
            "\"$CTL\" register --interpreter \"$DISP\" || exit 9\n\
             echo '>>> dump'\n{DUMP}\n\
             echo '>>> status'\n\"$CTL\" status\n\
             echo '>>> json'\n\"$CTL\" status --json\n\
             echo '>>> again'\n\"$CTL\" register --interpreter \"$DISP\"\n"
        ),
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    let section = |name: &str| labelled(&text, name);
    let entries = parse_dump(section("dump"));
    let expected = registered_here();
    assert_eq!(entries.len(), expected.len() + 1, "{entries:#?}");
    for row in &expected {
        let name = &row.entry;
        let e = entries
            .get(name)
            .unwrap_or_else(|| panic!("{name} not registered"));
        assert_eq!(e.lines().next(), Some("enabled"), "{name}");
        assert_eq!(field(e, "interpreter "), Some(dispatcher()), "{name}");
        assert_eq!(field(e, "flags: "), Some("POCF"), "{name}");
        assert_eq!(field(e, "offset "), Some("0"), "{name}");
        let mask = from_hex(field(e, "mask ").unwrap());
        assert_eq!(mask, row.entry_mask, "mask of {name}");
        assert_eq!(
            and(&from_hex(field(e, "magic ").unwrap()), &mask),
            and(&row.magic, &row.entry_mask),
            "magic of {name}"
        );
    }
    // The host's own architectures are never registered.
    if rustix_uname() == "x86_64" {
        for own in ["x86_64", "i386", "i486"] {
            assert!(!entries.contains_key(&format!("binfmt-dispatcher-{own}")));
        }
        assert!(
            text.contains("skipped (this host, x86_64, runs them natively): i386, i486, x86_64")
        );
    }
    // The other entry for aarch64 is named.
    assert!(text.contains("note: qemu-aarch64 (interpreter /usr/bin/qemu-aarch64-static) also matches aarch64 binaries"), "{text}");

    // status: every entry, its architecture, ours or not.
    let status = section("status");
    assert!(
        status.contains(&format!(
            "{} entries, {} of them binfmt-dispatcher's",
            expected.len() + 1,
            expected.len()
        )),
        "{status}"
    );
    for row in &expected {
        let line = status
            .lines()
            .find(|l| l.starts_with(&format!("{} ", row.entry)))
            .unwrap_or_else(|| panic!("no status line for {}:\n{status}", row.name));
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            cols[1..6],
            [row.name.as_str(), "enabled", "POCF", "yes", dispatcher()],
            "{line}"
        );
    }
    let qemu = status
        .lines()
        .find(|l| l.starts_with("qemu-aarch64 "))
        .unwrap();
    let cols: Vec<&str> = qemu.split_whitespace().collect();
    assert_eq!(cols[1..6], ["aarch64", "enabled", "F", "no", QEMU_AARCH64]);
    assert!(status.contains(
        "note: binfmt-dispatcher-aarch64 and qemu-aarch64 match the same aarch64 binaries"
    ));

    let json = section("json");
    assert!(json.contains("\"enabled\": true"));
    assert!(json.contains("\"name\": \"binfmt-dispatcher-riscv64\",\n      \"arch\": \"riscv64\",\n      \"enabled\": true,"), "{json}");
    assert_eq!(json.matches("\"ours\": true").count(), expected.len());
    assert_eq!(json.matches("\"ours\": false").count(), 1);

    // Registering again changes nothing.
    let again = section("again");
    assert_eq!(
        again.matches("already registered: ").count(),
        expected.len(),
        "{again}"
    );
}

#[test]
fn unregister_removes_ours_only() {
    require_qemu();
    let out = private(
        &[QEMU_ENTRY],
        &format!(
            "{DUMP} > before\n\
             \"$CTL\" register --interpreter \"$DISP\" >/dev/null || exit 9\n\
             \"$CTL\" unregister --arch riscv64,sparc || exit 10\n\
             echo '>>> after one'\n{DUMP}\n\
             \"$CTL\" unregister || exit 11\n\
             echo '>>> after all'\n{DUMP}\n\
             echo '>>> before'\ncat before\n"
        ),
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    let (_, rest) = text.split_once(">>> after one\n").unwrap();
    let (one, rest) = rest.split_once(">>> after all\n").unwrap();
    let (all, before) = rest.split_once(">>> before\n").unwrap();
    let one = parse_dump(one);
    assert!(!one.contains_key("binfmt-dispatcher-riscv64"));
    assert!(!one.contains_key("binfmt-dispatcher-sparc"));
    assert!(one.contains_key("binfmt-dispatcher-aarch64"));
    assert_eq!(one.len(), registered_here().len() - 2 + 1);
    // Nothing of ours left; the other package's entry as it was.
    assert_eq!(parse_dump(all), parse_dump(before));
    assert_eq!(parse_dump(all).keys().collect::<Vec<_>>(), ["qemu-aarch64"]);
}

#[test]
fn another_packages_entry_of_our_name_is_never_replaced() {
    require_qemu();
    let squatter: Entry<'static> = (
        "binfmt-dispatcher-aarch64",
        AARCH64_MAGIC,
        AARCH64_MASK,
        QEMU_AARCH64,
        "F",
    );
    let out = private(
        &[squatter],
        &format!(
            "{DUMP} > before\n\
             \"$CTL\" register --interpreter \"$DISP\" 2>&1; echo \"register: $?\"\n\
             \"$CTL\" unregister --arch aarch64 2>&1; echo \"unregister aarch64: $?\"\n\
             \"$CTL\" unregister 2>&1; echo \"unregister all: $?\"\n\
             echo '>>> after'\n{DUMP}\n\
             echo '>>> before'\ncat before\n"
        ),
    );
    // (binfmtctl's stderr goes to stdout: the helper takes messages naming
    // /proc/sys/fs/binfmt_misc on stderr for a failed setup.)
    let text = stdout(&out);
    let err = stderr(&out);
    assert!(text.contains("register: 1\n"), "{text}\n{err}");
    assert!(text.contains("binfmt-dispatcher-aarch64 exists and is not binfmt-dispatcher's (interpreter /usr/bin/qemu-aarch64-static): not replacing it"), "{text}");
    assert!(text.contains("nothing registered"), "{text}");
    assert!(text.contains("unregister aarch64: 1\n"), "{text}\n{err}");
    assert!(text.contains("unregister all: 0\n"), "{text}");
    assert!(text.contains("left alone"), "{text}");
    let (_, rest) = text.split_once(">>> after\n").unwrap();
    let (after, before) = rest.split_once(">>> before\n").unwrap();
    assert_eq!(parse_dump(after), parse_dump(before));
    assert_eq!(parse_dump(after).len(), 1);
}

#[test]
fn clear_errors_when_binfmt_misc_is_missing_or_not_writable() {
    // Not mounted: a directory without `register`.
    let dir = temp_dir("no-binfmt");
    let out = Command::new(BINFMTCTL)
        .args(["register", "--interpreter", dispatcher(), "--binfmt-misc"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("binfmt_misc is not mounted at"),
        "{}",
        stderr(&out)
    );
    let out = Command::new(BINFMTCTL)
        .args(["status", "--binfmt-misc", "/nonexistent/binfmt_misc"])
        .output()
        .unwrap();
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));

    // Not writable: a stand-in owned by root, written by nobody.
    if !rustix_is_root() {
        return;
    }
    let fake = temp_dir("ro-binfmt");
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(fake.join("register"), "").unwrap();
    fs::set_permissions(fake.join("register"), fs::Permissions::from_mode(0o200)).unwrap();
    fs::write(fake.join("status"), "enabled\n").unwrap();
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
            "register",
            "--arch",
            "aarch64",
            "--interpreter",
            dispatcher(),
            "--binfmt-misc",
        ])
        .arg(&fake)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("needs root"), "{}", stderr(&out));
    assert!(stderr(&out).contains("binfmtctl run"), "{}", stderr(&out));
}

fn rustix_is_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

#[test]
fn refuses_the_hosts_own_architecture_and_unknown_names() {
    let own = if rustix_uname() == "aarch64" {
        "aarch64"
    } else {
        "x86_64"
    };
    for (arch, message) in [(own, "runs"), ("pdp11", "unknown architecture")] {
        let out = private(
            &[],
            &format!(
                "\"$CTL\" register --arch {arch} --interpreter \"$DISP\"; echo \"rc $?\"; {DUMP}"
            ),
        );
        assert!(
            stdout(&out).starts_with("rc 1\n"),
            "{arch}: {}",
            stdout(&out)
        );
        assert!(stderr(&out).contains(message), "{arch}: {}", stderr(&out));
    }
}

#[test]
fn registers_pe_and_java_only_when_named() {
    let out = private(
        &[],
        &format!(
            "\"$CTL\" register --arch pe,java,jar --interpreter \"$DISP\"; echo \"rc $?\"; \
             \"$CTL\" register --arch jar --interpreter \"$DISP\"; {DUMP}; \"$CTL\" status"
        ),
    );
    let text = stdout(&out);
    assert!(text.contains("rc 0\n"), "{text}\n{}", stderr(&out));
    // JARs by their extension, as the kernel's java.rst registers them;
    // registered again, the same entry is recognised as already there.
    assert!(text.contains("== binfmt-dispatcher-jar\n"), "{text}");
    assert!(text.contains("extension .jar\n"), "{text}");
    // Without C: tried before binfmt_elf on any name ending in .jar, it
    // would run every set-id native program (a symlink x.jar to it) through
    // the dispatcher as root.
    let jar = text.split("== binfmt-dispatcher-jar\n").nth(1).unwrap();
    let jar = jar.split("== ").next().unwrap();
    assert!(jar.contains("flags: POF\n"), "{jar}");
    assert!(
        text.contains("already registered: binfmt-dispatcher-jar"),
        "{text}"
    );
    assert!(text.contains("== binfmt-dispatcher-pe\n"), "{text}");
    assert!(text.contains("magic 4d5a\n"), "{text}");
    assert!(text.contains("== binfmt-dispatcher-java\n"), "{text}");
    assert!(text.contains("magic cafebabe\n"), "{text}");
    let out = private(
        &[],
        &format!("\"$CTL\" register --arch all --interpreter \"$DISP\"; {DUMP}"),
    );
    let text = stdout(&out);
    assert!(!text.contains("binfmt-dispatcher-pe"), "{text}");
    assert!(!text.contains("binfmt-dispatcher-java"), "{text}");
    assert!(!text.contains("binfmt-dispatcher-jar"), "{text}");
}

#[test]
fn persist_writes_binfmt_d_files_below_root() {
    let root = temp_dir("persist");
    // An earlier release's file for i386.
    let etc = root.join("etc/binfmt.d");
    fs::create_dir_all(&etc).unwrap();
    let former = ":binfmt-dispatcher-i386:M::\\x7fELF:\\xff\\xff\\xff\\xff:/usr/bin/binfmt-dispatcher:POCF\n";
    fs::write(etc.join("zz-binfmt-dispatcher-i386.conf"), former).unwrap();
    // With --root nothing is registered; run it in a private instance anyway.
    let in_root = |args: &str, then: &str| {
        let root = sh_quote(root.to_str().unwrap());
        let out = private(
            &[],
            &format!("\"$CTL\" --root {root} {args} || exit 9\n{then}"),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        out
    };
    let out = in_root(
        "register --persist --host none --interpreter /usr/bin/binfmt-dispatcher",
        DUMP,
    );
    assert!(
        parse_dump(&stdout(&out)).is_empty(),
        "--root registered entries"
    );
    let shipped = Path::new(MANIFEST_DIR).join("data/binfmt.d");
    let written = root.join("etc/binfmt.d");
    for row in elf_rows() {
        let name = format!("zz-{}.conf", row.entry);
        assert_eq!(
            fs::read_to_string(written.join(&name)).unwrap(),
            fs::read_to_string(shipped.join(&name)).unwrap()
        );
    }
    // The earlier release's file would have registered a second entry.
    assert!(!etc.join("zz-binfmt-dispatcher-i386.conf").exists());
    assert!(stdout(&out).contains("removed "), "{}", stdout(&out));
    in_root("unregister --persist --arch sparc", "");
    assert!(!written.join("zz-binfmt-dispatcher-sparc.conf").exists());
    assert!(written.join("zz-binfmt-dispatcher-aarch64.conf").exists());
    // unregister --persist takes an earlier release's file too, and the
    // x86 file of the original's name.
    fs::write(etc.join("zz-binfmt-dispatcher-i386.conf"), former).unwrap();
    in_root("unregister --persist --arch i386,x86_64", "");
    for gone in ["i386", "x86", "x86_64"] {
        let file = format!("zz-binfmt-dispatcher-{gone}.conf");
        assert!(!etc.join(&file).exists(), "{file}");
    }
    assert!(etc.join("zz-binfmt-dispatcher-i486.conf").exists());
}

/// A register line for the private instance: name, magic and mask as the
/// original's x86 lines have them, the dispatcher under test.
fn original_entry(name: &str) -> String {
    let (_, line) = ORIGINALS
        .iter()
        .find(|(_, l)| l.starts_with(&format!(":{name}:")))
        .unwrap();
    line.replace("/usr/bin/binfmt-dispatcher", dispatcher())
}

#[test]
fn the_originals_entries_and_earlier_names_are_ours() {
    // The original's x86 entry (i386 binaries: none run here), its x86-64
    // entry disabled at once (with shell builtins only: this host's own
    // programs would go to it), an earlier release's i386 entry, and FEX's.
    let former_i386 = format!(
        ":binfmt-dispatcher-i386:M::{}:{}:{}:POCF",
        escaped(&table()[0].magic),
        escaped(&table()[0].mask),
        dispatcher()
    );
    let fex = ORIGINALS[0]
        .1
        .replace(":binfmt-dispatcher-x86:", ":FEX-x86:")
        .replace(
            "/usr/bin/binfmt-dispatcher:POCF",
            "/usr/bin/FEXInterpreter:POC",
        );
    let register = |line: &str| {
        format!(
            "printf '%s\\n' {} > /proc/sys/fs/binfmt_misc/register || exit 8\n",
            sh_quote(line)
        )
    };
    let script = [
        register(&original_entry("binfmt-dispatcher-x86_64")),
        "echo 0 > /proc/sys/fs/binfmt_misc/binfmt-dispatcher-x86_64 || exit 7\n".into(),
        register(&original_entry("binfmt-dispatcher-x86")),
        register(&former_i386),
        register(&fex),
        format!(
            "echo '>>> status'\n\"$CTL\" status\n\
             echo '>>> i386'\n\"$CTL\" unregister --arch i386 || exit 9\n\
             echo '>>> all'\n\"$CTL\" unregister || exit 10\n\
             echo '>>> left'\n{DUMP}\n"
        ),
    ]
    .concat();
    let out = private(&[], &script);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    let section = |name: &str| labelled(&text, name);
    let status = section("status");
    assert!(
        status.contains("4 entries, 3 of them binfmt-dispatcher's"),
        "{status}"
    );
    let columns = |name: &str| -> Vec<String> {
        let line = status
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in {status}"));
        line.split_whitespace()
            .skip(1)
            .take(4)
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        columns("binfmt-dispatcher-x86"),
        ["i386", "enabled", "POCF", "yes"]
    );
    assert_eq!(
        columns("binfmt-dispatcher-x86_64"),
        ["x86_64", "disabled", "POCF", "yes"]
    );
    assert_eq!(
        columns("binfmt-dispatcher-i386"),
        ["i386", "enabled", "POCF", "yes"]
    );
    assert_eq!(columns("FEX-x86"), ["i386", "enabled", "POC", "no"]);
    let i386 = section("i386");
    assert!(
        i386.contains("unregistered: binfmt-dispatcher-x86 ("),
        "{i386}"
    );
    assert!(
        i386.contains("unregistered: binfmt-dispatcher-i386 ("),
        "{i386}"
    );
    let all = section("all");
    assert!(
        all.contains("unregistered: binfmt-dispatcher-x86_64 ("),
        "{all}"
    );
    assert_eq!(
        parse_dump(section("left")).keys().collect::<Vec<_>>(),
        ["FEX-x86"]
    );
}

/// A directory anyone can read, holding the arm64 busybox.
fn busybox_dir() -> std::path::PathBuf {
    let dir = temp_dir("run");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    fs::copy(busybox_arm64(), dir.join("busybox")).unwrap();
    fs::set_permissions(dir.join("busybox"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir(dir.join("home")).unwrap();
    fs::set_permissions(dir.join("home"), fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

fn run_cmd(dir: &Path, prefix: &[&str]) -> Command {
    let (program, args) = match prefix.split_first() {
        Some((p, rest)) => (*p, rest.to_vec()),
        None => (BINFMTCTL, Vec::new()),
    };
    let mut c = Command::new(program);
    c.args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", dir.join("home"))
        .current_dir(dir)
        .stdin(Stdio::null());
    c
}

#[test]
fn run_dispatches_busybox_and_forwards_its_status() {
    require_qemu();
    let dir = busybox_dir();
    let busybox = dir.join("busybox");
    let out = run_cmd(&dir, &[])
        .args(["run", "--interpreter", dispatcher(), "--"])
        .arg(&busybox)
        .args(["sh", "-c", "echo hello from $(uname -m); exit 7"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello from aarch64\n");
    // A program that does not exist: 127, said.
    let out = run_cmd(&dir, &[])
        .args(["run", "--interpreter", dispatcher(), "/nonexistent/program"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert!(stderr(&out).contains("cannot run /nonexistent/program"));
}

#[test]
fn run_gives_the_kernels_answer_for_a_file_no_entry_matches() {
    // Bytes no binfmt_misc entry and no kernel handler takes: the kernel
    // says ENOEXEC. glibc's execvp would then run the file with /bin/sh,
    // which prints syntax errors about its bytes and exits 2.
    let dir = busybox_dir();
    let junk = dir.join("junk");
    fs::write(&junk, b"\x7fNOT( an ) executable\n(\n").unwrap();
    fs::set_permissions(&junk, fs::Permissions::from_mode(0o755)).unwrap();
    let out = run_cmd(&dir, &[])
        .args(["run", "--interpreter", dispatcher(), "--"])
        .arg(&junk)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(126), "{err}");
    assert_eq!(
        err,
        format!(
            "binfmtctl: cannot run {}: Exec format error (os error 8)\n",
            junk.display()
        )
    );
    // A program killed by a signal: 128 + the signal, as a shell says.
    let out = run_cmd(&dir, &[])
        .args([
            "run",
            "--interpreter",
            dispatcher(),
            "--",
            "sh",
            "-c",
            "kill -TERM $$",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(128 + 15), "{}", stderr(&out));
}

#[test]
fn run_works_unprivileged() {
    require_qemu();
    if !rustix_is_root() {
        // Already unprivileged: the test above is this one.
        return;
    }
    let dir = busybox_dir();
    let busybox = dir.join("busybox");
    let out = run_cmd(
        &dir,
        &[
            "setpriv",
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            BINFMTCTL,
        ],
    )
    .args(["run", "--interpreter", dispatcher()])
    .arg(&busybox)
    .args(["sh", "-c", "echo $(uname -m) as $(id -u); exit 3"])
    .output()
    .unwrap();
    let err = stderr(&out);
    if err.contains("cannot make a user namespace") {
        panic!("this kernel refuses unprivileged user namespaces; binfmtctl says why:\n{err}");
    }
    assert_eq!(out.status.code(), Some(3), "{err}");
    // The user is root of its own namespace, mapped to nobody outside.
    assert_eq!(stdout(&out), "aarch64 as 0\n", "{err}");
}

#[test]
fn make_install_into_destdir() {
    let dest = temp_dir("destdir");
    let out = Command::new("make")
        .args(["-s", "install", "PREFIX=/usr/local", "HOST_ARCH=x86_64"])
        .arg(format!("DESTDIR={}", dest.display()))
        .arg(format!("CARGO={}", env!("CARGO")))
        .current_dir(MANIFEST_DIR)
        .output()
        .expect("cannot run make");
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let files: Vec<String> = installed_tree(&dest)
        .into_iter()
        .filter(|p| !p.ends_with('/') || is_empty_dir(&dest.join(p)))
        .collect();
    let mut expected: Vec<String> = [
        "usr/local/bin/binfmt-dispatcher",
        "usr/local/bin/binfmtctl",
        "usr/local/lib/systemd/system/binfmt-dispatcher-compile.path",
        "usr/local/lib/systemd/system/binfmt-dispatcher-compile.service",
        "usr/local/libexec/binfmt-dispatcher/missing-interpreter",
        "usr/local/share/bash-completion/completions/binfmtctl",
        "usr/local/share/binfmt-dispatcher/binfmt-arches.tsv",
        "usr/local/share/binfmt-dispatcher/binfmt-dispatcher.toml",
        "usr/local/share/doc/binfmt-dispatcher/README.md",
        "usr/local/share/doc/binfmt-dispatcher/binfmt-dispatcher.toml.example",
        "usr/local/share/fish/vendor_completions.d/binfmtctl.fish",
        "usr/local/share/man/man5/binfmt-dispatcher.toml.5",
        "usr/local/share/polkit-1/actions/org.AsahiLinux.binfmt_dispatcher.policy",
        "usr/local/share/zsh/site-functions/_binfmtctl",
        "usr/lib/binfmt-dispatcher.d/",
        "var/cache/binfmt-dispatcher/",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for page in binfmtctl::man::pages() {
        expected.push(format!("usr/local/share/man/man1/{}", page.file));
    }
    for row in elf_rows() {
        if !["x86_64", "i386", "i486"].contains(&row.name.as_str()) {
            expected.push(format!("usr/local/lib/binfmt.d/zz-{}.conf", row.entry));
        }
    }
    expected.sort();
    assert_eq!(files, expected);
    // The installed paths are the ones written into the files.
    let conf =
        fs::read_to_string(dest.join("usr/local/lib/binfmt.d/zz-binfmt-dispatcher-aarch64.conf"))
            .unwrap();
    assert!(
        conf.contains(":/usr/local/bin/binfmt-dispatcher:POCF\n"),
        "{conf}"
    );
    let unit = fs::read_to_string(
        dest.join("usr/local/lib/systemd/system/binfmt-dispatcher-compile.service"),
    )
    .unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/binfmtctl compile"),
        "{unit}"
    );

    // make uninstall takes every file away again.
    let out = Command::new("make")
        .args(["-s", "uninstall", "PREFIX=/usr/local"])
        .arg(format!("DESTDIR={}", dest.display()))
        .current_dir(MANIFEST_DIR)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let left = installed_tree(&dest);
    assert!(
        left.iter().all(|f| f.ends_with('/')),
        "left after uninstall: {left:?}"
    );
}

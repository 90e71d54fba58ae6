//! A Java class file's own name (`this_class`), read through its constant
//! pool, so that the class path root is the right ancestor of the file:
//! `com/x/Main.class` holds `com.x.Main`, which `java` finds only below the
//! directory that holds `com`.
//!
//! The file is read through [`ReadAt`] in windows of [`WINDOW`] bytes, so
//! any size is fine and the stack holds one window. Everything is data:
//! every index and length is checked, the walk is bounded by the pool's
//! count (at most 65,535 entries), and a malformed file is a
//! [`ClassError`], never a panic.

use crate::probe::{probe, Format};

/// Bytes of the class file read at a time.
pub const WINDOW: usize = 4096;

/// The longest class name taken, in bytes. Each package is a directory
/// and the name a file, so a real one is far shorter.
pub const NAME_MAX: usize = 1024;

/// Reads a file at an offset.
pub trait ReadAt {
    /// Reads at `offset` into `buf`: how many bytes, fewer at the file's
    /// end; `None` when it cannot be read.
    fn read_at(&mut self, offset: u64, buf: &mut [u8; WINDOW]) -> Option<usize>;
}

/// Why a class file's name cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassError {
    /// It is not a class file (an executable JAR, say).
    NotAClass,
    /// It cannot be read.
    Unreadable,
    /// It ends inside its header or constant pool.
    Truncated,
    /// A constant pool entry has a tag no class file version defines.
    BadTag,
    /// `this_class` is not a class entry naming a UTF-8 entry.
    BadThisClass,
    /// The name is not a binary class name `java` can be given (empty
    /// parts, `.`, `;`, `[`, not UTF-8, or an option's leading `-`).
    BadName,
    /// The name is longer than [`NAME_MAX`].
    NameTooLong,
}

impl ClassError {
    /// The one-line reason.
    pub fn describe(self) -> &'static [u8] {
        match self {
            ClassError::NotAClass => b"not a class file",
            ClassError::Unreadable => b"the class file cannot be read",
            ClassError::Truncated => b"not a valid class file: it ends inside its constant pool",
            ClassError::BadTag => b"not a valid class file: unknown constant pool entry",
            ClassError::BadThisClass => b"not a valid class file: this_class names no class",
            ClassError::BadName => b"its class name cannot be given to java",
            ClassError::NameTooLong => b"its class name is too long",
        }
    }
}

/// Constant pool tags (JVMS 4.4).
const UTF8: u8 = 1;
const CLASS: u8 = 7;
const LONG: u8 = 5;
const DOUBLE: u8 = 6;
/// Offset of `constant_pool_count`.
const POOL_COUNT_AT: u64 = 8;

/// The file seen through one window.
struct Window<'r, R: ReadAt> {
    file: &'r mut R,
    buf: [u8; WINDOW],
    /// File offset of the window's first byte.
    start: u64,
    /// Bytes valid from `start`.
    len: usize,
}

impl<R: ReadAt> Window<'_, R> {
    /// Copies `out.len()` bytes at `at` into `out`, reading as needed.
    fn copy(&mut self, at: u64, out: &mut [u8]) -> Result<(), ClassError> {
        let mut done = 0;
        while done < out.len() {
            let pos = at + done as u64;
            if pos < self.start || pos - self.start >= self.len as u64 {
                let read = self.file.read_at(pos, &mut self.buf);
                self.len = read.ok_or(ClassError::Unreadable)?.min(WINDOW);
                self.start = pos;
                if self.len == 0 {
                    return Err(ClassError::Truncated);
                }
            }
            let have = &self.buf[(pos - self.start) as usize..self.len];
            let n = have.len().min(out.len() - done);
            out[done..done + n].copy_from_slice(&have[..n]);
            done += n;
        }
        Ok(())
    }

    fn u8(&mut self, at: u64) -> Result<u8, ClassError> {
        let mut b = [0u8; 1];
        self.copy(at, &mut b)?;
        Ok(b[0])
    }

    fn u16(&mut self, at: u64) -> Result<u16, ClassError> {
        let mut b = [0u8; 2];
        self.copy(at, &mut b)?;
        Ok(u16::from_be_bytes(b))
    }

    /// The offset of constant pool entry `index` (1-based), or with
    /// `None` the offset just past the pool. An index that is the unusable
    /// second slot of a long or double is not an entry.
    fn entry(&mut self, index: Option<u16>) -> Result<u64, ClassError> {
        let count = self.u16(POOL_COUNT_AT)?;
        let mut at = POOL_COUNT_AT + 2;
        let mut i: u16 = 1;
        while i < count {
            if index == Some(i) {
                return Ok(at);
            }
            let tag = self.u8(at)?;
            let (size, slots) = match tag {
                UTF8 => (3 + u64::from(self.u16(at + 1)?), 1),
                CLASS | 8 | 16 | 19 | 20 => (3, 1),
                15 => (4, 1),
                3 | 4 | 9..=12 | 17 | 18 => (5, 1),
                LONG | DOUBLE => (9, 2),
                _ => return Err(ClassError::BadTag),
            };
            at += size;
            i = i.saturating_add(slots);
        }
        match index {
            None if i == count => Ok(at),
            None => Err(ClassError::BadTag), // a long or double overran it
            Some(_) => Err(ClassError::BadThisClass),
        }
    }
}

/// The class's binary name in internal form (`com/x/Main`), copied into
/// `out`; checked to be a name `java` takes (see [`ClassError::BadName`]).
pub fn this_class<'o, R: ReadAt>(
    file: &mut R,
    out: &'o mut [u8; NAME_MAX],
) -> Result<&'o [u8], ClassError> {
    let mut w = Window {
        file,
        buf: [0; WINDOW],
        start: 0,
        len: 0,
    };
    let mut magic = [0u8; 8];
    let is_class = w.copy(0, &mut magic).is_ok() && probe(&magic).format == Format::JavaClass;
    if !is_class {
        return Err(ClassError::NotAClass);
    }
    // access_flags, then this_class.
    let end = w.entry(None)?;
    let class = w.u16(end + 2)?;
    let at = w.entry(Some(class))?;
    if w.u8(at)? != CLASS {
        return Err(ClassError::BadThisClass);
    }
    let name_index = w.u16(at + 1)?;
    let at = w.entry(Some(name_index))?;
    if w.u8(at)? != UTF8 {
        return Err(ClassError::BadThisClass);
    }
    let len = usize::from(w.u16(at + 1)?);
    let name = out.get_mut(..len).ok_or(ClassError::NameTooLong)?;
    w.copy(at + 3, name)?;
    if !is_binary_name(name) {
        return Err(ClassError::BadName);
    }
    Ok(name)
}

/// Whether `name` (internal form) is a class name `java` can be given on
/// its command line: no empty package or class part, none of the
/// characters JVMS 4.2.1 excludes (`.`, `;`, `[`), no NUL, no leading `-`
/// that `java` would read as an option, no leading `@` that the launcher
/// would expand as an argument file (`java -cp ROOT @opts` reads options
/// from the file `opts`). Its encoding is not checked: the
/// name must also be the file's path below the root, so `java` finds the
/// file by the same bytes.
pub fn is_binary_name(name: &[u8]) -> bool {
    !name.starts_with(b"-")
        && !name.starts_with(b"@")
        && name
            .split(|&b| b == b'/')
            .all(|part| !part.is_empty() && !part.iter().any(|b| b".;[\0".contains(b)))
}

/// The class path root of the class `name` (internal form) in the file at
/// `path`: the directory that holds its top package, when `path` ends
/// with `name.class` (`/src/com/x/Main.class` for `com/x/Main`: `/src`);
/// `.` or `/` when that is all that precedes it.
pub fn class_path_root<'p>(path: &'p [u8], name: &[u8]) -> Option<&'p [u8]> {
    let file = path.strip_suffix(b".class")?.strip_suffix(name)?;
    match file {
        b"" => Some(b"."),
        b"/" => Some(b"/"),
        _ => file.strip_suffix(b"/"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// A file read at most `step` bytes at a time.
    struct Bytes<'a> {
        bytes: &'a [u8],
        step: usize,
        reads: usize,
    }

    impl ReadAt for Bytes<'_> {
        fn read_at(&mut self, offset: u64, buf: &mut [u8; WINDOW]) -> Option<usize> {
            self.reads += 1;
            let rest = self.bytes.get(offset as usize..).unwrap_or(&[]);
            let n = rest.len().min(self.step).min(WINDOW);
            buf[..n].copy_from_slice(&rest[..n]);
            Some(n)
        }
    }

    fn name_of(bytes: &[u8], step: usize) -> Result<Vec<u8>, ClassError> {
        let mut file = Bytes {
            bytes,
            step,
            reads: 0,
        };
        let mut out = [0u8; NAME_MAX];
        this_class(&mut file, &mut out).map(<[u8]>::to_vec)
    }

    /// A class file as javac lays one out: a long (two slots), a method
    /// reference, a large string, the class's name after its class entry.
    fn class_file(name: &[u8], filler: usize) -> Vec<u8> {
        let mut v = b"\xca\xfe\xba\xbe\x00\x00\x00\x3d".to_vec();
        let utf8 = |v: &mut Vec<u8>, s: &[u8]| {
            v.push(UTF8);
            v.extend_from_slice(&(s.len() as u16).to_be_bytes());
            v.extend_from_slice(s);
        };
        // #1 long (#2 unusable), #3 methodref, #4 filler, #5 class -> #6, #6 name.
        v.extend_from_slice(&7u16.to_be_bytes());
        v.extend_from_slice(&[LONG, 0, 0, 0, 0, 0, 0, 0, 1]);
        v.extend_from_slice(&[10, 0, 5, 0, 4]);
        utf8(&mut v, &std::vec![b'x'; filler]);
        v.extend_from_slice(&[CLASS, 0, 6]);
        utf8(&mut v, name);
        // access_flags, this_class, super_class, and more the walk ignores.
        v.extend_from_slice(&[0, 0x21, 0, 5, 0, 0, 0, 0]);
        v
    }

    #[test]
    fn reads_the_name_through_any_window() {
        for filler in [0, 100, 5000, 65535] {
            let file = class_file(b"com/x/Main", filler);
            for step in [1, 2, 7, WINDOW] {
                assert_eq!(
                    name_of(&file, step).unwrap(),
                    b"com/x/Main",
                    "{filler} {step}"
                );
            }
        }
        // A small class is one read.
        let file = class_file(b"Hello", 10);
        let mut bytes = Bytes {
            bytes: &file,
            step: WINDOW,
            reads: 0,
        };
        this_class(&mut bytes, &mut [0; NAME_MAX]).unwrap();
        assert_eq!(bytes.reads, 1);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let file = class_file(b"com/x/Main", 300);
        for len in 0..file.len() - 6 {
            let got = name_of(&file[..len], 7);
            assert!(got.is_err(), "len {len}: {got:?}");
        }
    }

    #[test]
    fn hostile_pools_are_errors_not_panics() {
        let good = class_file(b"com/x/Main", 3);
        // Each byte set to each interesting value: an error or a name,
        // never a panic or an endless walk.
        for at in 8..good.len() {
            for value in [0u8, 1, 2, 5, 6, 7, 0x7f, 0xff] {
                let mut bad = good.clone();
                bad[at] = value;
                if let Ok(name) = name_of(&bad, 5) {
                    assert!(is_binary_name(&name), "{at} {value}");
                }
            }
        }
        // this_class pointing at the long's unusable slot, past the pool,
        // at itself, at a non-UTF-8 entry; a pool count of 0 and 65535.
        let this_at = good.len() - 6;
        for (index, want) in [
            (2u16, ClassError::BadThisClass),
            (7, ClassError::BadThisClass),
            (0, ClassError::BadThisClass),
            (3, ClassError::BadThisClass),
            (6, ClassError::BadThisClass),
        ] {
            let mut bad = good.clone();
            bad[this_at..this_at + 2].copy_from_slice(&index.to_be_bytes());
            assert_eq!(name_of(&bad, 7), Err(want), "this_class {index}");
        }
        let mut bad = good.clone();
        bad[8..10].copy_from_slice(&0u16.to_be_bytes());
        assert!(name_of(&bad, 7).is_err());
        bad[8..10].copy_from_slice(&u16::MAX.to_be_bytes());
        assert!(name_of(&bad, 7).is_err());
        // A long as the last entry overruns the count.
        let mut bad = good.clone();
        bad[8..10].copy_from_slice(&2u16.to_be_bytes());
        assert_eq!(name_of(&bad, 7), Err(ClassError::BadTag));
    }

    #[test]
    fn names_java_cannot_take_are_refused() {
        for name in [
            &b""[..],
            b"-version",
            b"@opts",
            b"com//Main",
            b"/Main",
            b"com/x/",
            b"a.b/C",
            b"a;b",
            b"[I",
            b"a\0b",
        ] {
            assert!(!is_binary_name(name), "{name:?}");
            assert_eq!(
                name_of(&class_file(name, 1), 7),
                Err(ClassError::BadName),
                "{name:?}"
            );
        }
        assert!(is_binary_name("caf\u{e9}/Main$1".as_bytes()));
        assert_eq!(
            name_of(&class_file(&[b'a'; NAME_MAX + 1], 1), 7),
            Err(ClassError::NameTooLong)
        );
    }

    #[test]
    fn roots() {
        let root = class_path_root;
        assert_eq!(
            root(b"/src/com/x/Main.class", b"com/x/Main"),
            Some(&b"/src"[..])
        );
        assert_eq!(root(b"/Main.class", b"Main"), Some(&b"/"[..]));
        assert_eq!(root(b"Main.class", b"Main"), Some(&b"."[..]));
        assert_eq!(root(b"com/x/Main.class", b"com/x/Main"), Some(&b"."[..]));
        assert_eq!(root(b"a b/Main.class", b"Main"), Some(&b"a b"[..]));
        assert_eq!(root(b"/src/Main.class", b"com/x/Main"), None);
        assert_eq!(root(b"/src/xcom/x/Main.class", b"com/x/Main"), None);
        assert_eq!(root(b"/src/link", b"Main"), None);
        assert_eq!(root(b"/src/Main.class (deleted)", b"Main"), None);
    }
}

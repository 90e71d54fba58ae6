//! Arbitrary blob, header and path through the whole decision: `decide`,
//! `walk` with a fake `System`, and `launch::build` for every candidate,
//! first into buffers as small as the trampoline's stack ones, then into
//! buffers of the size it asked for (which must then be enough).
//!
//! Input layout: `mode` (1 byte), blob length (u16 LE), blob, header length
//! (u16 LE), header, then NUL-separated strings: the binary's path, an
//! interpreter ID for the environment override (empty: none), then the
//! guest's arguments and environment entries (those with a `=`).

#![no_main]

mod common;

use binfmt_dispatcher_core::blob::Blob;
use binfmt_dispatcher_core::decide::{self, Candidate, Failure, System};
use binfmt_dispatcher_core::launch::{self, Buffers, BuildError, Guest, Strings};
use binfmt_dispatcher_core::probe;
use libfuzzer_sys::fuzz_target;

/// NUL-terminated strings standing in for argv or envp.
struct Fake(Vec<Vec<u8>>);

impl Fake {
    fn new<'a>(items: impl Iterator<Item = &'a [u8]>) -> Fake {
        Fake(items.map(|s| [s, b"\0"].concat()).collect())
    }
}

impl Strings for Fake {
    fn count(&self) -> usize {
        self.0.len()
    }
    fn ptr(&self, i: usize) -> *const u8 {
        self.0[i].as_ptr()
    }
    fn bytes(&self, i: usize) -> &[u8] {
        &self.0[i][..self.0[i].len() - 1]
    }
    fn with_nul(&self, i: usize) -> &[u8] {
        &self.0[i]
    }
}

/// Decides by the bits of `mode` what exists and what runs.
struct FakeSystem<'a> {
    blob: &'a Blob<'a>,
    mode: u8,
    guest: &'a Guest<'a, Fake>,
    env: &'a Fake,
    runs: usize,
    failures: usize,
}

impl System for FakeSystem<'_> {
    fn exists(&mut self, path: &[u8]) -> bool {
        assert_eq!(path.last(), Some(&0), "paths reach exists() with their NUL");
        (path.len() as u8 ^ self.mode) & 2 != 0
    }

    fn run(&mut self, candidate: &Candidate<'_>) -> Result<(), Failure<'static>> {
        self.runs += 1;
        assert_eq!(candidate.path.last(), Some(&0));
        build(self.blob, candidate, self.guest, self.env);
        match (self.mode >> 4) & 3 {
            0 => Ok(()),
            1 => Err(Failure::Missing),
            _ => Err(Failure::NotExecutable(13)),
        }
    }

    fn failed(&mut self, _: &Candidate<'_>, _: Failure<'_>) {
        self.failures += 1;
    }
}

/// `launch::build` as the trampoline calls it: stack-sized buffers first.
fn build(blob: &Blob<'_>, candidate: &Candidate<'_>, guest: &Guest<'_, Fake>, env: &Fake) {
    let mut argv = [core::ptr::null(); 64];
    let mut envp = [core::ptr::null(); 64];
    let mut arena = [0u8; 512];
    let mut small = Buffers {
        argv: &mut argv,
        envp: &mut envp,
        arena: &mut arena,
    };
    let sizes = match launch::build(blob, candidate, guest, Some(env), &mut small) {
        Ok(sizes) => sizes,
        Err(BuildError::Blob(_) | BuildError::NoSafeName) => return,
        Err(BuildError::TooSmall(sizes)) => {
            let mut argv = vec![core::ptr::null(); sizes.argv];
            let mut envp = vec![core::ptr::null(); sizes.envp];
            let mut arena = vec![0u8; sizes.arena];
            let mut big = Buffers {
                argv: &mut argv,
                envp: &mut envp,
                arena: &mut arena,
            };
            let again = launch::build(blob, candidate, guest, Some(env), &mut big);
            assert_eq!(again, Ok(sizes), "the sizes asked for must be enough");
            check(&argv, &envp, sizes);
            return;
        }
    };
    check(&argv, &envp, sizes);
}

/// Both lists end with their one NULL.
fn check(argv: &[*const u8], envp: &[*const u8], sizes: launch::Sizes) {
    assert!(sizes.argv >= 1 && sizes.envp >= 1);
    assert!(argv[sizes.argv - 1].is_null());
    assert!(envp[sizes.envp - 1].is_null());
    assert!(argv[..sizes.argv - 1].iter().all(|p| !p.is_null()));
    assert!(envp[..sizes.envp - 1].iter().all(|p| !p.is_null()));
}

fn take<'a>(data: &mut &'a [u8]) -> &'a [u8] {
    if data.len() < 2 {
        return core::mem::take(data);
    }
    let n = usize::from(u16::from_le_bytes([data[0], data[1]])).min(data.len() - 2);
    let (piece, rest) = data[2..].split_at(n);
    *data = rest;
    piece
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut data)) = data.split_first() else {
        return;
    };
    let raw = take(&mut data);
    let header = take(&mut data);
    let mut strings = data.split(|&b| b == 0);
    let path = strings.next().unwrap_or(b"");
    let env_interp = strings.next().filter(|s| !s.is_empty());
    let (env, args): (Vec<&[u8]>, Vec<&[u8]>) = strings.partition(|s| s.contains(&b'='));

    let owned;
    let bytes = if mode & 1 != 0 {
        owned = common::fixup(raw);
        &owned[..]
    } else {
        raw
    };
    let Ok(blob) = Blob::open(bytes) else {
        return;
    };
    let facts = probe::probe(header);
    let paths: Vec<&[u8]> = if mode & 4 != 0 {
        vec![path, b"/usr/bin/x"]
    } else {
        vec![path]
    };
    let subject = decide::Subject {
        facts,
        paths: &paths,
    };
    let full = decide::decide(&blob, &subject, env_interp);
    // Decided on the filename alone, the canonical path changes nothing.
    let name_only = decide::Subject {
        facts,
        paths: &paths[..1],
    };
    if let (Ok(decide::Partial::Decided(partial)), Ok(full)) = (
        decide::decide_without_canonical(&blob, &name_only, env_interp),
        full,
    ) {
        assert_eq!(partial, full, "decided without the canonical path");
    }
    let Ok(Some(plan)) = full else {
        return;
    };

    // The process argv as binfmt_misc gives it: dispatcher, filename, argv0, args.
    let mut argv: Vec<&[u8]> = vec![b"/usr/bin/binfmt-dispatcher", path, b"ARGV0"];
    argv.extend(args);
    let argv = Fake::new(argv.into_iter());
    let env = Fake::new(env.into_iter());
    let binary = [path, b"\0"].concat();
    let guest = Guest {
        binary: &binary,
        argv0: b"ARGV0\0",
        args: &argv,
        first_arg: if mode & 8 != 0 { 3 } else { 2 },
        execfd: (mode & 64 != 0).then_some(u32::from(mode)),
        // A set-id exec (mode bit 2): the binary named by its descriptor.
        by_descriptor: mode & 2 != 0,
        secure: mode & 2 != 0,
    };
    let mut sys = FakeSystem {
        blob: &blob,
        mode,
        guest: &guest,
        env: &env,
        runs: 0,
        failures: 0,
    };
    let page_size = if mode & 128 != 0 { 16384 } else { 4096 };
    if let Ok(outcome) = decide::walk(&blob, &plan, page_size, &mut sys) {
        match outcome {
            Ok(()) => assert!(sys.runs >= 1),
            // Nothing ran: every candidate tried was reported as failed.
            Err(_) => assert!(sys.failures >= sys.runs),
        }
    }
});

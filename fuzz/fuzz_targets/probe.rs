//! Arbitrary bytes as the first block of a binary: `probe` and
//! `interp_past` must never panic, and what they report must be consistent.

#![no_main]

use binfmt_dispatcher_core::probe::{self, Format, HEADER_LEN_MAX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len().min(HEADER_LEN_MAX)];
    let facts = probe::probe(data);
    let past = probe::interp_past(data);
    if let Some(interp) = facts.interp {
        // A NUL-free slice of the block, and then not "past" it.
        assert!(!interp.contains(&0));
        let start = interp.as_ptr() as usize - data.as_ptr() as usize;
        assert!(start + interp.len() < data.len());
        assert_eq!(data[start + interp.len()], 0);
        assert!(!past, "PT_INTERP found and past the block at once");
    }
    if facts.format == Format::Unknown {
        assert_eq!(facts, probe::Facts::UNKNOWN);
    }
    if facts.format != Format::Elf {
        assert!(!past);
        assert_eq!(facts.interp, None);
    }
    // needs_more never asks for more than HEADER_LEN_MAX holds, nor again
    // once the facts are complete.
    if data.len() == HEADER_LEN_MAX {
        assert!(!probe::needs_more(data, &facts, true) || past);
    }
    if facts.format == Format::Pe {
        assert_eq!(&data[..2], b"MZ");
    }
    // Reading a longer block never loses the facts of the header itself.
    for cut in [20, 64, 1024] {
        if cut < data.len() {
            let short = probe::probe(&data[..cut]);
            if short.format == Format::Elf {
                assert_eq!(short.machine, facts.machine);
                assert_eq!(short.class, facts.class);
            }
            if short.format == Format::Pe {
                assert_eq!(short.pe_machine, facts.pe_machine);
                assert!(!short.dotnet || facts.dotnet);
            }
        }
    }
});

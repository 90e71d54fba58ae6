//! Arbitrary bytes as a compiled cache: `Blob::open`, then every record
//! read through the bounds-checked reader. The first byte chooses whether
//! the checksums are fixed up first, so that the walk sees the layout
//! rather than a checksum error.

#![no_main]

mod common;

use binfmt_dispatcher_core::blob::Blob;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let owned;
    let bytes = if mode & 1 != 0 {
        owned = common::fixup(rest);
        &owned[..]
    } else {
        rest
    };
    if let Ok(blob) = Blob::open(bytes) {
        assert!(blob.as_bytes().len() <= bytes.len());
        common::walk_all(&blob);
        // A second walk reads the verified chunks from the bitmap.
        common::walk_all(&blob);
    }
});

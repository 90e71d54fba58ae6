//! The configuration embedded in the trampoline: the blob build.rs baked
//! in, or the one `binfmtctl compile --embed` put in its place.

use linux_raw_sys::elf::{PF_R, PT_LOAD};

use binfmt_dispatcher_core::blob::declared_len;

use super::Process;

/// The default configuration build.rs compiled, in a section of its own
/// that link.ld places last in the loaded segment, so that `binfmtctl
/// compile --embed` can put a longer one in its place by growing the
/// segment.
#[link_section = ".binfmt_config"]
static BAKED: [u8; include_bytes!(concat!(env!("OUT_DIR"), "/baked.blob")).len()] =
    *include_bytes!(concat!(env!("OUT_DIR"), "/baked.blob"));

/// The configuration embedded in this trampoline: the bytes from the start
/// of its section up to the length its header gives, within the loaded
/// segment (a bundle may follow it there). The section as built when no
/// readable segment holds it.
pub fn embedded_config(p: &Process) -> &'static [u8] {
    // Opaque to the compiler: from this address on are the bytes
    // `compile --embed` wrote, not `BAKED`'s initializer, which it would
    // otherwise read in their place (the blob's length, folded to the
    // built-in one's, cut longer configurations short on aarch64).
    let start = core::hint::black_box(BAKED.as_ptr() as usize);
    let Some(segment) = own_segment(p).filter(|s| s.0 <= start && start < s.0 + s.1) else {
        return &BAKED;
    };
    // SAFETY: the trampoline is linked at fixed addresses (ET_EXEC,
    // link.ld), so the kernel mapped its readable PT_LOAD at its p_vaddr,
    // from the file, for the life of the process, and nothing writes it
    // (one read-execute segment; binfmtctl replaces the file by rename,
    // never in place, and a file cut short under a running program faults
    // its code as much). `start` up to the segment's end lies inside it.
    // The pointer is made from the address, not from `BAKED`: past
    // `BAKED`'s length is the segment, not the static.
    let room = unsafe {
        core::slice::from_raw_parts(
            core::ptr::with_exposed_provenance::<u8>(start),
            segment.0 + segment.1 - start,
        )
    };
    // Cut at the blob's own length: the bytes past it may be a bundle whose
    // pages are moved away when one of its interpreters runs (rt::load), so
    // no reference kept may cover them. A length that does not fit leaves
    // the slice whole, for Blob::open to refuse.
    &room[..declared_len(room).unwrap_or(room.len())]
}

/// The trampoline's loaded segment that starts at file offset 0, as its
/// address and length in the file: where `compile --embed` and `bundle`
/// put what they add.
pub fn own_segment(p: &Process) -> Option<(usize, usize)> {
    p.phdrs
        .iter()
        .find(|ph| ph.p_type == PT_LOAD && ph.p_flags & PF_R != 0 && ph.p_offset == 0)
        .map(|ph| (ph.p_vaddr, ph.p_filesz))
}

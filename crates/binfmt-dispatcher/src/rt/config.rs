//! The configuration embedded in the trampoline: the blob build.rs baked
//! in, or the one `binfmtctl compile --embed` put in its place.

use linux_raw_sys::elf::{PF_R, PT_LOAD};

use super::Process;

/// The default configuration build.rs compiled, in a section of its own
/// that link.ld places last in the loaded segment, so that `binfmtctl
/// compile --embed` can put a longer one in its place by growing the
/// segment.
#[link_section = ".binfmt_config"]
static BAKED: [u8; include_bytes!(concat!(env!("OUT_DIR"), "/baked.blob")).len()] =
    *include_bytes!(concat!(env!("OUT_DIR"), "/baked.blob"));

/// The configuration embedded in this trampoline: the bytes from the start
/// of its section to the end of the loaded segment (the blob's header says
/// how many of them are the blob). The section as built when no readable
/// segment holds it.
pub fn embedded_config(p: &Process) -> &'static [u8] {
    let start = BAKED.as_ptr() as usize;
    for ph in p.phdrs {
        let end = ph.p_vaddr.saturating_add(ph.p_filesz);
        if ph.p_type == PT_LOAD && ph.p_flags & PF_R != 0 && ph.p_vaddr <= start && start < end {
            // SAFETY: the trampoline is linked at fixed addresses (ET_EXEC,
            // link.ld), so the kernel mapped this readable PT_LOAD at its
            // p_vaddr, from the file, for the life of the process, and
            // nothing writes it (one read-execute segment; binfmtctl
            // replaces the file by rename, never in place, and a file cut
            // short under a running program faults its code as much).
            // `start .. end` lies inside it. The pointer is made from the
            // address, not from `BAKED`: past `BAKED`'s length is the
            // segment, not the static.
            return unsafe {
                core::slice::from_raw_parts(
                    core::ptr::with_exposed_provenance::<u8>(start),
                    end - start,
                )
            };
        }
    }
    &BAKED
}

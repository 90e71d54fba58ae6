//! Running an interpreter bundled into the trampoline, for a root that
//! lacks it (a foreign container or chroot; docs/decisions.md, "Foreign
//! containers"): the process becomes that static PIE as `execve` of its
//! file would have made it. Its segments are moved, not copied, out of the
//! trampoline's own mapping, so its pages stay the page cache of the file
//! the kernel pinned, shared by every process that runs it; a new initial
//! stack goes below the current one, and the interpreter starts at its
//! entry. What to move where is core's [`bundle::plan`].

use core::ptr::{with_exposed_provenance, with_exposed_provenance_mut};

use linux_raw_sys::auxvec as aux;
use linux_raw_sys::general as sys;
use rustix::io::Errno;
use rustix::mm::{self, MapFlags, MprotectFlags, MremapFlags, ProtFlags};

use binfmt_dispatcher_core::bundle::{self, Bundle, LoadPlan, Segment, PF_R, PF_W, PF_X};
use binfmt_dispatcher_core::driver::ExecCall;

use super::{arch, config, Process};

/// A bundled image in the trampoline's mapping: its address and length.
#[derive(Clone, Copy)]
pub struct Image {
    addr: usize,
    len: usize,
    /// The bundle's pages, from its first image to the segment's end:
    /// unmapped before the jump, so that no other interpreter stays mapped
    /// executable at a known address in the one that runs.
    bundle: (usize, usize),
}

/// The image bundled for `path` (NUL-terminated) in this trampoline.
pub fn image_for(p: &Process, path: &[u8]) -> Option<Image> {
    let (addr, len) = config::own_segment(p)?;
    // SAFETY: the trampoline's segment is mapped readable from file offset
    // 0 at its address for the life of the process (see
    // config::embedded_config); the slice is dropped before anything of it
    // moves.
    let segment = unsafe { core::slice::from_raw_parts(with_exposed_provenance::<u8>(addr), len) };
    let bundle = Bundle::find(segment)?;
    let image = bundle.image_for(path)?;
    let first = addr + bundle.start.next_multiple_of(bundle::ALIGN);
    Some(Image {
        addr: addr + image.offset,
        len: image.len,
        bundle: (first, addr + len - first),
    })
}

/// Runs `image` with `call`'s argv and envp; returns only when it cannot,
/// with why. Descriptors up to `highest_fd` that are close-on-exec are
/// closed first, as `execve` would close them. Out of line: only an exec
/// whose interpreter the root lacks comes here.
#[cold]
#[inline(never)]
pub fn run(p: &Process, image: Image, call: &ExecCall<'_>, highest_fd: u32) -> Errno {
    let page = p.facts.page_size;
    // SAFETY: `image_for` found the image inside the mapped segment; the
    // slice is dropped when `plan` returns, before any of it moves.
    let bytes = unsafe {
        core::slice::from_raw_parts(with_exposed_provenance::<u8>(image.addr), image.len)
    };
    let Ok(plan) = bundle::plan(bytes, arch::ELF_MACHINE, page) else {
        return Errno::NOEXEC;
    };
    // Checked before anything moves: `enter` writes the new stack below
    // the trampoline's own, and past RLIMIT_STACK that write would fault.
    let words = stack_words(p, call);
    if !stack_fits(p, words, page) {
        return Errno::TOOBIG;
    }
    match load(p, image, &plan, call, words) {
        Ok((stack, entry)) => {
            // SAFETY: the bundle's pages (the images' and the index's),
            // which nothing refers to any more: the configuration and the
            // code lie before them; the image's own pages have moved.
            let _ =
                unsafe { mm::munmap(with_exposed_provenance_mut(image.bundle.0), image.bundle.1) };
            close_on_exec(highest_fd);
            // SAFETY: the image is in place at `base` (load), and `stack`
            // holds the argc, argv, envp and auxv it starts with; their
            // strings lie in the initial stack, the blob and the exec
            // buffers, above the new stack pointer and never freed.
            unsafe { arch::enter(stack, words, entry) }
        }
        Err(e) => e,
    }
}

/// Reserves the image's span, writes its initial stack of `words` words
/// and puts its segments in place: the stack and the entry.
fn load(
    p: &Process,
    image: Image,
    plan: &LoadPlan,
    call: &ExecCall<'_>,
    words: usize,
) -> Result<(*const usize, usize), Errno> {
    // SAFETY: a fresh anonymous reservation, aliased by nothing; where
    // the kernel puts it (below the mmap base) is where it would have put
    // the static PIE itself.
    let base = unsafe {
        mm::mmap_anonymous(
            core::ptr::null_mut(),
            plan.span,
            ProtFlags::empty(),
            MapFlags::PRIVATE,
        )?
    } as usize;
    let stack = initial_stack(p, (call, words), plan, base)?;
    // Last to first: a file page that two segments share is copied for the
    // later one before the earlier one moves it.
    for segment in plan.segments[..plan.count].iter().rev() {
        place(segment, image.addr, base, p.facts.page_size)?;
    }
    Ok((stack, base + plan.entry))
}

/// Puts one segment at `base` plus its address: its file pages moved from
/// the image at `image`, its first copied when the segment before shares
/// it, the rest of its last page cleared and its zero pages mapped, then
/// its rights.
fn place(s: &Segment, image: usize, base: usize, page: usize) -> Result<(), Errno> {
    let (src, dst) = (image + s.file, base + s.addr);
    let writable = ProtFlags::READ | ProtFlags::WRITE;
    let mut done = 0;
    if s.copy_first {
        // SAFETY: `dst` is a page of the reservation `load` made for this
        // image, replaced by a fresh anonymous page; `src` is a page of the
        // trampoline's mapped segment, still in place (segments are placed
        // last to first). The two do not overlap.
        unsafe {
            mm::mmap_anonymous(
                with_exposed_provenance_mut(dst),
                page,
                writable,
                MapFlags::PRIVATE | MapFlags::FIXED,
            )?;
            core::ptr::copy_nonoverlapping(
                with_exposed_provenance::<u8>(src),
                with_exposed_provenance_mut::<u8>(dst),
                page,
            );
        }
        done = page;
    }
    if s.file_len > done {
        let len = s.file_len - done;
        // SAFETY: moves pages of the trampoline's segment that nothing
        // refers to (the image's bytes, read only through raw addresses)
        // onto the reservation, which nothing else uses.
        unsafe {
            mm::mremap_fixed(
                with_exposed_provenance_mut(src + done),
                len,
                len,
                MremapFlags::MAYMOVE,
                with_exposed_provenance_mut(dst + done),
            )?;
        }
    }
    if s.zero_from & (page - 1) != 0 {
        let from = base + s.zero_from;
        let page_start = from & !(page - 1);
        // SAFETY: the segment's last file page, just placed and now
        // writable (private: the file is not written); the bytes past its
        // file bytes are cleared, as the kernel clears them.
        unsafe {
            mm::mprotect(
                with_exposed_provenance_mut(page_start),
                page,
                MprotectFlags::READ | MprotectFlags::WRITE,
            )?;
            core::ptr::write_bytes(
                with_exposed_provenance_mut::<u8>(from),
                0,
                page_start + page - from,
            );
        }
    }
    let prot = prot_of(s.flags);
    if s.anon.1 > 0 {
        // SAFETY: fresh zero pages over the reservation past the file pages.
        unsafe {
            mm::mmap_anonymous(
                with_exposed_provenance_mut(base + s.anon.0),
                s.anon.1,
                prot,
                MapFlags::PRIVATE | MapFlags::FIXED,
            )?;
        }
    }
    // SAFETY: changes the rights of the pages just placed, which nothing
    // else uses.
    unsafe {
        mm::mprotect(
            with_exposed_provenance_mut(dst),
            s.file_len,
            MprotectFlags::from_bits_retain(prot.bits()),
        )
    }
}

/// The mapping rights of a segment's `PF_*` flags.
fn prot_of(flags: u32) -> ProtFlags {
    let mut prot = ProtFlags::empty();
    for (flag, right) in [
        (PF_R, ProtFlags::READ),
        (PF_W, ProtFlags::WRITE),
        (PF_X, ProtFlags::EXEC),
    ] {
        if flags & flag != 0 {
            prot |= right;
        }
    }
    prot
}

/// The initial stack of the image loaded at `base`, in a fresh mapping:
/// argc, `call`'s argv and envp, and this process's auxv as a fresh
/// `execve` of the interpreter's file would have it (its program headers
/// and entry; no `AT_EXECFD`, `AT_FLAGS` 0, `AT_EXECFN` its path): the
/// [`stack_words`] of `call`.
fn initial_stack(
    p: &Process,
    (call, words): (&ExecCall<'_>, usize),
    plan: &LoadPlan,
    base: usize,
) -> Result<*const usize, Errno> {
    let auxv = auxv_pairs(p);
    // SAFETY: a fresh anonymous mapping, aliased by nothing, never freed:
    // arch::enter copies it onto the stack.
    let stack = unsafe {
        let mem = mm::mmap_anonymous(
            core::ptr::null_mut(),
            words * 8,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE,
        )?;
        core::slice::from_raw_parts_mut(mem.cast::<usize>(), words)
    };
    let (argc, rest) = stack.split_at_mut(1);
    argc[0] = call.argv.len() - 1;
    let (argv, rest) = rest.split_at_mut(call.argv.len());
    let (envp, rest) = rest.split_at_mut(call.envp.len());
    for (to, from) in argv
        .iter_mut()
        .zip(call.argv)
        .chain(envp.iter_mut().zip(call.envp))
    {
        *to = *from as usize;
    }
    for (to, &[key, value]) in rest.chunks_exact_mut(2).zip(auxv) {
        let value = match key as u32 {
            aux::AT_PHDR => base + plan.phdr,
            aux::AT_PHNUM => plan.phnum,
            aux::AT_ENTRY => base + plan.entry,
            aux::AT_BASE | aux::AT_FLAGS => 0,
            aux::AT_EXECFN => call.path.as_ptr() as usize,
            _ => value,
        };
        to.copy_from_slice(&[key, value]);
    }
    Ok(stack.as_ptr())
}

/// The length in words of the initial stack [`initial_stack`] writes for
/// `call`: argc, argv, envp and the auxv pairs.
fn stack_words(p: &Process, call: &ExecCall<'_>) -> usize {
    1 + call.argv.len() + call.envp.len() + 2 * auxv_pairs(p).count()
}

/// The stack a bundled interpreter is left at least, past its initial
/// stack: for its own start-up (qemu's and glibc's), which under a limit
/// so tight would fault where it cannot say why.
const STACK_RESERVE: u64 = 64 * 1024;

/// Whether `words` more words below the stack pointer, and
/// [`STACK_RESERVE`] and a page to spare, stay within RLIMIT_STACK. Unlike
/// `execve`, which starts a fresh stack, the new initial stack goes below
/// the trampoline's, whose strings it points to: both must fit. The
/// trampoline's starts at its `AT_EXECFN` string, which the kernel puts at
/// the top; without one, or with no limit, it fits.
fn stack_fits(p: &Process, words: usize, page: usize) -> bool {
    let Some(top) = p
        .facts
        .execfn
        .map(|f| f.as_ptr() as usize + f.count_bytes() + 1)
    else {
        return true;
    };
    let mut limit = sys::rlimit64 {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit64 of this process (pid 0) with no new limit, writing
    // the current one into `limit`, a live local of the kernel's layout.
    let ret = unsafe {
        arch::syscall5(
            sys::__NR_prlimit64,
            0,
            sys::RLIMIT_STACK as usize,
            0,
            core::ptr::addr_of_mut!(limit) as usize,
            0,
        )
    };
    // The stack pointer, near enough: `enter` runs a few frames deeper,
    // which the page to spare covers.
    let here = core::ptr::addr_of!(limit) as usize;
    let needed =
        top.saturating_sub(here) as u64 + (words as u64 + 2) * 8 + page as u64 + STACK_RESERVE;
    ret != 0 || limit.rlim_cur == sys::RLIM64_INFINITY as u64 || needed <= limit.rlim_cur
}

/// The process's auxv pairs, without `AT_EXECFD` (the interpreter opens
/// the binary itself, as after `execve`), ending with `AT_NULL`.
fn auxv_pairs(p: &Process) -> impl Iterator<Item = &'static [usize; 2]> + Clone {
    // SAFETY: `p.auxv` points at the kernel's auxv: pairs ending with
    // AT_NULL, on the initial stack, which lives as long as the process.
    let all = unsafe {
        let mut n = 0;
        while *p.auxv.add(2 * n) != aux::AT_NULL as usize {
            n += 1;
        }
        core::slice::from_raw_parts(p.auxv.cast::<[usize; 2]>(), n + 1)
    };
    all.iter().filter(|pair| pair[0] != aux::AT_EXECFD as usize)
}

/// Closes the descriptors from 0 to `highest` that are close-on-exec:
/// exactly those `execve` would close, since the kernel closed every other
/// close-on-exec descriptor when it started the trampoline, and the
/// trampoline's own are all at most `highest`.
fn close_on_exec(highest: u32) {
    for fd in 0..=highest {
        let closing = rustix::io::fcntl_getfd(super::borrowed(fd))
            .is_ok_and(|flags| flags.contains(rustix::io::FdFlags::CLOEXEC));
        if closing {
            // SAFETY: a close-on-exec descriptor of the trampoline's
            // own, which nothing uses after this (the process becomes the
            // interpreter next).
            unsafe { rustix::io::close(fd as i32) };
        }
    }
}

//! Start-up: the initial stack the kernel hands `_start` (argc, argv,
//! envp, auxv), read into a [`Process`] before anything else runs.

use core::ffi::CStr;

use linux_raw_sys::auxvec as aux;
use linux_raw_sys::elf::Elf_Phdr;

use binfmt_dispatcher_core::driver;

use super::CStrList;

/// What the kernel told the process at start.
pub struct Process {
    /// argv, envp and the auxiliary vector's facts, as the exec path
    /// takes them.
    pub facts: driver::Process<'static, CStrList>,
    /// `AT_PHDR` and `AT_PHNUM`: this program's headers, as loaded.
    pub(super) phdrs: &'static [Elf_Phdr],
    /// The auxiliary vector, for the initial stack of a bundled
    /// interpreter (rt::load).
    pub(super) auxv: *const usize,
}

/// Called by `_start` with the initial stack pointer.
pub(super) extern "C" fn entry(sp: *const usize) -> ! {
    // SAFETY: at process entry `sp` points at argc, followed by argc argv
    // pointers and a NULL, the envp pointers and a NULL, then the auxv
    // pairs ending with AT_NULL: the layout the SysV ABI and Linux guarantee.
    let process = unsafe {
        let argc = *sp;
        let argv = sp.add(1).cast::<*const u8>();
        let envp = argv.add(argc + 1);
        let mut envc = 0;
        while !(*envp.add(envc)).is_null() {
            envc += 1;
        }
        let mut p = Process {
            facts: driver::Process {
                args: CStrList {
                    ptrs: core::slice::from_raw_parts(argv, argc),
                },
                env: CStrList {
                    ptrs: core::slice::from_raw_parts(envp, envc),
                },
                envp: core::slice::from_raw_parts(envp, envc + 1),
                execfd: None,
                flags: 0,
                secure: false,
                page_size: 4096,
                execfn: None,
            },
            phdrs: &[],
            auxv: envp.add(envc + 1).cast::<usize>(),
        };
        read_auxv(p.auxv, &mut p);
        p
    };
    crate::main(&process)
}

/// Reads the auxiliary vector into `p`.
///
/// # Safety
/// `aux` points at the process's auxv, as the kernel laid it out.
#[inline(always)] // one caller: out of line, it grew the aarch64 and riscv64 builds
unsafe fn read_auxv(mut aux: *const usize, process: &mut Process) {
    let p = &mut process.facts;
    let (mut phdr, mut phnum, mut phent) = (0, 0, 0);
    // SAFETY: the auxv is key/value pairs ending with AT_NULL; AT_EXECFN
    // points at a NUL-terminated path on the initial stack, AT_PHDR and
    // AT_PHNUM describe the program headers, which the kernel mapped with
    // the image: both live as long as the process.
    unsafe {
        loop {
            let (key, value) = (*aux, *aux.add(1));
            match key as u32 {
                aux::AT_NULL => break,
                aux::AT_EXECFD => p.execfd = u32::try_from(value).ok(),
                aux::AT_FLAGS => p.flags = value,
                aux::AT_SECURE => p.secure = value != 0,
                aux::AT_PAGESZ => p.page_size = value,
                aux::AT_EXECFN if value != 0 => {
                    p.execfn = Some(CStr::from_ptr(value as *const _));
                }
                aux::AT_PHDR => phdr = value,
                aux::AT_PHNUM => phnum = value,
                aux::AT_PHENT => phent = value,
                _ => {}
            }
            aux = aux.add(2);
        }
        // AT_PHDR points at the program headers inside the loaded image
        // (link.ld maps them with FILEHDR PHDRS), AT_PHNUM counts them;
        // trusted only when the entry size is the one this build expects.
        if phdr != 0 && phent == core::mem::size_of::<Elf_Phdr>() {
            process.phdrs = core::slice::from_raw_parts(phdr as *const Elf_Phdr, phnum);
        }
    }
}

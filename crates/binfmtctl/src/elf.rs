//! Tiny static ELF executables for `binfmtctl bench`, written without a
//! compiler: one ELF64 header, one read-execute PT_LOAD of the whole file,
//! a few hand-assembled instructions.
//!
//! - `exit0`: `exit_group(0)`, the final interpreter that exits at once;
//! - `floor`: `execve(PATH, argv, envp)` with its own argv and environment,
//!   then `exit_group(127)` if that fails: the smallest possible trampoline.
//!
//! For x86_64 and aarch64 (little-endian).

/// An instruction set these programs can be written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// x86-64.
    X86_64,
    /// AArch64, little-endian.
    Aarch64,
}

impl Isa {
    /// The machine this binfmtctl was built for, if supported.
    pub fn host() -> Option<Isa> {
        if cfg!(target_arch = "x86_64") {
            Some(Isa::X86_64)
        } else if cfg!(all(target_arch = "aarch64", target_endian = "little")) {
            Some(Isa::Aarch64)
        } else {
            None
        }
    }

    /// The other one: a foreign architecture on this host.
    pub fn other(self) -> Isa {
        match self {
            Isa::X86_64 => Isa::Aarch64,
            Isa::Aarch64 => Isa::X86_64,
        }
    }

    /// `e_machine`.
    pub fn machine(self) -> u16 {
        match self {
            Isa::X86_64 => 62,
            Isa::Aarch64 => 183,
        }
    }

    /// QEMU's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Isa::X86_64 => "x86_64",
            Isa::Aarch64 => "aarch64",
        }
    }
}

/// Where the image is loaded.
const BASE: u64 = 0x40_0000;
/// Size of the ELF header plus one program header: the code starts there.
const CODE_OFF: usize = 64 + 56;

/// A static ELF64 executable whose code is `code`, entered at its start.
fn image(isa: Isa, code: &[u8]) -> Vec<u8> {
    let size = CODE_OFF + code.len();
    let mut f = vec![0u8; CODE_OFF];
    f[..16].copy_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    f[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f[18..20].copy_from_slice(&isa.machine().to_le_bytes());
    f[20..24].copy_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
    f[24..32].copy_from_slice(&(BASE + CODE_OFF as u64).to_le_bytes()); // e_entry
    f[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    f[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    f[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    f[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
    let ph = &mut f[64..120];
    ph[0..4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    ph[4..8].copy_from_slice(&5u32.to_le_bytes()); // PF_R | PF_X
    ph[16..24].copy_from_slice(&BASE.to_le_bytes()); // p_vaddr
    ph[24..32].copy_from_slice(&BASE.to_le_bytes()); // p_paddr
    ph[32..40].copy_from_slice(&(size as u64).to_le_bytes()); // p_filesz
    ph[40..48].copy_from_slice(&(size as u64).to_le_bytes()); // p_memsz
    ph[48..56].copy_from_slice(&0x1000u64.to_le_bytes()); // p_align
    f.extend_from_slice(code);
    f
}

fn words(insns: &[u32]) -> Vec<u8> {
    insns.iter().flat_map(|i| i.to_le_bytes()).collect()
}

/// `exit_group(0)`.
pub fn exit0(isa: Isa) -> Vec<u8> {
    let code = match isa {
        Isa::X86_64 => vec![
            0x31, 0xff, // xor edi, edi
            0xb8, 0xe7, 0x00, 0x00, 0x00, // mov eax, 231 (exit_group)
            0x0f, 0x05, // syscall
        ],
        Isa::Aarch64 => words(&[
            0xd280_0000, // movz x0, #0
            0xd280_0bc8, // movz x8, #94 (exit_group)
            0xd400_0001, // svc #0
        ]),
    };
    image(isa, &code)
}

/// `execve(path, argv, envp)` with the argv and environment it was given,
/// else `exit_group(127)`. `path` must not contain NUL.
pub fn floor(isa: Isa, path: &[u8]) -> Vec<u8> {
    assert!(!path.contains(&0), "a path holds no NUL");
    let mut code = match isa {
        // The kernel enters with rsp at argc, argv[] after it, then a NULL,
        // then envp[].
        Isa::X86_64 => {
            let mut c = vec![
                0x48, 0x8b, 0x3c, 0x24, // mov rdi, [rsp]          argc
                0x48, 0x8d, 0x74, 0x24, 0x08, // lea rsi, [rsp+8]  argv
                0x48, 0x8d, 0x54, 0xfe, 0x08, // lea rdx, [rsi+rdi*8+8]  envp
                0x48, 0x8d, 0x3d, 0, 0, 0, 0, // lea rdi, [rip+path]
                0xb8, 0x3b, 0x00, 0x00, 0x00, // mov eax, 59 (execve)
                0x0f, 0x05, // syscall
                0xbf, 0x7f, 0x00, 0x00, 0x00, // mov edi, 127
                0xb8, 0xe7, 0x00, 0x00, 0x00, // mov eax, 231 (exit_group)
                0x0f, 0x05, // syscall
            ];
            // rip-relative from the end of the lea (offset 21) to the path
            // right after the code.
            let rel = (c.len() - 21) as u32;
            c[17..21].copy_from_slice(&rel.to_le_bytes());
            c
        }
        Isa::Aarch64 => {
            // adr x0, path: the path follows the 10 instructions; adr is
            // the 5th, so the path is 6 instructions (24 bytes) ahead.
            let offset: u32 = 24;
            let adr = 0x1000_0000 | ((offset & 3) << 29) | ((offset >> 2) << 5);
            words(&[
                0xf940_03e9, // ldr x9, [sp]            argc
                0x9100_23e1, // add x1, sp, #8          argv
                0x8b09_0c22, // add x2, x1, x9, lsl #3
                0x9100_2042, // add x2, x2, #8          envp
                adr,         // adr x0, path
                0xd280_1ba8, // movz x8, #221 (execve)
                0xd400_0001, // svc #0
                0xd280_0fe0, // movz x0, #127
                0xd280_0bc8, // movz x8, #94 (exit_group)
                0xd400_0001, // svc #0
            ])
        }
    };
    code.extend_from_slice(path);
    code.push(0);
    image(isa, &code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_consistent() {
        for isa in [Isa::X86_64, Isa::Aarch64] {
            let f = floor(isa, b"/x/exit0");
            assert_eq!(&f[..4], b"\x7fELF");
            assert_eq!(u16::from_le_bytes([f[18], f[19]]), isa.machine());
            assert!(f.ends_with(b"/x/exit0\0"));
            let filesz = u64::from_le_bytes(f[96..104].try_into().unwrap());
            assert_eq!(filesz as usize, f.len());
            assert_eq!(
                exit0(isa).len(),
                CODE_OFF + if isa == Isa::X86_64 { 9 } else { 12 }
            );
        }
        // aarch64: the path right after the 10 instructions.
        assert_eq!(floor(Isa::Aarch64, b"/p").len(), CODE_OFF + 40 + 3);
    }
}

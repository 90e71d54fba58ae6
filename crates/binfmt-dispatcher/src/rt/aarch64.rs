//! AArch64: the process entry point `_start`, the raw syscall, and the
//! `mem*`/`strlen` symbols the compiler emits calls to.

use core::arch::{asm, global_asm};

global_asm!(
    ".globl _start",
    ".type _start,%function",
    "_start:",
    "mov x29, #0",
    "mov x30, #0",
    "mov x0, sp",
    "bl {entry}",
    "brk #1",
    ".globl memcpy",
    ".type memcpy,%function",
    "memcpy:",
    "mov x3, x0",
    "cbz x2, 2f",
    "1:",
    "ldrb w4, [x1], #1",
    "strb w4, [x3], #1",
    "subs x2, x2, #1",
    "b.ne 1b",
    "2:",
    "ret",
    ".globl memmove",
    ".type memmove,%function",
    "memmove:",
    "cmp x0, x1",
    "b.ls memcpy",
    "add x5, x1, x2",
    "cmp x0, x5",
    "b.hs memcpy",
    "add x1, x1, x2",
    "add x3, x0, x2",
    "cbz x2, 4f",
    "3:",
    "ldrb w4, [x1, #-1]!",
    "strb w4, [x3, #-1]!",
    "subs x2, x2, #1",
    "b.ne 3b",
    "4:",
    "ret",
    ".globl memset",
    ".type memset,%function",
    "memset:",
    "mov x3, x0",
    "cbz x2, 6f",
    "5:",
    "strb w1, [x3], #1",
    "subs x2, x2, #1",
    "b.ne 5b",
    "6:",
    "ret",
    ".globl memcmp",
    ".type memcmp,%function",
    ".globl bcmp",
    ".type bcmp,%function",
    "memcmp:",
    "bcmp:",
    "mov w3, #0",
    "cbz x2, 8f",
    "7:",
    "ldrb w3, [x0], #1",
    "ldrb w4, [x1], #1",
    "subs w3, w3, w4",
    "b.ne 8f",
    "subs x2, x2, #1",
    "b.ne 7b",
    "8:",
    "mov w0, w3",
    "ret",
    ".globl strlen",
    ".type strlen,%function",
    "strlen:",
    "mov x1, x0",
    "9:",
    "ldrb w2, [x1], #1",
    "cbnz w2, 9b",
    "sub x0, x1, x0",
    "sub x0, x0, #1",
    "ret",
    entry = sym super::start::entry,
);

/// `syscall(nr, a, b, c, d, e)`, returning the raw result (negative errno
/// on failure).
///
/// # Safety
/// The caller guarantees the arguments are valid for syscall `nr`.
#[inline(always)]
pub unsafe fn syscall5(nr: u32, a: usize, b: usize, c: usize, d: usize, e: usize) -> isize {
    let ret: isize;
    // SAFETY: the caller vouches for the arguments; the asm follows
    // aarch64's Linux syscall convention (number in x8, arguments in
    // x0 to x4, result in x0); the kernel preserves every other register.
    unsafe {
        asm!("svc 0", in("x8") nr as usize, inlateout("x0") a as isize => ret, in("x1") b,
             in("x2") c, in("x3") d, in("x4") e, options(nostack));
    }
    ret
}

/// The ELF machine of this architecture's programs.
pub const ELF_MACHINE: u16 = 183;

/// Starts a loaded program: copies the `words` of its initial stack from
/// `stack` to just below the current stack pointer, aligned to 16 bytes,
/// moves the stack pointer there and jumps to `entry` with the registers
/// the ABI's process entry expects (no `rtld_fini`: 0).
///
/// # Safety
/// `stack` holds `words` words (argc, argv, envp and auxv, as the kernel
/// lays them out), whose pointers stay valid above the new stack pointer,
/// and `entry` is the entry point of a program loaded in this process.
pub unsafe fn enter(stack: *const usize, words: usize, entry: usize) -> ! {
    // SAFETY: the caller vouches for the stack and the entry; the copy
    // goes below the stack pointer, into the stack's own growth area,
    // over frames that are dead once the jump is made.
    unsafe {
        asm!(
            "mov x3, sp",
            "sub x3, x3, x1, lsl #3",
            "and x3, x3, #0xfffffffffffffff0",
            "mov sp, x3",
            "1:",
            "cbz x1, 2f",
            "ldr x4, [x0], #8",
            "str x4, [x3], #8",
            "sub x1, x1, #1",
            "b 1b",
            "2:",
            "mov x0, #0",
            "mov x29, #0",
            "mov x30, #0",
            "br x2",
            in("x0") stack, in("x1") words, in("x2") entry,
            options(noreturn)
        )
    }
}

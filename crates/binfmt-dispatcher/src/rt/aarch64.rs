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

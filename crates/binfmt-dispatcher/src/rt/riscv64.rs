//! RISC-V 64: the process entry point `_start`, the raw syscall, and the
//! `mem*`/`strlen` symbols the compiler emits calls to.

use core::arch::{asm, global_asm};

global_asm!(
    ".globl _start",
    ".type _start,@function",
    "_start:",
    "mv fp, zero",
    "mv ra, zero",
    "mv a0, sp",
    "andi sp, sp, -16",
    "call {entry}",
    "unimp",
    ".globl memcpy",
    ".type memcpy,@function",
    "memcpy:",
    "mv t0, a0",
    "beqz a2, 2f",
    "1:",
    "lbu t1, 0(a1)",
    "sb t1, 0(t0)",
    "addi a1, a1, 1",
    "addi t0, t0, 1",
    "addi a2, a2, -1",
    "bnez a2, 1b",
    "2:",
    "ret",
    ".globl memmove",
    ".type memmove,@function",
    "memmove:",
    "bleu a0, a1, memcpy",
    "add t2, a1, a2",
    "bgeu a0, t2, memcpy",
    "add a1, a1, a2",
    "add t0, a0, a2",
    "beqz a2, 4f",
    "3:",
    "addi a1, a1, -1",
    "addi t0, t0, -1",
    "lbu t1, 0(a1)",
    "sb t1, 0(t0)",
    "addi a2, a2, -1",
    "bnez a2, 3b",
    "4:",
    "ret",
    ".globl memset",
    ".type memset,@function",
    "memset:",
    "mv t0, a0",
    "beqz a2, 6f",
    "5:",
    "sb a1, 0(t0)",
    "addi t0, t0, 1",
    "addi a2, a2, -1",
    "bnez a2, 5b",
    "6:",
    "ret",
    ".globl memcmp",
    ".type memcmp,@function",
    ".globl bcmp",
    ".type bcmp,@function",
    "memcmp:",
    "bcmp:",
    "li t0, 0",
    "beqz a2, 8f",
    "7:",
    "lbu t0, 0(a0)",
    "lbu t1, 0(a1)",
    "sub t0, t0, t1",
    "bnez t0, 8f",
    "addi a0, a0, 1",
    "addi a1, a1, 1",
    "addi a2, a2, -1",
    "bnez a2, 7b",
    "8:",
    "mv a0, t0",
    "ret",
    ".globl strlen",
    ".type strlen,@function",
    "strlen:",
    "mv t0, a0",
    "9:",
    "lbu t1, 0(t0)",
    "addi t0, t0, 1",
    "bnez t1, 9b",
    "sub a0, t0, a0",
    "addi a0, a0, -1",
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
    // riscv64's Linux syscall convention (number in a7, arguments in
    // a0 to a4, result in a0); the kernel preserves every other register.
    unsafe {
        asm!("ecall", in("a7") nr as usize, inlateout("a0") a as isize => ret, in("a1") b,
             in("a2") c, in("a3") d, in("a4") e, options(nostack));
    }
    ret
}

/// The ELF machine of this architecture's programs.
pub const ELF_MACHINE: u16 = 243;

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
            "slli t0, a1, 3",
            "sub t0, sp, t0",
            "andi t0, t0, -16",
            "mv sp, t0",
            "1:",
            "beqz a1, 2f",
            "ld t1, 0(a0)",
            "sd t1, 0(t0)",
            "addi a0, a0, 8",
            "addi t0, t0, 8",
            "addi a1, a1, -1",
            "j 1b",
            "2:",
            "li a0, 0",
            "li ra, 0",
            "jr a2",
            in("a0") stack, in("a1") words, in("a2") entry,
            options(noreturn)
        )
    }
}

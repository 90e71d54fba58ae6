//! x86-64: the process entry point `_start`, the raw syscall, and the
//! `mem*`/`strlen` symbols the compiler emits calls to.

use core::arch::{asm, global_asm};

global_asm!(
    ".globl _start",
    ".type _start,@function",
    "_start:",
    "xor ebp, ebp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {entry}",
    "ud2",
    ".globl memcpy",
    ".type memcpy,@function",
    "memcpy:",
    "mov rax, rdi",
    "mov rcx, rdx",
    "rep movsb",
    "ret",
    ".globl memmove",
    ".type memmove,@function",
    "memmove:",
    "mov rax, rdi",
    "mov rcx, rdx",
    "cmp rdi, rsi",
    "jbe 2f",
    "lea r8, [rsi + rdx]",
    "cmp rdi, r8",
    "jae 2f",
    "lea rsi, [rsi + rdx - 1]",
    "lea rdi, [rdi + rdx - 1]",
    "std",
    "rep movsb",
    "cld",
    "ret",
    "2:",
    "rep movsb",
    "ret",
    ".globl memset",
    ".type memset,@function",
    "memset:",
    "mov r8, rdi",
    "mov eax, esi",
    "mov rcx, rdx",
    "rep stosb",
    "mov rax, r8",
    "ret",
    ".globl memcmp",
    ".type memcmp,@function",
    ".globl bcmp",
    ".type bcmp,@function",
    "memcmp:",
    "bcmp:",
    "xor eax, eax",
    "3:",
    "test rdx, rdx",
    "jz 4f",
    "movzx eax, byte ptr [rdi]",
    "movzx ecx, byte ptr [rsi]",
    "sub eax, ecx",
    "jnz 4f",
    "inc rdi",
    "inc rsi",
    "dec rdx",
    "jmp 3b",
    "4:",
    "ret",
    ".globl strlen",
    ".type strlen,@function",
    "strlen:",
    "mov rax, rdi",
    "5:",
    "cmp byte ptr [rax], 0",
    "je 6f",
    "inc rax",
    "jmp 5b",
    "6:",
    "sub rax, rdi",
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
    // x86_64's Linux syscall convention (number in rax, arguments in
    // rdi, rsi, rdx, r10, r8) and declares the registers the kernel
    // clobbers (rcx, r11).
    unsafe {
        asm!("syscall", inlateout("rax") nr as isize => ret, in("rdi") a, in("rsi") b,
             in("rdx") c, in("r10") d, in("r8") e, lateout("rcx") _, lateout("r11") _,
             options(nostack));
    }
    ret
}

/// The ELF machine of this architecture's programs.
pub const ELF_MACHINE: u16 = 62;

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
            "mov rax, rsi",
            "shl rax, 3",
            "mov rcx, rsp",
            "sub rcx, rax",
            "and rcx, -16",
            "mov rsp, rcx",
            "mov rcx, rsi",
            "mov rsi, rdi",
            "mov rdi, rsp",
            "cld",
            "rep movsq",
            "xor edx, edx",
            "xor ebp, ebp",
            "jmp r9",
            in("rdi") stack, in("rsi") words, in("r9") entry,
            options(noreturn)
        )
    }
}

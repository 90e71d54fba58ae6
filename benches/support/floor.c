/* The floor of the exec_overhead bench: the smallest possible trampoline, a
 * static binary without libc that only execve's a fixed path (EXIT0_PATH,
 * given with -D), forwarding the argv and environment it received.
 * Build: cc -O2 -static -nostdlib -DEXIT0_PATH='"/abs/exit0"'. */
#if !defined(__x86_64__)
#error "benches/support/floor.c supports only x86_64"
#endif
#ifndef EXIT0_PATH
#error "define EXIT0_PATH"
#endif

__attribute__((noreturn, used)) void floor_main(long *sp)
{
    char **argv = (char **)(sp + 1);
    char **envp = argv + sp[0] + 1;
    long r;
    __asm__ volatile("syscall"
                     : "=a"(r)
                     : "a"(59), "D"(EXIT0_PATH), "S"(argv), "d"(envp)
                     : "rcx", "r11", "memory");
    /* execve failed. */
    __asm__ volatile("mov $60, %eax\n\tmov $127, %edi\n\tsyscall");
    __builtin_unreachable();
}

/* The kernel enters with %rsp at argc; pass it on and realign the stack. */
__asm__(".globl _start\n"
        "_start:\n"
        "\tmov %rsp, %rdi\n"
        "\tand $-16, %rsp\n"
        "\tcall floor_main\n");

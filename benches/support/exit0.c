/* The final interpreter of the exec_overhead bench: a static binary without
 * libc that exits 0 at once. Build: cc -O2 -static -nostdlib. */
#if !defined(__x86_64__)
#error "benches/support/exit0.c supports only x86_64"
#endif

void _start(void)
{
    __asm__ volatile("mov $60, %eax\n\txor %edi, %edi\n\tsyscall");
}

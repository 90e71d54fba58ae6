/* reporter.c's report (argv, environment, descriptors 3..64) without
 * libc, for riscv64: a static PIE for the riscv64 trampoline to carry in
 * tests/aarch64.rs, since Debian's riscv64 glibc 2.36 has no start file
 * for static PIEs (rcrt1.o). Nothing is escaped: the tests' strings need
 * none. Build: -static-pie -nostdlib -ffreestanding -Wl,--no-relax. */

static long sys(long n, long a, long b, long c) {
    register long a7 __asm__("a7") = n;
    register long a0 __asm__("a0") = a;
    register long a1 __asm__("a1") = b;
    register long a2 __asm__("a2") = c;
    __asm__ volatile("ecall" : "+r"(a0) : "r"(a7), "r"(a1), "r"(a2) : "memory");
    return a0;
}

static void put(const char *s) {
    long n = 0;
    while (s[n])
        n++;
    sys(64 /* write */, 1, (long)s, n);
}

static void put_number(long v) {
    char digits[24];
    int at = 23;
    digits[at] = 0;
    do {
        digits[--at] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(digits + at);
}

/* Called by _start with the initial stack: argc, argv, NULL, envp, NULL. */
void report(long *sp) {
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    for (long i = 0; i < argc; i++) {
        put("argv[");
        put_number(i);
        put("]=");
        put(argv[i]);
        put("\n");
    }
    for (char **e = argv + argc + 1; *e; e++) {
        put("env:");
        put(*e);
        put("\n");
    }
    for (long fd = 3; fd <= 64; fd++) {
        if (sys(25 /* fcntl */, fd, 1 /* F_GETFD */, 0) >= 0) {
            put("fd:");
            put_number(fd);
            put("\n");
        }
    }
    sys(94 /* exit_group */, 0, 0, 0);
}

__asm__(".globl _start\n_start:\n\tmv a0, sp\n\tcall report\n");

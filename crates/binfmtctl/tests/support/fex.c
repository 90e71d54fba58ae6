/* A stand-in for FEX (installed at /usr/bin/FEX by the tests): it takes
 * the decisions FEX takes from what FEX reads, read as FEX reads them,
 * prints them, and carries out a guest's execve as FEX would.
 *
 * FEX's sources (github.com/FEX-Emu/FEX):
 * - Source/Tools/FEXInterpreter/FEXInterpreter.cpp, main() and
 *   QueryInterpreterInstalled(): started with AT_EXECFD, or both
 *   /proc/sys/fs/binfmt_misc/FEX-x86 and FEX-x86_64 exist (access F_OK):
 *   "the interpreter is installed"; FEX_EXECVEFD is read and unset.
 * - Source/Tools/FEXInterpreter/ELFCodeLoader.h, the constructor: the
 *   program comes from FEX_EXECVEFD, else AT_EXECFD, else its path; the
 *   first argument is dropped (argv[0] follows it) when AT_FLAGS has
 *   AT_FLAGS_PRESERVE_ARGV0 or the program came from a descriptor.
 * - Source/Tools/LinuxEmulation/LinuxSyscalls/Syscalls.cpp,
 *   ExecveHandler(): a guest execve of an x86 program when installed is
 *   the real execve (binfmt_misc brings it back); otherwise FEX re-executes
 *   /proc/self/exe with its own arguments, the path, and the guest's
 *   argv[1..]: the guest's argv[0] is replaced by the path and the kernel
 *   sees FEX, not the program, so set-id bits are not applied.
 *
 * The tests run on hosts where only a foreign format can go through
 * binfmt_misc (x86 there would take the host's own programs): a program
 * "is x86" here when its e_machine is the one in FEX_STANDIN_MACHINE.
 *
 * Output, one line per start: `FEX installed=N argv=A|B|... euid=U`
 * (argv: the guest's, as FEX gives it). A guest whose arguments are
 * `exec PATH ARGV0` then execs PATH with argv {ARGV0, "child"}. */
#define _GNU_SOURCE
#include <elf.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

static int steal_fd_from_env(const char *name) {
    const char *value = getenv(name);
    if (!value)
        return -1;
    int fd = atoi(value);
    unsetenv(name);
    return fd;
}

static int interpreter_installed(int executed_with_fd) {
    return executed_with_fd ||
           (access("/proc/sys/fs/binfmt_misc/FEX-x86", F_OK) == 0 &&
            access("/proc/sys/fs/binfmt_misc/FEX-x86_64", F_OK) == 0);
}

/* The e_machine of the ELF at path, or -1. */
static int machine_of(const char *path) {
    unsigned char header[20];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = pread(fd, header, sizeof header, 0);
    close(fd);
    if (n != sizeof header || memcmp(header, ELFMAG, SELFMAG) != 0)
        return -1;
    return header[18] | header[19] << 8;
}

/* The guest's execve of path with {argv0, "child"}, as ExecveHandler does. */
static void guest_execve(int installed, const char *self, const char *path, const char *argv0) {
    const char *machine = getenv("FEX_STANDIN_MACHINE");
    int is_x86 = machine && machine_of(path) == atoi(machine);
    if (installed && is_x86) {
        char *argv[] = {(char *)argv0, "child", NULL};
        execv(path, argv);
    } else {
        char *argv[] = {(char *)self, (char *)path, "child", NULL};
        execv("/proc/self/exe", argv);
    }
    perror("FEX stand-in: execve");
    exit(126);
}

int main(int argc, char **argv) {
    int executed_with_fd = getauxval(AT_EXECFD) != 0;
    int installed = interpreter_installed(executed_with_fd);
    int fex_fd = steal_fd_from_env("FEX_EXECVEFD");

    int fd = fex_fd != -1 ? fex_fd : (int)getauxval(AT_EXECFD);
    int loaded_with_fd = fd != 0;
    /* Args: argv without FEX's own argv[0]. */
    char **args = argv + 1;
    int nargs = argc - 1;
    if (((getauxval(AT_FLAGS) & 1) || loaded_with_fd) && nargs > 0) {
        args++;
        nargs--;
    }
    printf("FEX installed=%d argv=", installed);
    for (int i = 0; i < nargs; i++)
        printf("%s%s", i ? "|" : "", args[i]);
    printf(" euid=%u\n", (unsigned)geteuid());
    fflush(stdout);

    if (nargs == 4 && strcmp(args[1], "exec") == 0)
        guest_execve(installed, argv[0], args[2], args[3]);
    return 0;
}

/* Executes a program with an exact argv and environment, for the tests.
 *
 *   launch [-f [-u]] [-e KEY=VALUE]... PATH ARGV0 [ARGS...]
 *
 * The environment is exactly the -e entries, in order. argv is ARGV0 ARGS...
 * Every descriptor but 0, 1 and 2 is closed first, so the program starts
 * with exactly those whatever the test runner inherited.
 * With -f, PATH is opened (descriptor 3, not close-on-exec) and executed through the descriptor
 * (fexecve), so the kernel names the binary /dev/fd/N; with -u as well, PATH
 * is unlinked between the open and the exec (a deleted binary). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    char **envp = calloc((size_t)argc + 1, sizeof *envp);
    int envc = 0, use_fd = 0, unlink_it = 0, i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "-f") == 0)
            use_fd = 1;
        else if (strcmp(argv[i], "-u") == 0)
            unlink_it = 1;
        else if (strcmp(argv[i], "-e") == 0 && i + 1 < argc)
            envp[envc++] = argv[++i];
        else
            break;
    }
    if (argc - i < 2) {
        fputs("usage: launch [-f [-u]] [-e KEY=VALUE]... PATH ARGV0 [ARGS...]\n", stderr);
        return 2;
    }
    for (int fd = 3; fd < 1024; fd++)
        close(fd);
    const char *path = argv[i];
    char **child = &argv[i + 1];
    if (use_fd) {
        int fd = open(path, O_RDONLY); /* binfmt_misc refuses close-on-exec ones */
        if (fd < 0) {
            perror(path);
            return 2;
        }
        if (unlink_it && unlink(path) != 0) {
            perror(path);
            return 2;
        }
        fexecve(fd, child, envp);
    } else {
        execve(path, child, envp);
    }
    perror("launch: exec");
    return 125;
}

/* The exec loop of the exec_overhead bench.
 *
 *   exec_loop N WARMUP FILE
 *
 * vfork()s and execve()s FILE (argv {FILE}, the inherited environment)
 * WARMUP times untimed, then N times timed, waiting for each child; prints
 * the mean microseconds per exec on stdout. Exits 1 (with a message on
 * stderr) as soon as a child does not exit with status 0. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void run(char *file)
{
    char *args[] = {file, NULL};
    pid_t pid = vfork();
    if (pid < 0) {
        fprintf(stderr, "exec_loop: vfork: %s\n", strerror(errno));
        exit(1);
    }
    if (pid == 0) {
        execve(file, args, environ);
        _exit(126);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid) {
        fprintf(stderr, "exec_loop: waitpid: %s\n", strerror(errno));
        exit(1);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        if (WIFEXITED(status))
            fprintf(stderr, "exec_loop: %s exited with status %d%s\n", file,
                    WEXITSTATUS(status),
                    WEXITSTATUS(status) == 126 ? " (execve failed)" : "");
        else
            fprintf(stderr, "exec_loop: %s killed by signal %d\n", file,
                    WTERMSIG(status));
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: exec_loop N WARMUP FILE\n");
        return 2;
    }
    long n = strtol(argv[1], NULL, 10), warmup = strtol(argv[2], NULL, 10);
    for (long i = 0; i < warmup; i++)
        run(argv[3]);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++)
        run(argv[3]);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
    printf("%.3f\n", n > 0 ? ns / n / 1000.0 : 0.0);
    return 0;
}

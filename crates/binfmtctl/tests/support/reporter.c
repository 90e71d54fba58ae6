/* A fake interpreter for the integration tests: reports what it received.
 *
 * stdout, one item per line:
 *   argv[i]=VALUE   for each argv entry
 *   env:ENTRY       for each environment entry
 *   fd:N            for each open descriptor in 3..64
 * Newlines, backslashes and non-printable bytes are escaped as \n, \\, \xHH.
 * Exits 0, or with the value of REPORTER_EXIT when it is set. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

extern char **environ;

static void put_escaped(const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\n')
            fputs("\\n", stdout);
        else if (*p == '\\')
            fputs("\\\\", stdout);
        else if (*p < 0x20 || *p >= 0x7f)
            printf("\\x%02x", *p);
        else
            putchar(*p);
    }
    putchar('\n');
}

int main(int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        printf("argv[%d]=", i);
        put_escaped(argv[i]);
    }
    for (char **e = environ; e && *e; e++) {
        fputs("env:", stdout);
        put_escaped(*e);
    }
    for (int fd = 3; fd <= 64; fd++) {
        if (fcntl(fd, F_GETFD) != -1)
            printf("fd:%d\n", fd);
    }
    fflush(stdout);
    const char *code = getenv("REPORTER_EXIT");
    return code ? atoi(code) : 0;
}

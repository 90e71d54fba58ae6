/* A client program for the real-interpreter tests (tests/clients.rs),
 * built for Windows with mingw-w64 (run by Wine) and for aarch64 Linux
 * (run by QEMU). Prints, one item per line, each value as the hex of its
 * UTF-8 bytes so that the output is exact whatever the console encoding:
 *
 *   argc=N
 *   argv[I]=HEX      for each argv entry
 *   self=HEX         the program's own path, as it finds it (Linux: the
 *                    link /proc/self/exe; Windows: GetModuleFileNameW)
 *   env=HEX          each environment entry, in the program's order
 *   fd=N             each open descriptor from 3 to 63 (Linux)
 *   stdin=HEX        everything read from stdin
 *
 * and exits with the value of CLIENT_EXIT (0 when unset). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put_hex(const char *label, const unsigned char *p, size_t n) {
    fputs(label, stdout);
    for (size_t i = 0; i < n; i++)
        printf("%02x", p[i]);
    putchar('\n');
}

static void put_stdin(void) {
    static unsigned char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, stdin);
    put_hex("stdin=", buf, n);
}

static int exit_status(void) {
    const char *s = getenv("CLIENT_EXIT");
    return s ? atoi(s) : 0;
}

#ifdef _WIN32
#include <fcntl.h>
#include <io.h>
#include <wchar.h>
#include <windows.h>

/* wmain: the arguments as Windows parsed them from the command line, in
 * UTF-16, with no loss through the ANSI code page. */
int wmain(int argc, wchar_t **argv) {
    _setmode(_fileno(stdin), _O_BINARY);
    _setmode(_fileno(stdout), _O_BINARY);
    printf("argc=%d\n", argc);
    for (int i = 0; i < argc; i++) {
        char utf8[8192];
        int n = WideCharToMultiByte(CP_UTF8, 0, argv[i], -1, utf8, sizeof utf8, NULL, NULL);
        char label[32];
        snprintf(label, sizeof label, "argv[%d]=", i);
        put_hex(label, (const unsigned char *)utf8, n > 0 ? (size_t)n - 1 : 0);
    }
    wchar_t self[MAX_PATH];
    DWORD len = GetModuleFileNameW(NULL, self, MAX_PATH);
    char utf8[4 * MAX_PATH];
    int n = WideCharToMultiByte(CP_UTF8, 0, self, (int)len, utf8, sizeof utf8, NULL, NULL);
    put_hex("self=", (const unsigned char *)utf8, n > 0 ? (size_t)n : 0);
    wchar_t *env = GetEnvironmentStringsW();
    for (wchar_t *entry = env; *entry; entry += wcslen(entry) + 1) {
        char line[32768];
        int len = WideCharToMultiByte(CP_UTF8, 0, entry, -1, line, sizeof line, NULL, NULL);
        put_hex("env=", (const unsigned char *)line, len > 0 ? (size_t)len - 1 : 0);
    }
    FreeEnvironmentStringsW(env);
    put_stdin();
    return exit_status();
}
#else
#include <fcntl.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
    printf("argc=%d\n", argc);
    for (int i = 0; i < argc; i++) {
        char label[32];
        snprintf(label, sizeof label, "argv[%d]=", i);
        put_hex(label, (const unsigned char *)argv[i], strlen(argv[i]));
    }
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self);
    put_hex("self=", (const unsigned char *)self, n > 0 ? (size_t)n : 0);
    for (char **entry = environ; *entry; entry++)
        put_hex("env=", (const unsigned char *)*entry, strlen(*entry));
    for (int fd = 3; fd < 64; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            printf("fd=%d\n", fd);
    put_stdin();
    return exit_status();
}
#endif

/* The setuid test program (built for aarch64, run under qemu): one line
 * saying which build this is (TAG), the real and effective uid it runs
 * with, what /proc/self/exe names and its argv.
 *
 *   TAG ruid=R euid=E exe=PATH argv=ARGV0|ARGV1|...
 */
#include <stdio.h>
#include <unistd.h>

#ifndef TAG
#error "build with -DTAG=\"NAME\""
#endif

int main(int argc, char **argv) {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n < 0 ? 0 : n] = 0;
    printf("%s ruid=%d euid=%d exe=%s argv=", TAG, (int)getuid(), (int)geteuid(), exe);
    for (int i = 0; i < argc; i++)
        printf("%s%s", i ? "|" : "", argv[i]);
    printf("\n");
    return 0;
}

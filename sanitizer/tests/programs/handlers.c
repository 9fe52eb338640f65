/*
 * handlers: a program with its own SIGSEGV and SIGTRAP handlers, to check that the
 * sanitizer passes them every fault and trap that is not its own. It sends a buffer with
 * MSG_ZEROCOPY (so the sanitizer protects pages), writes next to it on the same page,
 * then faults on a read-only page of its own and raises SIGTRAP: both handlers must run,
 * and sigaction must report them as installed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY 60
#endif
#ifndef MSG_ZEROCOPY
#define MSG_ZEROCOPY 0x4000000
#endif

static sigjmp_buf back;
static volatile int segv, trap;

static void on_segv(int sig, siginfo_t *si, void *ctx) {
    (void)sig; (void)si; (void)ctx;
    segv++;
    siglongjmp(back, 1);
}

static void on_trap(int sig) { (void)sig; trap++; }

int main(void) {
    struct sigaction sa = {0};
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    if (sigaction(SIGSEGV, &sa, 0) < 0) return 2;
    if (signal(SIGTRAP, on_trap) == SIG_ERR) return 2;
    struct sigaction now;
    sigaction(SIGSEGV, 0, &now);
    printf("sigaction reports the program's SIGSEGV handler: %s\n",
           now.sa_sigaction == on_segv ? "yes" : "no");

    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) ||
        getsockname(l, (struct sockaddr *)&a, &len))
        return 2;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(s, (struct sockaddr *)&a, sizeof(a)) || setsockopt(s, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one)))
        return 2;
    int c = accept(l, 0, 0);
    char *heap = malloc(8192);
    memset(heap, 'x', 8192);
    if (send(s, heap + 100, 1000, MSG_ZEROCOPY) != 1000) return 2;
    heap[2000] = 'y'; /* same page, outside the in-flight range: must just work */

    char *ro = mmap(0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (sigsetjmp(back, 1) == 0) ro[0] = 1; /* the program's own fault */
    raise(SIGTRAP);
    printf("own SIGSEGV handler ran %d time(s), own SIGTRAP handler %d time(s), heap[2000] = %c\n",
           segv, trap, heap[2000]);
    char got[1000];
    size_t n = 0;
    while (n < sizeof(got)) {
        ssize_t k = read(c, got + n, sizeof(got) - n);
        if (k <= 0) return 2;
        n += (size_t)k;
    }
    printf("peer received %zu bytes, %s\n", n, memcmp(got, heap + 100, n) ? "different" : "as sent");
    return 0;
}

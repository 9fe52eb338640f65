/*
 * zc_pages: a MSG_ZEROCOPY sender whose buffers share pages with data it writes on every
 * iteration, to show what `zcsafe sanitize` reports.
 *
 * NBUF heap buffers (one malloc, not page aligned) are sent in turn with
 * send(MSG_ZEROCOPY). Between two buffers, in the pages they share, live the program's
 * counters (written every iteration) and a small buffer that read(2) fills from a pipe
 * every iteration. When a buffer is written again is the --mode:
 *
 *   wait   refill a buffer only after the error queue's notifications cover every send
 *          made from it (correct).
 *   early  refill a buffer in turn, NBUF - 1 sends later, without reading the error
 *          queue (only when send says ENOBUFS): the notification may well have arrived,
 *          but the program has not read it, so nothing tells it the kernel let go.
 *
 * usage: zc_pages [HOST PORT] [--mode wait|early] [--iters N] [--chunk N] [--seed S]
 *                 [--altstack BYTES]
 * --altstack gives the main thread an alternate signal stack of that size, as Rust's
 * runtime and others do (a few KiB): the sanitizer's fault handler must not run on it.
 * With HOST PORT it sends zcsafe's stream pattern there; without, to a receiver it
 * forks itself, which checks the pattern. It prints what it did (no addresses, no
 * timing: the output of two runs is identical).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY 60
#endif
#ifndef MSG_ZEROCOPY
#define MSG_ZEROCOPY 0x4000000
#endif
#ifndef SO_EE_ORIGIN_ZEROCOPY
#define SO_EE_ORIGIN_ZEROCOPY 5
#endif

#define NBUF 4
#define GAP 256 /* bytes between two buffers: counters and the read buffer live here */
#define MAX_IDS (1 << 20)

static const uint64_t MULTIPLIER = 0x9E3779B97F4A7C15ULL;

static void die(const char *what) {
    fprintf(stderr, "zc_pages: %s: %s\n", what, strerror(errno));
    exit(2);
}

static uint64_t word(uint64_t k, uint64_t seed) { return (k + seed) * MULTIPLIER; }

static void fill(unsigned char *buf, size_t len, uint64_t off, uint64_t seed) {
    for (size_t i = 0; i < len; i += 8) {
        uint64_t w = word((off + i) / 8, seed);
        memcpy(buf + i, &w, 8);
    }
}

/* The program's counters: they sit in a page an in-flight buffer also occupies. */
struct counters {
    uint64_t iterations, bytes, reads, checksum;
};

static unsigned char *done;   /* done[id]: a notification covered send id */
static uint32_t next_id;      /* the kernel's counter, mirrored: one per send call */

static int read_errqueue(int fd, int block) {
    char control[128];
    struct msghdr msg = {0};
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    for (;;) {
        if (recvmsg(fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) >= 0) break;
        if (errno == EINTR) continue;
        if (errno != EAGAIN) die("recvmsg(MSG_ERRQUEUE)");
        if (!block) return 0;
        struct pollfd p = {.fd = fd, .events = 0};
        if (poll(&p, 1, 10000) == 0) {
            fprintf(stderr, "zc_pages: no zerocopy notification for 10 s\n");
            exit(2);
        }
    }
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
        struct sock_extended_err *ee = (struct sock_extended_err *)CMSG_DATA(cm);
        if (ee->ee_origin != SO_EE_ORIGIN_ZEROCOPY || ee->ee_errno != 0) continue;
        for (uint32_t id = ee->ee_info;; id++) {
            if (id < MAX_IDS) done[id] = 1;
            if (id == ee->ee_data) break;
        }
    }
    return 1;
}

/* Sends buf[0..len) with MSG_ZEROCOPY; the ids it used are [*first, next_id). */
static void send_chunk(int fd, const unsigned char *buf, size_t len, uint32_t *first) {
    *first = next_id;
    for (size_t off = 0; off < len;) {
        ssize_t n = send(fd, buf + off, len - off, MSG_ZEROCOPY);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == ENOBUFS) { read_errqueue(fd, 1); continue; }
            die("send");
        }
        off += (size_t)n;
        next_id++; /* a call that queued bytes consumed one id */
        if (next_id >= MAX_IDS) { fprintf(stderr, "zc_pages: too many sends\n"); exit(2); }
    }
}

/* The receiver of the run without HOST PORT: checks the stream, reports on `out`. */
static void receive(int lfd, int out, uint64_t expect, uint64_t seed) {
    int c = accept(lfd, 0, 0);
    if (c < 0) die("accept");
    static unsigned char b[65536];
    uint64_t got = 0, bad = 0;
    for (;;) {
        ssize_t n = read(c, b, sizeof(b));
        if (n < 0) { if (errno == EINTR) continue; die("read"); }
        if (n == 0) break;
        for (ssize_t i = 0; i < n; i++, got++) {
            uint64_t w = word(got / 8, seed);
            if (b[i] != (unsigned char)(w >> (8 * (got % 8)))) bad++;
        }
    }
    dprintf(out, "peer received %llu of %llu bytes, %llu wrong\n", (unsigned long long)got,
            (unsigned long long)expect, (unsigned long long)bad);
    exit(0);
}

int main(int argc, char **argv) {
    const char *host = 0, *port = 0, *mode = "wait";
    uint64_t iters = 64, chunk = 48 << 10, seed = 0, altstack = 0;
    int pos = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--mode") && i + 1 < argc) mode = argv[++i];
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = strtoull(argv[++i], 0, 0);
        else if (!strcmp(argv[i], "--chunk") && i + 1 < argc) chunk = strtoull(argv[++i], 0, 0);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], 0, 0);
        else if (!strcmp(argv[i], "--altstack") && i + 1 < argc)
            altstack = strtoull(argv[++i], 0, 0);
        else if (pos == 0) { host = argv[i]; pos++; }
        else if (pos == 1) { port = argv[i]; pos++; }
        else { fprintf(stderr, "zc_pages: unexpected argument %s\n", argv[i]); return 2; }
    }
    int wait = !strcmp(mode, "wait");
    if ((!wait && strcmp(mode, "early")) || pos == 1 || chunk == 0 || chunk % 8 || iters == 0) {
        fprintf(stderr, "usage: zc_pages [HOST PORT] [--mode wait|early] [--iters N] "
                        "[--chunk N] [--seed S] [--altstack BYTES]\n");
        return 2;
    }
    if (altstack) {
        stack_t ss = {.ss_sp = malloc(altstack), .ss_size = altstack};
        if (!ss.ss_sp || sigaltstack(&ss, 0)) {
            perror("zc_pages: sigaltstack");
            return 2;
        }
    }
    done = calloc(MAX_IDS, 1);

    struct sockaddr_in sa = {.sin_family = AF_INET};
    int report[2] = {-1, -1};
    pid_t peer = -1;
    if (host) {
        sa.sin_port = htons((uint16_t)atoi(port));
        if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) { fprintf(stderr, "bad host %s\n", host); return 2; }
    } else {
        int lfd = socket(AF_INET, SOCK_STREAM, 0);
        socklen_t len = sizeof(sa);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0 ||
            getsockname(lfd, (struct sockaddr *)&sa, &len) < 0 || pipe(report) < 0)
            die("listen");
        fflush(stdout);
        peer = fork();
        if (peer < 0) die("fork");
        if (peer == 0) { close(report[0]); receive(lfd, report[1], iters * chunk, seed); }
        close(lfd);
        close(report[1]);
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) die("connect");
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one)) < 0) die("SO_ZEROCOPY");
    int feed[2]; /* read(2) fills `input` from here every iteration */
    if (pipe(feed) < 0) die("pipe");

    /* One allocation: [40 B][buf 0][GAP][buf 1][GAP]…; counters and input in the gaps. */
    unsigned char *heap = malloc(40 + NBUF * (chunk + GAP));
    if (!heap) die("malloc");
    unsigned char *buf[NBUF];
    for (int b = 0; b < NBUF; b++) buf[b] = heap + 40 + b * (chunk + GAP);
    struct counters *ctr = (struct counters *)(buf[0] + chunk + 8);
    unsigned char *input = buf[1] + chunk + 64;
    memset(ctr, 0, sizeof(*ctr));
    uint32_t first[NBUF], last[NBUF];
    int used[NBUF] = {0};

    for (uint64_t i = 0; i < iters; i++) {
        int b = (int)(i % NBUF);
        if (wait && used[b])
            for (uint32_t id = first[b]; id < last[b]; id++)
                while (!done[id]) read_errqueue(fd, 1);
        fill(buf[b], chunk, i * chunk, seed); /* the reuse moment */
        char msg[32];
        int k = snprintf(msg, sizeof(msg), "iteration %llu", (unsigned long long)i);
        if (write(feed[1], msg, (size_t)k) != k) die("write");
        ssize_t n = read(feed[0], input, 32); /* the kernel writes into a shared page */
        if (n != k) die("read");
        ctr->iterations++;
        ctr->reads++;
        for (ssize_t j = 0; j < n; j++) ctr->checksum = ctr->checksum * 31 + input[j];
        send_chunk(fd, buf[b], chunk, &first[b]);
        last[b] = next_id;
        used[b] = 1;
        ctr->bytes += chunk;
    }
    if (shutdown(fd, SHUT_WR) < 0) die("shutdown");
    char sink[4096]; /* read to EOF so close() sends FIN, not RST */
    while (read(fd, sink, sizeof(sink)) > 0) {}
    printf("mode %s: %llu iterations, %llu bytes sent in %u zero-copy sends, %llu reads, "
           "checksum %016llx\n",
           mode, (unsigned long long)ctr->iterations, (unsigned long long)ctr->bytes, next_id,
           (unsigned long long)ctr->reads, (unsigned long long)ctr->checksum);
    if (peer > 0) {
        char line[128];
        ssize_t n = read(report[0], line, sizeof(line) - 1);
        int st = 0;
        waitpid(peer, &st, 0);
        if (n > 0) { line[n] = 0; fputs(line, stdout); }
        else printf("peer reported nothing\n");
    }
    close(fd);
    return 0;
}

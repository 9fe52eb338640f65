/*
 * zc_sender: a small sender that follows zcsafe's stream pattern, to show what
 * `zcsafe run --external` tells about a sender written in another language.
 *
 * The 8-byte little-endian word k of the stream is (k + seed) * 0x9E3779B97F4A7C15
 * mod 2^64. The sender fills one chunk-sized buffer, sends it, and reuses the same
 * buffer for the next chunk. When it may reuse it is the --mode:
 *
 *   copy      send() copies: reuse at once is safe.
 *   zc-naive  send(MSG_ZEROCOPY), reuse at once: the kernel may still read the pages.
 *   zc-wait   send(MSG_ZEROCOPY), reuse after the errqueue notifications cover every
 *             send of the chunk (SO_EE_ORIGIN_ZEROCOPY, [ee_info, ee_data]).
 *   interleave  send() copies from two buffers, but the second half of every even chunk
 *             goes out after the next chunk: the wire order of two in-flight sends when
 *             the first came back short and was retried late. No buffer is reused early;
 *             the stream is still wrong (the receiver calls it interleaved).
 *
 * usage: zc_sender HOST PORT [--mode M] [--bytes N] [--chunk N] [--seed S]
 * (HOST/PORT may also come from ZCSAFE_HOST/ZCSAFE_PORT, seed from ZCSAFE_SEED)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
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
#ifndef SO_EE_ORIGIN_ZEROCOPY
#define SO_EE_ORIGIN_ZEROCOPY 5
#endif

static const uint64_t MULTIPLIER = 0x9E3779B97F4A7C15ULL;

static void die(const char *what) {
    fprintf(stderr, "zc_sender: %s: %s\n", what, strerror(errno));
    exit(2);
}

/* Fill buf with stream bytes starting at the word-aligned stream offset `off`. */
static void fill(unsigned char *buf, size_t len, uint64_t off, uint64_t seed) {
    for (size_t i = 0; i < len; i += 8) {
        uint64_t w = ((off + i) / 8 + seed) * MULTIPLIER;
        for (int b = 0; b < 8 && i + b < len; b++)
            buf[i + b] = (unsigned char)(w >> (8 * b));
    }
}

/* Zero-copy sends made and completed so far. */
static uint64_t sends, completed;

static void wait_completions(int fd, uint64_t *completed, uint64_t want);

/* Sends all of buf[0..len), retrying short sends. */
static void send_all(int fd, const unsigned char *buf, uint64_t len, int zc) {
    for (uint64_t done = 0; done < len;) {
        ssize_t n = send(fd, buf + done, len - done, zc ? MSG_ZEROCOPY : 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == ENOBUFS && zc) { wait_completions(fd, &completed, completed + 1); continue; }
            die("send");
        }
        done += (uint64_t)n;
        sends++;
    }
}

/* Reads zero-copy notifications until `completed` reaches `want`. */
static void wait_completions(int fd, uint64_t *completed, uint64_t want) {
    while (*completed < want) {
        char control[128];
        struct msghdr msg = {0};
        msg.msg_control = control;
        msg.msg_controllen = sizeof(control);
        if (recvmsg(fd, &msg, MSG_ERRQUEUE) < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                struct pollfd p = {.fd = fd, .events = 0};
                if (poll(&p, 1, 10000) == 0) {
                    fprintf(stderr, "zc_sender: no zerocopy notification for 10 s\n");
                    exit(2);
                }
                continue;
            }
            die("recvmsg(MSG_ERRQUEUE)");
        }
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
            struct sock_extended_err *ee = (struct sock_extended_err *)CMSG_DATA(cm);
            if (ee->ee_origin == SO_EE_ORIGIN_ZEROCOPY && ee->ee_errno == 0)
                *completed += (uint32_t)(ee->ee_data - ee->ee_info) + 1;
        }
    }
}

int main(int argc, char **argv) {
    const char *host = getenv("ZCSAFE_HOST"), *port = getenv("ZCSAFE_PORT");
    const char *mode = "zc-naive";
    uint64_t bytes = 1 << 20, chunk = 64 << 10;
    uint64_t seed = getenv("ZCSAFE_SEED") ? strtoull(getenv("ZCSAFE_SEED"), 0, 0) : 0;
    int pos = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--mode") && i + 1 < argc) mode = argv[++i];
        else if (!strcmp(argv[i], "--bytes") && i + 1 < argc) bytes = strtoull(argv[++i], 0, 0);
        else if (!strcmp(argv[i], "--chunk") && i + 1 < argc) chunk = strtoull(argv[++i], 0, 0);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], 0, 0);
        else if (pos == 0) { host = argv[i]; pos++; }
        else if (pos == 1) { port = argv[i]; pos++; }
        else { fprintf(stderr, "zc_sender: unexpected argument %s\n", argv[i]); return 2; }
    }
    int interleave = !strcmp(mode, "interleave");
    int zc = strcmp(mode, "copy") && !interleave, wait = !strcmp(mode, "zc-wait");
    if (!host || !port || chunk == 0 || chunk % (interleave ? 16 : 8) || bytes % chunk ||
        (strcmp(mode, "copy") && strcmp(mode, "zc-naive") && strcmp(mode, "zc-wait") &&
         !interleave)) {
        fprintf(stderr, "usage: zc_sender HOST PORT [--mode copy|zc-naive|zc-wait|interleave] "
                        "[--bytes N] [--chunk N] [--seed S]\n");
        return 2;
    }

    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) { fprintf(stderr, "bad host %s\n", host); return 2; }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) die("connect");
    int one = 1;
    if (zc && setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one)) < 0) die("SO_ZEROCOPY");

    unsigned char *buf = mmap(0, 2 * chunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) die("mmap");
    for (uint64_t off = 0; off < bytes; off += chunk) {
        if (interleave && off + chunk < bytes) {
            /* chunk `off` sent short, the next chunk, then the retried rest */
            uint64_t half = chunk / 2;
            fill(buf, 2 * chunk, off, seed);
            send_all(fd, buf, half, 0);
            send_all(fd, buf + chunk, chunk, 0);
            send_all(fd, buf + half, chunk - half, 0);
            off += chunk;
            continue;
        }
        fill(buf, chunk, off, seed); /* the reuse moment */
        send_all(fd, buf, chunk, zc);
        if (wait) wait_completions(fd, &completed, sends);
    }
    if (shutdown(fd, SHUT_WR) < 0) die("shutdown");
    char sink[4096]; /* read to EOF so close() sends FIN, not RST */
    while (read(fd, sink, sizeof(sink)) > 0) {}
    close(fd);
    return 0;
}

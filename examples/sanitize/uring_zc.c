/*
 * uring_zc: an io_uring IORING_OP_SEND_ZC sender (liburing), to show what
 * `zcsafe sanitize` reports for io_uring.
 *
 * NBUF heap buffers (one malloc, not page aligned: they share pages with each other and
 * with the program's counters) are sent in turn with io_uring_prep_send_zc. With each send
 * goes an IORING_OP_READ from a pipe into a small buffer in a page the buffers share, so
 * the kernel writes there every iteration. Each request
 * completes twice: a CQE with IORING_CQE_F_MORE when the bytes are queued, and a NOTIF
 * CQE (IORING_CQE_F_NOTIF) when the kernel let go of the pages. When a buffer is written
 * again is the --mode:
 *
 *   wait   refill a buffer only after the NOTIF of its previous send (correct); CQEs are
 *          reaped with io_uring_wait_cqe (an io_uring_enter when none is ready).
 *   peek   the same, but CQEs are reaped only with io_uring_peek_cqe, which reads the
 *          shared CQ ring with no system call (sched_yield between two looks). Its own
 *          receiver starts reading only once the first NBUF sends are queued, so their
 *          NOTIFs arrive while the sender spins, after its last io_uring_enter.
 *   early  refill a buffer as soon as the F_MORE CQE of its previous send arrived, before
 *          its NOTIF (the bug: the kernel may still be sending those pages).
 *
 * --fixed sends from a registered buffer (io_uring_register_buffers, IORING_RECVSEND_FIXED_BUF).
 * --sqpoll sets the ring up with IORING_SETUP_SQPOLL (a kernel thread consumes the SQEs).
 * --registered-ring registers the ring's own descriptor (io_uring_register_ring_fd): liburing
 * then enters with IORING_ENTER_REGISTERED_RING and an index instead of the descriptor.
 *
 * usage: uring_zc [HOST PORT] [--mode wait|peek|early] [--iters N] [--chunk N] [--seed S] [--fixed]
 *                [--registered-ring] [--sqpoll]
 * With HOST PORT it sends zcsafe's stream pattern there; without, to a receiver it forks
 * itself, which checks the pattern. In early mode that receiver reads only after the
 * last send was queued, so no NOTIF can arrive before the refills: the bug shows on
 * every run, not when timing lets it. It prints what it did (no addresses, no timing).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define NBUF 4
#define GAP 256

static const uint64_t MULTIPLIER = 0x9E3779B97F4A7C15ULL;

static void die(const char *what, int err) {
    fprintf(stderr, "uring_zc: %s: %s\n", what, strerror(err));
    exit(2);
}

static uint64_t word(uint64_t k, uint64_t seed) { return (k + seed) * MULTIPLIER; }

static void fill(unsigned char *buf, size_t len, uint64_t off, uint64_t seed) {
    for (size_t i = 0; i < len; i += 8) {
        uint64_t w = word((off + i) / 8, seed);
        memcpy(buf + i, &w, 8);
    }
}

struct counters {
    uint64_t sends, notifs, completions, bytes, reads, read_bytes;
};

#define READ_TAG (1ULL << 62) /* user_data of the READs */
static unsigned char *input;

static struct io_uring ring;
static int peek_only;
static int more_seen[1 << 16], notif_seen[1 << 16]; /* by request number (user_data) */

/* Reaps one CQE (waiting for it) and records it. */
static void reap(struct counters *ctr) {
    struct io_uring_cqe *cqe;
    int r;
    if (peek_only) {
        while ((r = io_uring_peek_cqe(&ring, &cqe)) == -EAGAIN) sched_yield();
    } else {
        r = io_uring_wait_cqe(&ring, &cqe);
    }
    if (r < 0) die("reaping a CQE", -r);
    uint64_t ud = cqe->user_data;
    if (ud & READ_TAG) {
        if (cqe->res <= 0) die("io_uring read", cqe->res < 0 ? -cqe->res : EIO);
        ctr->reads++;
        ctr->read_bytes += (uint64_t)cqe->res;
    } else if (cqe->flags & IORING_CQE_F_NOTIF) {
        notif_seen[ud] = 1;
        ctr->notifs++;
    } else {
        if (cqe->res < 0) die("send_zc", -cqe->res);
        more_seen[ud] = 1;
        if (!(cqe->flags & IORING_CQE_F_MORE)) notif_seen[ud] = 1; /* no NOTIF follows */
        ctr->completions++;
        ctr->bytes += (uint64_t)cqe->res;
    }
    io_uring_cqe_seen(&ring, cqe);
}

static void receive(int lfd, int out, int go, uint64_t expect, uint64_t seed) {
    int c = accept(lfd, 0, 0);
    if (c < 0) die("accept", errno);
    char g;
    if (go >= 0 && read(go, &g, 1) != 1) die("read go", errno);
    static unsigned char b[65536];
    uint64_t got = 0, bad = 0;
    for (;;) {
        ssize_t n = read(c, b, sizeof(b));
        if (n < 0) { if (errno == EINTR) continue; die("read", errno); }
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
    uint64_t iters = 16, chunk = 16384, seed = 0;
    int pos = 0, fixed = 0, registered = 0, sqpoll = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--mode") && i + 1 < argc) mode = argv[++i];
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = strtoull(argv[++i], 0, 0);
        else if (!strcmp(argv[i], "--chunk") && i + 1 < argc) chunk = strtoull(argv[++i], 0, 0);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], 0, 0);
        else if (!strcmp(argv[i], "--fixed")) fixed = 1;
        else if (!strcmp(argv[i], "--registered-ring")) registered = 1;
        else if (!strcmp(argv[i], "--sqpoll")) sqpoll = 1;
        else if (pos == 0) { host = argv[i]; pos++; }
        else if (pos == 1) { port = argv[i]; pos++; }
        else { fprintf(stderr, "uring_zc: unexpected argument %s\n", argv[i]); return 2; }
    }
    int early = !strcmp(mode, "early");
    peek_only = !strcmp(mode, "peek");
    int hold = (early || peek_only) && !host; /* the receiver waits for "go" */
    if ((!early && !peek_only && strcmp(mode, "wait")) || pos == 1 || chunk == 0 || chunk % 8 ||
        iters == 0 || iters >= (1 << 16)) {
        fprintf(stderr, "usage: uring_zc [HOST PORT] [--mode wait|peek|early] [--iters N] "
                        "[--chunk N] [--seed S] [--fixed] [--registered-ring] [--sqpoll]\n");
        return 2;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET};
    int report[2] = {-1, -1}, go[2] = {-1, -1};
    pid_t peer = -1;
    if (host) {
        sa.sin_port = htons((uint16_t)atoi(port));
        if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) { fprintf(stderr, "bad host %s\n", host); return 2; }
    } else {
        int lfd = socket(AF_INET, SOCK_STREAM, 0);
        socklen_t len = sizeof(sa);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        /* early, peek: a small receive window, so the unread stream stays in the sender */
        int small = 4096;
        if (hold) setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
        if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0 ||
            getsockname(lfd, (struct sockaddr *)&sa, &len) < 0 || pipe(report) < 0 || pipe(go) < 0)
            die("listen", errno);
        fflush(stdout);
        peer = fork();
        if (peer < 0) die("fork", errno);
        if (peer == 0) {
            close(report[0]);
            close(go[1]);
            receive(lfd, report[1], hold ? go[0] : -1, iters * chunk, seed);
        }
        close(lfd);
        close(report[1]);
        close(go[0]);
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket", errno);
    int big = 4 << 20; /* early: the whole stream fits in the send buffer */
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) die("connect", errno);
    struct io_uring_params params = {0};
    if (sqpoll) params.flags |= IORING_SETUP_SQPOLL;
    int r = io_uring_queue_init_params(64, &ring, &params);
    if (r < 0) die("io_uring_queue_init", -r);

    unsigned char *heap = malloc(40 + NBUF * (chunk + GAP));
    if (!heap) die("malloc", errno);
    unsigned char *buf[NBUF];
    for (int b = 0; b < NBUF; b++) buf[b] = heap + 40 + b * (chunk + GAP);
    struct counters *ctr = (struct counters *)(buf[0] + chunk + 8); /* shares a page */
    memset(ctr, 0, sizeof(*ctr));
    input = buf[1] + chunk + 64; /* so does the READ's buffer */
    int feed[2];
    if (pipe(feed) < 0) die("pipe", errno);
    if (registered && (r = io_uring_register_ring_fd(&ring)) != 1)
        die("io_uring_register_ring_fd", r < 0 ? -r : EIO);
    if (fixed) {
        struct iovec iov = {.iov_base = heap, .iov_len = 40 + NBUF * (chunk + GAP)};
        r = io_uring_register_buffers(&ring, &iov, 1);
        if (r < 0) die("io_uring_register_buffers", -r);
    }
    int64_t last[NBUF];
    for (int b = 0; b < NBUF; b++) last[b] = -1;

    for (uint64_t i = 0; i < iters; i++) {
        int b = (int)(i % NBUF);
        if (last[b] >= 0 && hold && !early && go[1] >= 0) {
            if (write(go[1], "g", 1) != 1) die("write go", errno);
            close(go[1]);
            go[1] = -1;
        }
        if (last[b] >= 0) {
            if (early) while (!more_seen[last[b]]) reap(ctr);
            else while (!notif_seen[last[b]]) reap(ctr);
        }
        fill(buf[b], chunk, i * chunk, seed); /* the reuse moment */
        char msg[32];
        int k = snprintf(msg, sizeof(msg), "iteration %llu", (unsigned long long)i);
        if (write(feed[1], msg, (size_t)k) != k) die("write", errno);
        struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
        if (!sqe) die("io_uring_get_sqe", EBUSY);
        io_uring_prep_read(sqe, feed[0], input, (unsigned)k, (uint64_t)-1);
        sqe->user_data = READ_TAG | i;
        sqe = io_uring_get_sqe(&ring);
        if (!sqe) die("io_uring_get_sqe", EBUSY);
        io_uring_prep_send_zc(sqe, fd, buf[b], chunk, MSG_WAITALL, 0);
        if (fixed) {
            sqe->ioprio |= IORING_RECVSEND_FIXED_BUF;
            sqe->buf_index = 0;
        }
        sqe->user_data = i;
        r = io_uring_submit(&ring);
        if (r < 0 || (!sqpoll && r != 2)) die("io_uring_submit", r < 0 ? -r : EIO);
        last[b] = (int64_t)i;
        ctr->sends++;
    }
    if (hold && go[1] >= 0 && write(go[1], "g", 1) != 1) die("write go", errno);
    while (ctr->notifs < iters || ctr->reads < iters) reap(ctr); /* all before the buffers go */
    if (shutdown(fd, SHUT_WR) < 0) die("shutdown", errno);
    char sink[4096];
    while (read(fd, sink, sizeof(sink)) > 0) {}
    printf("mode %s%s: %llu sends, %llu bytes, %llu completions, %llu notifs, %llu reads "
           "(%llu bytes)\n",
           mode, fixed ? " (fixed buffer)" : "", (unsigned long long)ctr->sends,
           (unsigned long long)ctr->bytes, (unsigned long long)ctr->completions,
           (unsigned long long)ctr->notifs, (unsigned long long)ctr->reads,
           (unsigned long long)ctr->read_bytes);
    if (peer > 0) {
        char line[128];
        ssize_t n = read(report[0], line, sizeof(line) - 1);
        int st = 0;
        waitpid(peer, &st, 0);
        if (n > 0) { line[n] = 0; fputs(line, stdout); }
        else printf("peer reported nothing\n");
    }
    io_uring_queue_exit(&ring);
    close(fd);
    return 0;
}

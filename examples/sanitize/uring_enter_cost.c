/*
 * uring_enter_cost: times N io_uring_enter calls three ways, to measure what the
 * sanitizer adds to each: run it plain and under `zcsafe sanitize` side by side.
 *
 *   nop         one NOP SQE submitted and reaped per call (io_uring_submit_and_wait:
 *               liburing's raw syscall instruction, trapped by the seccomp filter)
 *   empty raw   io_uring_enter(fd, 0, 0, 0) through liburing (raw, trapped)
 *   empty libc  the same through glibc's syscall(2) (interposed: no trap)
 *
 * usage: uring_enter_cost [N]      prints ns per call for each
 */
#define _GNU_SOURCE
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 200000;
    struct io_uring ring;
    if (io_uring_queue_init(8, &ring, 0) < 0) return 2;
    double a = now();
    for (long i = 0; i < n; i++) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
        io_uring_prep_nop(sqe);
        struct io_uring_cqe *cqe;
        if (io_uring_submit_and_wait(&ring, 1) != 1 || io_uring_peek_cqe(&ring, &cqe)) return 2;
        io_uring_cqe_seen(&ring, cqe);
    }
    double b = now();
    for (long i = 0; i < n; i++)
        if (io_uring_enter(ring.ring_fd, 0, 0, 0, NULL) < 0) return 2;
    double c = now();
    for (long i = 0; i < n; i++)
        if (syscall(SYS_io_uring_enter, ring.ring_fd, 0, 0, 0, NULL, 0) < 0) return 2;
    double d = now();
    printf("%ld io_uring_enter calls each: nop %.0f ns, empty raw %.0f ns, empty libc %.0f ns\n",
           n, (b - a) / n, (c - b) / n, (d - c) / n);
    io_uring_queue_exit(&ring);
    return 0;
}

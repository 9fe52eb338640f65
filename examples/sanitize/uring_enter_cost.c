/*
 * uring_enter_cost: times N io_uring_enter calls (one NOP SQE submitted and reaped per
 * call), to measure what the sanitizer's seccomp trap adds to each one: run it plain and
 * under `zcsafe sanitize` side by side. Prints ns per enter.
 *
 * usage: uring_enter_cost [N]
 */
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 200000;
    struct io_uring ring;
    if (io_uring_queue_init(8, &ring, 0) < 0) return 2;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
        io_uring_prep_nop(sqe);
        struct io_uring_cqe *cqe;
        if (io_uring_submit_and_wait(&ring, 1) != 1 || io_uring_peek_cqe(&ring, &cqe)) return 2;
        io_uring_cqe_seen(&ring, cqe);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n;
    printf("%ld io_uring_enter calls: %.0f ns each\n", n, ns);
    io_uring_queue_exit(&ring);
    return 0;
}

/*
 * sigsys_cost: what a seccomp SECCOMP_RET_TRAP round trip costs by itself: N getppid calls
 * plain, then N trapped into an empty SIGSYS handler that sets the result. Compare with
 * uring_enter_cost under zcsafe sanitize to see how much of the io_uring trap is the
 * kernel's signal delivery rather than the runtime's work.
 */
#define _GNU_SOURCE
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>
static void h(int s, siginfo_t *i, void *c) { (void)s; (void)i; ((ucontext_t *)c)->uc_mcontext.gregs[REG_RAX] = 0; }
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e9 + t.tv_nsec; }
int main(void) {
    long n = 200000;
    double a = now();
    for (long i = 0; i < n; i++) syscall(SYS_getppid);
    double b = now();
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
    struct sock_fprog p = {4, f};
    struct sigaction sa = {0};
    sa.sa_sigaction = h; sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSYS, &sa, 0);
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &p)) return 2;
    double c = now();
    for (long i = 0; i < n; i++) syscall(SYS_getppid);
    double d = now();
    printf("getppid %.0f ns, trapped to an empty SIGSYS handler %.0f ns\n", (b - a) / n, (d - c) / n);
    return 0;
}

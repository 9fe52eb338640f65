/*
 * read_into: read(2) into the very bytes an in-flight MSG_ZEROCOPY send holds — a
 * premature write the kernel makes on the program's behalf. The read must succeed (the
 * program never sees EFAULT) and the sanitizer must name the call.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY 60
#endif
#ifndef MSG_ZEROCOPY
#define MSG_ZEROCOPY 0x4000000
#endif

int main(void) {
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
    (void)c;
    char *buf = malloc(4096);
    memset(buf, 'x', 4096);
    if (send(s, buf, 4096, MSG_ZEROCOPY) != 4096) return 2;
    int p[2];
    if (pipe(p) || write(p[1], "overwritten", 11) != 11) return 2;
    ssize_t n = read(p[0], buf + 1000, 11); /* into the held bytes */
    printf("read returned %zd: %.11s\n", n, buf + 1000);
    return n == 11 ? 0 : 1;
}

/* The kernel's floor for the sweep benchmark: non-blocking connect() to every address of a block
 * on one port, WINDOW at a time, each closed as soon as it is refused (or answered), measured in
 * the same run as bleedwatch. Loopback only: the block must be inside 127.0.0.0/8.
 *   gcc -O2 -o connect_loop connect_loop.c && ./connect_loop 127.16.0.0 20 9 256
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s FIRST_ADDRESS HOST_BITS PORT WINDOW\n", argv[0]);
        return 2;
    }
    struct in_addr first;
    if (inet_pton(AF_INET, argv[1], &first) != 1 || (ntohl(first.s_addr) >> 24) != 127) {
        fprintf(stderr, "FIRST_ADDRESS must be in 127.0.0.0/8\n");
        return 2;
    }
    unsigned bits = (unsigned)atoi(argv[2]);
    unsigned port = (unsigned)atoi(argv[3]);
    int window = atoi(argv[4]);
    if (bits > 24 || port == 0 || port > 65535 || window < 1 || window > 65536) return 2;
    unsigned long total = 1UL << bits, next = 0, finished = 0;
    struct pollfd *fds = calloc((size_t)window, sizeof *fds);
    for (int i = 0; i < window; i++) fds[i].fd = -1;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (finished < total) {
        for (int i = 0; i < window && next < total; i++) {
            if (fds[i].fd >= 0) continue;
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            if (fd < 0) { perror("socket"); return 1; }
            struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
            to.sin_addr.s_addr = htonl(ntohl(first.s_addr) + (unsigned)next++);
            if (connect(fd, (struct sockaddr *)&to, sizeof to) == 0 || errno != EINPROGRESS) {
                close(fd); /* refused at once */
                finished++;
                continue;
            }
            fds[i].fd = fd;
            fds[i].events = POLLOUT;
        }
        if (poll(fds, (nfds_t)window, 1000) < 0) { perror("poll"); return 1; }
        for (int i = 0; i < window; i++) {
            if (fds[i].fd >= 0 && fds[i].revents) {
                close(fds[i].fd);
                fds[i].fd = -1;
                finished++;
            }
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("%lu %.3f %.0f\n", total, seconds, (double)total / seconds);
    return 0;
}

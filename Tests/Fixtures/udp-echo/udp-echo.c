/*
 * udp-echo PORT: a UDP server for NetworkTests (Debian's busybox has no
 * `nc -u`). Binds 0.0.0.0:PORT, prints "udp-ready", and answers each
 * datagram with "udp:" followed by the datagram, until killed.
 */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: udp-echo PORT\n"); return 2; }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1]))};
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) { perror("udp-echo: bind"); return 1; }
    printf("udp-ready\n");
    fflush(stdout);
    for (;;) {
        char in[1024], out[1100];
        struct sockaddr_in from;
        socklen_t len = sizeof from;
        ssize_t n = recvfrom(fd, in, sizeof in, 0, (struct sockaddr *)&from, &len);
        if (n < 0) { perror("udp-echo: recvfrom"); return 1; }
        memcpy(out, "udp:", 4);
        memcpy(out + 4, in, (size_t)n);
        sendto(fd, out, (size_t)n + 4, 0, (struct sockaddr *)&from, len);
    }
}

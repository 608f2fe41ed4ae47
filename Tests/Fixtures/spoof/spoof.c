/*
 * spoof VICTIM_IP VICTIM_MAC HOST_IP PORT: the hostile run of NetworkTests.
 * From eth0, over an AF_PACKET socket (NET_RAW, in swvm's default set), it
 * sends what a run must not get past the bridge:
 *   - "spoof-ip":  a UDP datagram to HOST_IP:PORT from the victim's address,
 *   - "spoof-mac": one from the victim's MAC (which a learning bridge would
 *                  then move to this port),
 *   - gratuitous ARP (request and reply) claiming the victim's address,
 *   - an ICMPv6 router advertisement for 2001:db8:5a:1::/64 with a default
 *     route,
 * and, first, "legit-socket" (an ordinary UDP socket, which also resolves
 * the host's MAC) and "legit-raw" (the same raw path with its own MAC and
 * address), which must arrive. Prints "sent" when everything went out.
 */
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static uint8_t own_mac[6], host_mac[6], victim_mac[6];
static uint32_t own_ip, victim_ip, host_ip; /* network order */
static int raw_fd, ifindex;

static void die(const char *what) { perror(what); exit(1); }

static int parse_mac(const char *s, uint8_t *mac) {
    unsigned b[6];
    if (sscanf(s, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6) return -1;
    for (int i = 0; i < 6; i++) mac[i] = (uint8_t)b[i];
    return 0;
}

static uint32_t sum16(const void *data, size_t len, uint32_t sum) {
    const uint8_t *p = data;
    for (size_t i = 0; i + 1 < len; i += 2) sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (len & 1) sum += (uint32_t)(p[len - 1] << 8);
    return sum;
}

static uint16_t fold(uint32_t sum) {
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return htons((uint16_t)~sum);
}

static void send_frame(const uint8_t *frame, size_t len) {
    struct sockaddr_ll to = {.sll_family = AF_PACKET, .sll_ifindex = ifindex, .sll_halen = 6};
    memcpy(to.sll_addr, frame, 6);
    if (sendto(raw_fd, frame, len, 0, (struct sockaddr *)&to, sizeof to) != (ssize_t)len) die("spoof: sendto");
}

static void put_eth(uint8_t *f, const uint8_t *dst, const uint8_t *src, uint16_t type) {
    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    f[12] = (uint8_t)(type >> 8);
    f[13] = (uint8_t)type;
}

/* A UDP datagram to the host's PORT with the given source MAC and address. */
static void send_udp(const uint8_t *src_mac, uint32_t src_ip, uint16_t port, const char *text) {
    uint8_t f[128] = {0};
    size_t n = strlen(text), udp_len = 8 + n, ip_len = 20 + udp_len;
    put_eth(f, host_mac, src_mac, ETHERTYPE_IP);
    uint8_t *ip = f + 14, *udp = ip + 20;
    ip[0] = 0x45;
    ip[2] = (uint8_t)(ip_len >> 8);
    ip[3] = (uint8_t)ip_len;
    ip[8] = 64;
    ip[9] = IPPROTO_UDP;
    memcpy(ip + 12, &src_ip, 4);
    memcpy(ip + 16, &host_ip, 4);
    uint16_t c = fold(sum16(ip, 20, 0));
    memcpy(ip + 10, &c, 2);
    udp[0] = 0x9c; /* source port 40000 */
    udp[1] = 0x40;
    udp[2] = (uint8_t)(port >> 8);
    udp[3] = (uint8_t)port;
    udp[4] = (uint8_t)(udp_len >> 8);
    udp[5] = (uint8_t)udp_len;
    memcpy(udp + 8, text, n); /* checksum 0: none, allowed for UDP over IPv4 */
    send_frame(f, 14 + ip_len);
}

/* Gratuitous ARP for the victim's address from this run's MAC. */
static void send_garp(uint16_t op) {
    uint8_t f[60] = {0}, bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    put_eth(f, bcast, own_mac, ETHERTYPE_ARP);
    uint8_t *a = f + 14;
    a[1] = 1;       /* Ethernet */
    a[2] = 0x08;    /* IPv4 */
    a[4] = 6;
    a[5] = 4;
    a[7] = (uint8_t)op;
    memcpy(a + 8, own_mac, 6);
    memcpy(a + 14, &victim_ip, 4);
    if (op == 2) memcpy(a + 18, own_mac, 6); /* a gratuitous reply names itself as target */
    memcpy(a + 24, &victim_ip, 4);
    send_frame(f, sizeof f);
}

/* A router advertisement to all nodes: default route, prefix for SLAAC. */
static void send_ra(void) {
    uint8_t f[14 + 40 + 56] = {0}, dst_mac[6] = {0x33, 0x33, 0, 0, 0, 1};
    put_eth(f, dst_mac, own_mac, ETHERTYPE_IPV6);
    uint8_t *ip6 = f + 14, *ra = ip6 + 40;
    size_t ra_len = 16 + 8 + 32;
    ip6[0] = 0x60;
    ip6[5] = (uint8_t)ra_len;
    ip6[6] = IPPROTO_ICMPV6;
    ip6[7] = 255;
    uint8_t src[16] = {0xfe, 0x80, [8] = (uint8_t)(own_mac[0] ^ 2), own_mac[1], own_mac[2], 0xff, 0xfe, own_mac[3], own_mac[4], own_mac[5]};
    uint8_t dst[16] = {0xff, 0x02, [15] = 1};
    memcpy(ip6 + 8, src, 16);
    memcpy(ip6 + 24, dst, 16);
    ra[0] = 134;              /* router advertisement */
    ra[4] = 64;               /* current hop limit */
    ra[6] = 0x07;             /* router lifetime 1800 s */
    ra[7] = 0x08;
    uint8_t *opt = ra + 16;
    opt[0] = 1;               /* source link-layer address */
    opt[1] = 1;
    memcpy(opt + 2, own_mac, 6);
    opt += 8;
    opt[0] = 3;               /* prefix information */
    opt[1] = 4;
    opt[2] = 64;
    opt[3] = 0xc0;            /* on-link, autonomous */
    opt[4] = 0; opt[5] = 1; opt[6] = 0x51; opt[7] = 0x80;   /* valid 86400 s */
    opt[8] = 0; opt[9] = 0; opt[10] = 0x38; opt[11] = 0x40; /* preferred 14400 s */
    uint8_t prefix[8] = {0x20, 0x01, 0x0d, 0xb8, 0x00, 0x5a, 0x00, 0x01};
    memcpy(opt + 16, prefix, 8);
    uint8_t pseudo[40] = {0};
    memcpy(pseudo, src, 16);
    memcpy(pseudo + 16, dst, 16);
    pseudo[35] = (uint8_t)ra_len;
    pseudo[39] = IPPROTO_ICMPV6;
    uint16_t c = fold(sum16(ra, ra_len, sum16(pseudo, sizeof pseudo, 0)));
    memcpy(ra + 2, &c, 2);
    send_frame(f, sizeof f);
}

static void read_eth0(void) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq ifr = {0};
    strcpy(ifr.ifr_name, "eth0");
    if (fd < 0 || ioctl(fd, SIOCGIFINDEX, &ifr) != 0) die("spoof: eth0 index");
    ifindex = ifr.ifr_ifindex;
    if (ioctl(fd, SIOCGIFHWADDR, &ifr) != 0) die("spoof: eth0 MAC");
    memcpy(own_mac, ifr.ifr_hwaddr.sa_data, 6);
    if (ioctl(fd, SIOCGIFADDR, &ifr) != 0) die("spoof: eth0 address");
    own_ip = ((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr.s_addr;
    close(fd);
}

/* "legit-socket" through the kernel, then the host's MAC from its ARP cache. */
static void resolve_host(uint16_t port) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = host_ip};
    if (fd < 0 || sendto(fd, "legit-socket", 12, 0, (struct sockaddr *)&to, sizeof to) != 12) die("spoof: legit-socket");
    close(fd);
    char want[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &host_ip, want, sizeof want);
    for (int tries = 0; tries < 50; tries++) {
        FILE *f = fopen("/proc/net/arp", "r");
        char line[256], ip[64], mac[64];
        unsigned flags;
        while (f && fgets(line, sizeof line, f)) {
            if (sscanf(line, "%63s %*s %x %63s", ip, &flags, mac) == 3 && strcmp(ip, want) == 0 && (flags & 2) &&
                parse_mac(mac, host_mac) == 0) {
                fclose(f);
                return;
            }
        }
        if (f) fclose(f);
        usleep(100000);
    }
    fprintf(stderr, "spoof: no ARP entry for %s\n", want);
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 5 || inet_pton(AF_INET, argv[1], &victim_ip) != 1 || parse_mac(argv[2], victim_mac) != 0 ||
        inet_pton(AF_INET, argv[3], &host_ip) != 1) {
        fprintf(stderr, "usage: spoof VICTIM_IP VICTIM_MAC HOST_IP PORT\n");
        return 2;
    }
    uint16_t port = (uint16_t)atoi(argv[4]);
    read_eth0();
    resolve_host(port);
    raw_fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    if (raw_fd < 0) die("spoof: AF_PACKET socket");
    send_udp(own_mac, own_ip, port, "legit-raw");
    send_udp(own_mac, victim_ip, port, "spoof-ip");
    send_udp(victim_mac, own_ip, port, "spoof-mac");
    /* Several times, past the neighbour entry's locktime (1 s). */
    for (int i = 0; i < 3; i++) {
        send_garp(1);
        send_garp(2);
        send_ra();
        usleep(600000);
    }
    printf("sent\n");
    return 0;
}

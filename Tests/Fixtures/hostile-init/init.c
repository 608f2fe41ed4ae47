/*
 * A hostile guest-init, for HostileGuestTests only (SWVM_GUEST_INIT). It
 * speaks swvm's control protocol through the one definition of its frames
 * (swvm_run_settings.h and run_settings.c, as guest-init does) until it has
 * the run's settings, then breaks the protocol as the workload's first
 * argument says:
 *
 *   ready-twice   READY again, 4 s later (the test removes the snapshot
 *                 the first READY saved, so a second snapshot would show)
 *   ready-flood   100,000 READYs in one write, never reading the port
 *                 (each used to queue the settings again for the guest)
 *   tiny-frames   a megabyte of empty CONFINED frames (each used to be
 *                 taken from the front of the host's buffer)
 *   exec-garbage  says the workload started, then answers each exec with
 *                 EXEC_STARTED and output on a stream that does not exist,
 *                 and each ps with a process list whose entry is cut short
 *
 * Then it waits 120 s and powers off: swvm should have ended the VM first.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "swvm_run_settings.h"

static void say(const char *what) {
    dprintf(2, "hostile-init: %s\n", what);
}

static void nap(int seconds) {
    struct timespec t = { seconds, 0 };
    while (nanosleep(&t, &t) != 0) {}
}

static void write_all(int fd, const uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) return;
        p += w;
        n -= (size_t)w;
    }
}

/* `count` empty frames of `type`, in one write. */
static void flood(int fd, uint32_t type, size_t count) {
    uint8_t *buf = calloc(count, 8);
    if (!buf) return;
    for (size_t i = 0; i < count; i++) memcpy(buf + 8 * i, &type, 4);   /* little-endian, length 0 */
    write_all(fd, buf, 8 * count);
    free(buf);
}

/* READY as guest-init says it: with the protocol version. */
static void ready(int fd) {
    uint8_t v[SWVM_READY_LEN];
    swvm_ready_encode(&(struct swvm_ready){ .version = SWVM_PROTOCOL_VERSION }, v);
    swvm_frame_write(fd, MSG_READY, v, sizeof v);
}

/* The workload "runs"; every exec and ps gets a reply that breaks the
 * protocol (each frame well formed, its content not). */
static void exec_garbage(int fd) {
    uint8_t st[SWVM_STARTED_LEN], v[SWVM_EXEC_VALUE_LEN];
    swvm_started_encode(&(struct swvm_started){ .pid = 1, .namespaces = 0 }, st);
    swvm_frame_write(fd, MSG_STARTED, st, sizeof st);
    for (;;) {
        uint32_t type, len;
        uint8_t *p = swvm_frame_read_alloc(fd, &type, &len, SWVM_MAX_CONFIG);
        if (!p) return;
        struct swvm_exec_head head = { 0 };
        swvm_exec_head_decode(p, len, &head);
        if (type == MSG_EXEC) {
            swvm_exec_value_encode(&(struct swvm_exec_value){ .id = head.id, .value = 2 }, v);
            swvm_frame_write(fd, MSG_EXEC_STARTED, v, sizeof v);
            uint8_t out[SWVM_EXEC_DATA_HEAD_LEN + 4];
            swvm_exec_data_encode(head.id, 7, out);
            memcpy(out + SWVM_EXEC_DATA_HEAD_LEN, "junk", 4);
            swvm_frame_write(fd, MSG_EXEC_OUTPUT, out, sizeof out);
        } else if (type == MSG_PS) {
            uint8_t list[SWVM_EXEC_HEAD_LEN + 6] = { 0 };
            swvm_exec_head_encode(&head, list);
            swvm_frame_write(fd, MSG_PS_LIST, list, sizeof list);
        }
        free(p);
    }
}

int main(void) {
    mkdir("/dev", 0755);
    mount("devtmpfs", "/dev", "devtmpfs", 0, "mode=0755");
    int console = open("/dev/console", O_WRONLY);   /* for say(), seen with SWVM_DEBUG=1 */
    if (console >= 0 && console != 2) dup2(console, 2);
    int fd = -1;
    for (int i = 0; i < 30000 && (fd = open(CONTROL_PORT, O_RDWR)) < 0; i++) usleep(1000);
    if (fd < 0) { say("no control port"); reboot(RB_AUTOBOOT); }

    ready(fd);
    uint32_t type = 0, len = 0;
    uint8_t *payload = swvm_frame_read_alloc(fd, &type, &len, SWVM_MAX_CONFIG);
    struct swvm_settings s;
    char error[256];
    const char *mode = "";
    if (payload && type == MSG_CONFIG && swvm_settings_decode(payload, len, &s, error, sizeof error) == 0 && s.nargs > 0)
        mode = s.args[0];
    say(mode);
    if (strcmp(mode, "ready-twice") == 0) {
        nap(4);
        ready(fd);
    } else if (strcmp(mode, "ready-flood") == 0) {
        flood(fd, MSG_READY, 100000);
    } else if (strcmp(mode, "tiny-frames") == 0) {
        flood(fd, MSG_CONFINED, (1 << 20) / 8);
    } else if (strcmp(mode, "exec-garbage") == 0) {
        exec_garbage(fd);
    }
    say("done");
    nap(120);
    reboot(RB_AUTOBOOT);
    return 0;
}

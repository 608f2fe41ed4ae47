// swvm-vmm-keeper: the privileged keeper of a jailed VMM (see VMMKeeper in
// Sources/VMMJail). It waits for the whole run, so it is a small C program
// (a few hundred KiB of private memory, not the Swift swvm's ~2 MiB): it
// serves the VMM's requests (swvm_keeper.h), and when the VMM is done or
// dead it execs `swvm vmm-keeper`, whose clean-up steps (cgroups, network,
// run record, uid lease, an unpublished snapshot) are swvm's own.
#define _GNU_SOURCE
#include "swvm_keeper.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

struct keeper {
    pid_t vmm;
    char vmm_text[24];
    const char *record, *lease, *swvm;
    char temporary[4096], final[4096], lock[4096];
    int announced, published;
    /// The announced snapshot's directory is to be removed at the end.
    int discard;
};

/// Once the VMM is in a mount namespace of its own, it names no path.
static int vmm_is_jailed(const struct keeper *k) {
    char path[64], theirs[128], ours[128];
    snprintf(path, sizeof path, "/proc/%d/ns/mnt", (int)k->vmm);
    ssize_t a = readlink(path, theirs, sizeof theirs - 1), b = readlink("/proc/self/ns/mnt", ours, sizeof ours - 1);
    if (a <= 0 || b <= 0) return 1;   // unknown: as jailed (fails closed)
    theirs[a] = ours[b] = 0;
    return strcmp(theirs, ours) != 0;
}

static int copy_field(char *to, size_t cap, const char *from) {
    size_t n = strlen(from);
    if (n == 0 || n >= cap || from[0] != '/') return -1;
    memcpy(to, from, n + 1);
    return 0;
}

/// "snapshot TMP FINAL LOCK": absolute paths, once, before the jail.
static const char *announce(struct keeper *k, char *fields) {
    if (k->announced || vmm_is_jailed(k)) return "refused: snapshot";
    char *save = NULL, *tmp = strtok_r(fields, "\t", &save), *final = strtok_r(NULL, "\t", &save),
         *lock = strtok_r(NULL, "\t", &save);
    if (!tmp || !final || !lock || strtok_r(NULL, "\t", &save)) return "refused: snapshot (three paths)";
    if (copy_field(k->temporary, sizeof k->temporary, tmp) || copy_field(k->final, sizeof k->final, final)
        || copy_field(k->lock, sizeof k->lock, lock)) return "refused: snapshot (paths)";
    k->announced = 1;
    return SWVM_KEEPER_OK;
}

/// Exactly the two files the VMM wrote through the descriptors it was
/// given, regular, owned by root and not linked elsewhere (the jailed
/// VMM can create nothing there).
static int holds_only_its_two_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int memory = 0, state = 0, other = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        struct stat st;
        int good = fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)
            && st.st_uid == 0 && st.st_nlink == 1;
        if (good && strcmp(e->d_name, "memory") == 0) memory++;
        else if (good && strcmp(e->d_name, "state") == 0) state++;
        else other++;
    }
    closedir(d);
    return memory == 1 && state == 1 && other == 0;
}

static const char *publish(struct keeper *k) {
    if (!k->announced || k->published) return "no snapshot to publish";
    k->published = 1;
    const char *reply = SWVM_KEEPER_OK;
    if (!holds_only_its_two_files(k->temporary)) {
        k->discard = 1;
        reply = "the snapshot's directory holds other than its two files (memory, state)";
    } else if (rename(k->temporary, k->final) != 0) {
        k->discard = 1;   // another run published one meanwhile: keep theirs
    }
    unlink(k->lock);
    return reply;
}

static char posture_buffer[SWVM_KEEPER_MESSAGE_MAX];

static void reply(const char *text, size_t length) {
    ssize_t ignored = send(SWVM_KEEPER_SOCKET_FD, text, length, MSG_NOSIGNAL);
    (void)ignored;
}

static void handle(struct keeper *k, char *message) {
    if (strncmp(message, SWVM_KEEPER_SNAPSHOT "\t", sizeof SWVM_KEEPER_SNAPSHOT) == 0) {
        const char *r = announce(k, message + sizeof SWVM_KEEPER_SNAPSHOT);
        reply(r, strlen(r));
    } else if (strcmp(message, SWVM_KEEPER_PUBLISH) == 0) {
        const char *r = publish(k);
        reply(r, strlen(r));
    } else if (strcmp(message, SWVM_KEEPER_POSTURE) == 0) {
        long n = swvm_posture_collect(k->vmm, posture_buffer, sizeof posture_buffer);
        if (n > 0) reply(posture_buffer, (size_t)n); else reply("", 0);
    } else {
        reply("refused", 7);
    }
}

/// The clean-up is swvm's: exec it (no fork; this process is what
/// `swvm run` waits for).
static void clean_up(const struct keeper *k) {
    const char *argv[12];
    int n = 0;
    argv[n++] = "swvm";
    argv[n++] = "vmm-keeper";
    argv[n++] = "--vmm";
    argv[n++] = k->vmm_text;
    argv[n++] = "--record";
    argv[n++] = k->record;
    argv[n++] = "--lease";
    argv[n++] = k->lease;
    if (k->announced && (!k->published || k->discard)) {
        argv[n++] = "--discard";
        argv[n++] = k->temporary;
    }
    argv[n] = NULL;
    execv(k->swvm, (char *const *)argv);
    fprintf(stderr, "swvm-vmm-keeper: exec %s for the clean-up: %s (run %s left on the host)\n", k->swvm,
            strerror(errno), k->record);
    exit(125);
}

/// swiftc links swiftrt.o into every executable, which calls these two
/// runtime functions (registering the image's Swift metadata, of which
/// there is none here; backtraces): defined here, no part of libswiftCore
/// is linked in.
void swift_addNewDSOImage(const void *image);
void swift_addNewDSOImage(const void *image) { (void)image; }
int _swift_backtrace_isThunkFunction(const char *name);
int _swift_backtrace_isThunkFunction(const char *name) { (void)name; return 0; }

int main(int argc, char **argv) {
    if (argc != 5 || atoi(argv[1]) <= 0) {
        fprintf(stderr, "swvm-vmm-keeper: started by swvm run only (VMM-PID RECORD LEASE SWVM)\n");
        return 2;
    }
    // Deaf to the terminal's signals: it must outlive a ^C to clean up.
    int deaf[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU };
    for (size_t i = 0; i < sizeof deaf / sizeof deaf[0]; i++) signal(deaf[i], SIG_IGN);
    static struct keeper k;
    k.vmm = (pid_t)atoi(argv[1]);
    snprintf(k.vmm_text, sizeof k.vmm_text, "%d", (int)k.vmm);
    k.record = argv[2];
    k.lease = argv[3];
    k.swvm = argv[4];
    static char message[4 * 4096 + 64];
    for (;;) {
        // MSG_TRUNC: the whole message's length, to refuse a cut one.
        ssize_t n = recv(SWVM_KEEPER_SOCKET_FD, message, sizeof message - 1, MSG_TRUNC);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if ((size_t)n >= sizeof message) { reply("refused: too long", 17); continue; }
        message[n] = 0;
        handle(&k, message);
    }
    close(SWVM_KEEPER_SOCKET_FD);
    clean_up(&k);
}

// swvm-vmm-keeper: the privileged keeper of a jailed VMM (see VMMKeeper in
// Sources/VMMJail). It waits for the whole run, so it is a small C program
// (a few hundred KiB of private memory, not the Swift swvm's ~2 MiB): it
// serves the VMM's requests (swvm_keeper.h), and when the VMM is done or
// dead it execs `swvm vmm-keeper`, whose clean-up steps (cgroups, network,
// run record, uid lease, an unpublished snapshot) are swvm's own.
//
// Two ways to run: the child of an OCI container's VMM (VMM-PID RECORD
// LEASE SWVM), or `--monitor` (VMMMonitor): `swvm run --isolation=vm`
// exec'd itself into this program once it had started the VMM as its
// child, so this process is the run's monitor: it also forwards the
// signals sent to `swvm run` to the VMM, reaps it, and the clean-up exits
// with the VMM's status (128+N after signal N).
#define _GNU_SOURCE
#include "swvm_keeper.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct keeper {
    pid_t vmm;
    char vmm_text[24];
    const char *record, *lease, *swvm;
    /// At most two snapshots a run may publish: a boot snapshot and an
    /// image template.
    struct {
        char temporary[4096], final[4096], lock[4096];
        int published;
        /// Its directory is to be removed at the end.
        int discard;
    } snapshots[SWVM_KEEPER_SNAPSHOTS_MAX];
    int announced;
    /// --monitor: the VMM is this process's child; its status, relayed.
    int monitor;
    char status_text[16];
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

/// "snapshot TMP FINAL LOCK": absolute paths, before the jail, at most
/// SWVM_KEEPER_SNAPSHOTS_MAX times; the reply names its index.
static const char *announce(struct keeper *k, char *fields) {
    static char ok[16];
    if (k->announced >= SWVM_KEEPER_SNAPSHOTS_MAX || vmm_is_jailed(k)) return "refused: snapshot";
    char *save = NULL, *tmp = strtok_r(fields, "\t", &save), *final = strtok_r(NULL, "\t", &save),
         *lock = strtok_r(NULL, "\t", &save);
    if (!tmp || !final || !lock || strtok_r(NULL, "\t", &save)) return "refused: snapshot (three paths)";
    int i = k->announced;
    if (copy_field(k->snapshots[i].temporary, sizeof k->snapshots[i].temporary, tmp)
        || copy_field(k->snapshots[i].final, sizeof k->snapshots[i].final, final)
        || copy_field(k->snapshots[i].lock, sizeof k->snapshots[i].lock, lock)) return "refused: snapshot (paths)";
    k->announced++;
    snprintf(ok, sizeof ok, SWVM_KEEPER_OK " %d", i);
    return ok;
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

/// "publish INDEX": that snapshot into place, once, checked.
static const char *publish(struct keeper *k, const char *index) {
    char *end = NULL;
    long i = strtol(index, &end, 10);
    if (end == index || *end || i < 0 || i >= k->announced || k->snapshots[i].published) return "no such snapshot to publish";
    k->snapshots[i].published = 1;
    const char *reply = SWVM_KEEPER_OK;
    if (!holds_only_its_two_files(k->snapshots[i].temporary)) {
        k->snapshots[i].discard = 1;
        reply = "the snapshot's directory holds other than its two files (memory, state)";
    } else if (rename(k->snapshots[i].temporary, k->snapshots[i].final) != 0) {
        k->snapshots[i].discard = 1;   // another run published one meanwhile: keep theirs
    }
    unlink(k->snapshots[i].lock);
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
    } else if (strncmp(message, SWVM_KEEPER_PUBLISH "\t", sizeof SWVM_KEEPER_PUBLISH) == 0) {
        const char *r = publish(k, message + sizeof SWVM_KEEPER_PUBLISH);
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
    const char *argv[12 + 2 * SWVM_KEEPER_SNAPSHOTS_MAX];
    int n = 0;
    argv[n++] = "swvm";
    argv[n++] = "vmm-keeper";
    argv[n++] = "--vmm";
    argv[n++] = k->vmm_text;
    argv[n++] = "--record";
    argv[n++] = k->record;
    argv[n++] = "--lease";
    argv[n++] = k->lease;
    for (int i = 0; i < k->announced; i++) {
        if (k->snapshots[i].published && !k->snapshots[i].discard) continue;
        argv[n++] = "--discard";
        argv[n++] = k->snapshots[i].temporary;
    }
    if (k->monitor) {
        argv[n++] = "--exit-status";
        argv[n++] = k->status_text;
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

/// One request from the VMM; 0 at end of file (the VMM is done or dead).
static int serve_one(struct keeper *k) {
    static char message[4 * 4096 + 64];
    // MSG_TRUNC: the whole message's length, to refuse a cut one.
    ssize_t n = recv(SWVM_KEEPER_SOCKET_FD, message, sizeof message - 1, MSG_TRUNC);
    if (n < 0 && errno == EINTR) return 1;
    if (n <= 0) return 0;
    if ((size_t)n >= sizeof message) { reply("refused: too long", 17); return 1; }
    message[n] = 0;
    handle(k, message);
    return 1;
}

/// The signals `swvm run` forwards to its VMM (Docker's foreground run
/// proxies them): sent by a process (kill), not by the terminal, whose
/// signals reach the VMM itself (the same process group).
static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH };

/// The VMM's wait status as `swvm run`'s exit status.
static int relayed_status(const struct keeper *k, int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "swvm: the VM's process (pid %d) was killed by signal %d\n", (int)k->vmm, WTERMSIG(status));
        return 128 + WTERMSIG(status);
    }
    return 125;
}

/// --monitor: serves the VMM, forwards signals to it, until it ends;
/// returns its status.
static int monitor(struct keeper *k) {
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++) sigaddset(&set, forwarded[i]);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sigfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (sigfd < 0) { kill(k->vmm, SIGKILL); perror("swvm-vmm-keeper: signalfd"); }
    int socket_open = 1;
    for (;;) {
        int status;
        pid_t done = waitpid(k->vmm, &status, WNOHANG);
        if (done == k->vmm) return relayed_status(k, status);
        if (done < 0 && errno != EINTR) return 125;
        struct pollfd p[2] = { { .fd = sigfd, .events = POLLIN }, { .fd = socket_open ? SWVM_KEEPER_SOCKET_FD : -1, .events = POLLIN } };
        if (poll(p, 2, sigfd < 0 ? 100 : -1) < 0 && errno != EINTR) return 125;
        if (p[1].revents) socket_open = serve_one(k);
        struct signalfd_siginfo info;
        if (!(p[0].revents & POLLIN) || read(sigfd, &info, sizeof info) != (ssize_t)sizeof info) continue;
        if (info.ssi_signo != SIGCHLD && info.ssi_code != SI_KERNEL) kill(k->vmm, (int)info.ssi_signo);
    }
}

int main(int argc, char **argv) {
    static struct keeper k;
    k.monitor = argc == 6 && strcmp(argv[1], "--monitor") == 0;
    if (k.monitor) { argc--; argv++; }
    if (argc != 5 || atoi(argv[1]) <= 0) {
        fprintf(stderr, "swvm-vmm-keeper: started by swvm run only ([--monitor] VMM-PID RECORD LEASE SWVM)\n");
        return 2;
    }
    // Deaf to the terminal's signals: it must outlive a ^C to clean up
    // (a monitor takes the forwarded ones from a signalfd instead).
    int deaf[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU };
    for (size_t i = 0; i < sizeof deaf / sizeof deaf[0]; i++) signal(deaf[i], SIG_IGN);
    k.vmm = (pid_t)atoi(argv[1]);
    snprintf(k.vmm_text, sizeof k.vmm_text, "%d", (int)k.vmm);
    k.record = argv[2];
    k.lease = argv[3];
    k.swvm = argv[4];
    if (k.monitor) {
        snprintf(k.status_text, sizeof k.status_text, "%d", monitor(&k));
    } else {
        while (serve_one(&k)) {}
    }
    close(SWVM_KEEPER_SOCKET_FD);
    clean_up(&k);
}

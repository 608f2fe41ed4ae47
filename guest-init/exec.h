/* guest-init's side of exec and control of the running VM (see "exec and
 * control" in swvm_run_settings.h): processes started in the workload's
 * namespaces and cgroup with its confinement, their stdio relayed over
 * the control port, signals to every process of the workload, and ps.
 * guest-init's main loop calls these hooks; it stays single-threaded. */
#ifndef GUEST_INIT_EXEC_H
#define GUEST_INIT_EXEC_H

#include <poll.h>
#include <stdint.h>
#include <sys/types.h>

#include "swvm_run_settings.h"

/* Once the workload runs: its settings (each exec's confinement), its
 * PID 1 and the namespaces it has, and the control port. */
void execs_start(const struct swvm_settings *cfg, pid_t workload, uint32_t namespaces, int control_fd);
/* A frame from the host in the exec range: 1 when it was one (handled). */
int execs_handle_frame(uint32_t type, const uint8_t *p, uint32_t len);
/* Adds the descriptors the execs wait on to pfds (up to `room`); returns
 * how many. execs_service then handles their revents. A starting exec's
 * report, terminal and zygote reply are among them: guest-init never
 * waits for a child's start anywhere else. */
int execs_poll_fds(struct pollfd *pfds, int room);
void execs_service(const struct pollfd *pfds, int n);
/* A reaped child: 1 when it was an exec (its exit is then reported once
 * its output is all sent). */
int execs_reaped(pid_t pid, int wait_status);

/* The most descriptors execs_poll_fds adds (and the zygote's socket). */
#define EXECS_MAX_POLL (3 * SWVM_MAX_EXECS + 1)

#endif

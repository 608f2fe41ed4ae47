/*
 * guest-init's early exit report (issue 22): the workload's exit heard
 * from the kernel's TASKSTATS message, which do_exit() sends before it
 * tears the workload's address space down, rather than from SIGCHLD after
 * (swvm_taskstats.h says what is taken from the message, and why).
 */
#ifndef SWVM_GUEST_EARLY_EXIT_H
#define SWVM_GUEST_EARLY_EXIT_H

#include <sys/types.h>

/* A TASKSTATS listener on every possible CPU, which passes nothing until
 * early_exit_watch; -1 when the kernel has no TASKSTATS or a step fails
 * (the exit is then heard from SIGCHLD alone, as without it). */
int early_exit_open(void);

/* Lets the messages of thread group `pid` through (0: none): 0, or -1. */
int early_exit_watch(int fd, pid_t pid);

/* Reads what is queued, without blocking: 1 with *wait_status when the
 * kernel reported the end of group `pid` (swvm_taskstats_exit), else 0. */
int early_exit_read(int fd, pid_t pid, int *wait_status);

#endif

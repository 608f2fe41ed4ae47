/*
 * The OCI hooks a container's init runs itself (runtime-spec config.md,
 * "POSIX-platform Hooks"): createContainer in the container's namespaces
 * after its mounts and before pivot_root, startContainer after `start`
 * released it and before execve (as runc's init runs them).
 *
 * When swvm create wants this (the sync pipe's go byte is
 * SWVM_GO_WITH_HOOKS instead of 1), the init keeps the sync pipe open and,
 * once its mounts are made, sends MSG_HOOKS (empty) on the error pipe.
 * swvm runs the prestart and createRuntime hooks (in its own namespaces)
 * and answers on the sync pipe with this blob, little-endian:
 *
 *   u32 length of the rest (at most SWVM_HOOKS_MAX_BLOB)
 *   the state for createContainer, NUL; the state for startContainer, NUL
 *   u32 createContainer hooks, u32 startContainer hooks, then each hook:
 *     u32 timeout in seconds (0: none), u32 argc, u32 envc,
 *     path NUL, argc args each NUL, envc "K=V" each NUL
 *
 * No string holds a NUL; argc + envc is at most SWVM_HOOKS_MAX_STRINGS. An
 * empty env gives the hook the init's environment (runc: the runtime's).
 * A hook that cannot run, exits non-zero, is killed or outlives its
 * timeout fails the step: create (MSG_ERROR) or the start of the process
 * (the init's stderr, exit 125).
 */
#ifndef SWVM_OCI_HOOKS_H
#define SWVM_OCI_HOOKS_H

#define SWVM_GO_WITH_HOOKS 2
#define SWVM_HOOKS_MAX_BLOB (4u << 20)
#define SWVM_HOOKS_MAX_STRINGS 4096u

#endif

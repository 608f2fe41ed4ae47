// Seccomp: work in progress

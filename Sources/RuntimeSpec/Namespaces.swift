import CSyscalls

/// Names of the namespaces a set of CLONE_NEW* flags made, for the run's
/// posture (from the flags the container's clone used, or guest-init's).
public enum Namespaces {
    public static func names(_ flags: UInt) -> [String] {
        let all: [(UInt, String)] = [(sys_CLONE_NEWNS, "mnt"), (sys_CLONE_NEWPID, "pid"), (sys_CLONE_NEWUTS, "uts"),
                                     (sys_CLONE_NEWIPC, "ipc"), (sys_CLONE_NEWNET, "net"), (sys_CLONE_NEWCGROUP, "cgroup"),
                                     (sys_CLONE_NEWUSER, "user")]
        return all.filter { flags & $0.0 != 0 }.map(\.1)
    }
}

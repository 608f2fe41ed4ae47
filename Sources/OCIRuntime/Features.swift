import RuntimeSpec
import SwvmBase

/// `swvm features`: what this runtime implements, in the shape of runc's
/// features output (runtime-spec's features.md).
public enum Features {
    public static func json(cgroupV1: Bool, cgroupV2: Bool) -> JSON {
        let linux: JSON = .object([
            ("namespaces", .array(["cgroup", "ipc", "mount", "network", "pid", "user", "uts"])),
            ("capabilities", .array(Capabilities.names.map { .string("CAP_" + $0) })),
            ("cgroup", .object([("v1", .bool(cgroupV1)), ("v2", .bool(cgroupV2)), ("systemd", false), ("systemdUser", false)])),
            ("seccomp", .object([
                ("enabled", true),
                ("actions", .array(["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                                    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"])),
                ("operators", .array(["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                                      "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"])),
                ("archs", .array(["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64"])),
            ])),
            ("apparmor", .object([("enabled", false)])),
            ("selinux", .object([("enabled", false)])),
        ])
        return .object([
            ("ociVersionMin", "1.0.0"), ("ociVersionMax", .string(ContainerState.ociVersion)),
            ("hooks", .array(["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"])),
            ("mountOptions", .array(mountOptions.map { .string($0) })),
            ("linux", linux),
            ("annotations", .object([("org.opencontainers.runtime.name", "swvm")])),
        ])
    }

    /// The mount options config.json's mounts may carry (mount(8)'s and
    /// the propagation ones), as runc lists them.
    static let mountOptions = [
        "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "iversion", "lazytime", "loud",
        "mand", "noatime", "nodev", "nodiratime", "noexec", "noiversion", "nolazytime", "nomand", "norelatime",
        "nostrictatime", "nosuid", "private", "rbind", "relatime", "remount", "ro", "rprivate", "rshared", "rslave",
        "runbindable", "rw", "shared", "silent", "slave", "strictatime", "suid", "sync", "tmpcopyup", "unbindable",
    ]
}

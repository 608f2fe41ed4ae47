#if canImport(Glibc)
import Glibc
#endif
import SwvmBase

/// The config.json `swvm spec` writes: runc's (`runc spec`, `runc spec
/// --rootless`), with swvm's spec version and hostname.
extension OCIConfig {
    public static func defaultConfig(rootless: Bool) -> JSON {
        let caps: JSON = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
        let process = object(
            ("terminal", true), ("user", object(("uid", 0), ("gid", 0))), ("args", ["sh"]),
            ("env", [.string(DefaultSearchPath.environment), "TERM=xterm"]), ("cwd", "/"),
            ("capabilities", object(("bounding", caps), ("effective", caps), ("permitted", caps), ("ambient", caps))),
            ("rlimits", [object(("type", "RLIMIT_NOFILE"), ("hard", 1024), ("soft", 1024))]),
            ("noNewPrivileges", true))
        return object(
            ("ociVersion", .string(specVersion)), ("process", process),
            ("root", object(("path", "rootfs"), ("readonly", true))), ("hostname", "swvm"),
            ("mounts", .array(defaultMounts(rootless: rootless))), ("linux", defaultLinux(rootless: rootless)))
    }

    static func defaultMounts(rootless: Bool) -> [JSON] {
        func mount(_ destination: String, _ type: String, _ source: String, _ options: [String]) -> JSON {
            options.isEmpty ? object(("destination", .string(destination)), ("type", .string(type)), ("source", .string(source)))
                : object(("destination", .string(destination)), ("type", .string(type)), ("source", .string(source)),
                         ("options", .array(options.map(JSON.string))))
        }
        // Without privileges there is no gid 5 to give the pts, and sysfs cannot be mounted: it is bound.
        let ptsOptions = ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"] + (rootless ? [] : ["gid=5"])
        return [
            mount("/proc", "proc", "proc", []),
            mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
            mount("/dev/pts", "devpts", "devpts", ptsOptions),
            mount("/dev/shm", "tmpfs", "shm", ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
            mount("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
            rootless ? mount("/sys", "none", "/sys", ["rbind", "nosuid", "noexec", "nodev", "ro"])
                : mount("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", "ro"]),
            mount("/sys/fs/cgroup", "cgroup", "cgroup", ["nosuid", "noexec", "nodev", "relatime", "ro"]),
        ]
    }

    static func defaultLinux(rootless: Bool) -> JSON {
        let masked: JSON = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                            "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"]
        let readonly: JSON = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        let paths: [(String, JSON)] = [("maskedPaths", masked), ("readonlyPaths", readonly)]
        if rootless {
            // The caller's own ids, as root in a user namespace; no network namespace of its own to set up.
            let uidMap = object(("containerID", 0), ("hostID", .integer(Int64(geteuid()))), ("size", 1))
            let gidMap = object(("containerID", 0), ("hostID", .integer(Int64(getegid()))), ("size", 1))
            let namespaces: JSON = .array(["pid", "ipc", "uts", "mount", "user"].map { object(("type", .string($0))) })
            return .object([("uidMappings", [uidMap]), ("gidMappings", [gidMap]), ("namespaces", namespaces)] + paths)
        }
        let namespaces: JSON = .array(["pid", "network", "ipc", "uts", "mount"].map { object(("type", .string($0))) })
        let resources = object(("devices", [object(("allow", false), ("access", "rwm"))]))
        return .object([("resources", resources), ("namespaces", namespaces)] + paths)
    }

    static func object(_ members: (String, JSON)...) -> JSON { .object(members) }
}

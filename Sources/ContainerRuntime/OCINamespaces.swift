#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import RuntimeSpec
import SwvmBase

/// config.json's linux.namespaces as the container child takes them: the
/// CLONE_NEW* flags of the new ones, and for each one joined by path an fd
/// this process opened and checked is a namespace of that type (runc's
/// nsexec opens them the same way). Checked against what swvm can do
/// before anything is created.
final class OCINamespaces {
    static let types: [String: UInt32] = [
        "mount": UInt32(sys_CLONE_NEWNS), "uts": UInt32(sys_CLONE_NEWUTS), "ipc": UInt32(sys_CLONE_NEWIPC),
        "pid": UInt32(sys_CLONE_NEWPID), "network": UInt32(sys_CLONE_NEWNET), "user": UInt32(sys_CLONE_NEWUSER),
        "cgroup": UInt32(sys_CLONE_NEWCGROUP),
    ]
    /// NS_GET_NSTYPE: _IO(0xb7, 0x3).
    static let nsGetType: UInt = 0xb703

    private(set) var newFlags: UInt32 = 0
    private(set) var join: [(type: UInt32, fd: Int32)] = []
    /// Every namespace type the container has of its own (new or joined).
    private(set) var own: UInt32 = 0
    /// The network namespace is the host's (none given, or a path to it).
    private(set) var hostNetwork = true

    init(_ namespaces: [OCINamespace]) throws {
        do {
            for (i, ns) in namespaces.enumerated() { try add(ns, what: "linux.namespaces[\(i)]") }
            try check()
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    /// Closes the joined namespaces' fds (once the child has them).
    func close() {
        for j in join { Glibc.close(j.fd) }
        join.removeAll()
    }

    func has(_ type: String) -> Bool { own & (Self.types[type] ?? 0) != 0 }
    func isNew(_ type: String) -> Bool { newFlags & (Self.types[type] ?? 0) != 0 }
    func isJoined(_ type: String) -> Bool { join.contains { $0.type == Self.types[type] } }

    private func add(_ ns: OCINamespace, what: String) throws {
        guard let flag = Self.types[ns.type] else {
            let more = ns.type == "time" ? " (time namespaces are not supported, as by runc 1.1)" : ""
            throw SwvmError(.invalidArgument, "config.json \(what).type: unknown namespace type \"\(ns.type)\"\(more)")
        }
        guard own & flag == 0 else { throw SwvmError(.invalidArgument, "config.json \(what): the \(ns.type) namespace is listed twice") }
        own |= flag
        guard let path = ns.path, !path.isEmpty else {
            newFlags |= flag
            if ns.type == "network" { hostNetwork = false }
            return
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SwvmError(.notFound, "config.json \(what).path: cannot open \(path): \(errnoText(errno))") }
        let actual = sys_ioctl_int(fd, Self.nsGetType, 0)
        guard actual >= 0, UInt32(actual) == flag else {
            Glibc.close(fd)
            let kind = actual < 0 ? "a namespace" : "a \(ns.type) namespace"
            throw SwvmError(.invalidArgument, "config.json \(what).path: \(path) is not \(kind)")
        }
        if ns.type == "pid", let vmm = Self.vmmHolding(pidNamespace: fd) {
            Glibc.close(fd)
            throw SwvmError(.unsupported, "config.json \(what).path: \(path) is the pid namespace of a VM-level container (its VMM, "
                            + "host pid \(vmm), is PID 1 there): its processes run inside the VM and cannot be shared, and the "
                            + "namespace holds only the VMM and its keeper, which runs as root on the host")
        }
        join.append((flag, fd))
        if ns.type == "network" { hostNetwork = Self.sameNamespace(fd, "/proc/self/ns/net") }
    }

    /// The host pid of a swvm VMM that is PID 1 of the pid namespace `fd`
    /// names (what `podman run --pid container:VMCTR` asks to join), if
    /// one is: that process runs this very binary. Found through /proc:
    /// a namespace's PID 1 is the member whose last NSpid is 1.
    static func vmmHolding(pidNamespace fd: Int32) -> pid_t? {
        var ns = stat(), exe = stat()
        guard fstat(fd, &ns) == 0, stat("/proc/self/exe", &exe) == 0 else { return nil }
        for name in (try? FS.listDirectory("/proc")) ?? [] {
            guard let pid = pid_t(name), sameNamespace(ns, "/proc/\(name)/ns/pid"),
                  let status = try? FS.readText("/proc/\(name)/status"),
                  let nspid = status.split(separator: "\n").first(where: { $0.hasPrefix("NSpid:") }),
                  nspid.split(whereSeparator: { $0 == "\t" || $0 == " " }).last == "1" else { continue }
            var theirs = stat()
            let isSwvm = stat("/proc/\(name)/exe", &theirs) == 0 && theirs.st_dev == exe.st_dev && theirs.st_ino == exe.st_ino
            return isSwvm ? pid : nil
        }
        return nil
    }

    static func sameNamespace(_ a: stat, _ path: String) -> Bool {
        var b = stat()
        return stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino
    }

    static func sameNamespace(_ fd: Int32, _ path: String) -> Bool {
        var a = stat(), b = stat()
        return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino
    }

    /// What the clone helper cannot do, refused with the reason.
    private func check() throws {
        guard has("mount") else { throw SwvmError(.invalidArgument, "config.json linux.namespaces: a mount namespace is required") }
        if isJoined("user") && isNew("pid") {
            throw SwvmError(.unsupported, "config.json linux.namespaces: a new pid namespace with a user namespace joined by path "
                            + "is not supported (the pid namespace would belong to the host's user namespace)")
        }
    }

    /// runc's sysctl rules: IPC sysctls need an IPC namespace, net.* a
    /// network namespace that is not the host's, kernel.domainname a UTS
    /// namespace; kernel.hostname is the hostname field's; anything else
    /// is not namespaced and would change the host.
    func checkSysctls(_ sysctls: [OCISysctl]) throws {
        let ipcKeys: Set<String> = ["kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                                    "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"]
        for s in sysctls {
            let key = s.key, what = "config.json linux.sysctl \"\(key)\""
            let parts = key.split(separator: ".", omittingEmptySubsequences: false)
            guard !key.isEmpty, !key.contains("/"), !parts.contains(where: { $0.isEmpty }), !s.value.utf8.contains(0), !key.utf8.contains(0) else {
                throw SwvmError(.invalidArgument, "\(what): not a sysctl name (dot-separated, no '/' or empty part)")
            }
            if ipcKeys.contains(key) || key.hasPrefix("fs.mqueue.") {
                guard has("ipc") else { throw SwvmError(.invalidArgument, "\(what) is not allowed in the host's IPC namespace") }
            } else if key.hasPrefix("net.") {
                guard !hostNetwork else { throw SwvmError(.invalidArgument, "\(what) is not allowed in the host's network namespace") }
            } else if key == "kernel.domainname" {
                guard has("uts") else { throw SwvmError(.invalidArgument, "\(what) is not allowed in the host's UTS namespace") }
            } else if key == "kernel.hostname" {
                throw SwvmError(.invalidArgument, "\(what) is not allowed: it conflicts with the hostname field")
            } else {
                throw SwvmError(.invalidArgument, "\(what) is not in a separate kernel namespace: it would change the host")
            }
        }
    }
}

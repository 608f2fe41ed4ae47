#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import SwvmBase

/// The checks of a config.json that look at the host: its root, hooks and
/// namespaces to join. They give a clear error at create; the code that
/// acts (the container's init, the hook runner) still checks as it acts.
extension OCIConfig {
    /// root.path, relative to the bundle: an existing directory, resolved.
    static func rootDirectory(_ c: OCIBundleConfig, bundle: String) throws -> String {
        guard let path = c.rootPath else { throw OCIConfigValue(.null, path: "root").error("missing (it is required)") }
        let at = OCIConfigValue(.null, path: "root.path")
        // "" would make the bundle directory itself the root.
        guard !path.isEmpty else { throw at.error("empty (the bundle's root directory, as \"rootfs\")") }
        let full = path.hasPrefix("/") ? path : Path.join(bundle, path)
        guard let st = FS.stat(full) else { throw at.error("the bundle is missing its root: \(full) does not exist") }
        guard st.st_mode & S_IFMT == S_IFDIR else { throw at.error("the bundle's root \(full) is not a directory") }
        return try FS.realPath(full)
    }

    /// The hooks that run in the runtime's namespace (the host's) must be
    /// there. createContainer and startContainer hooks are resolved in the
    /// container's mount namespace, which does not exist yet.
    static func checkHooks(_ hooks: OCIHooks) throws {
        let kinds: [(String, [OCIHook])] = [("prestart", hooks.prestart), ("createRuntime", hooks.createRuntime),
                                             ("poststart", hooks.poststart), ("poststop", hooks.poststop)]
        for (kind, list) in kinds {
            for (i, hook) in list.enumerated() {
                let at = OCIConfigValue(.null, path: "hooks.\(kind)[\(i)].path")
                guard let st = FS.stat(hook.path) else { throw at.error("\(hook.path) does not exist") }
                guard st.st_mode & S_IFMT != S_IFDIR else { throw at.error("\(hook.path) is a directory, not a program") }
            }
        }
    }

    /// NS_GET_NSTYPE, _IO(0xb7, 0x3).
    static let nsGetType: UInt = 0xb703
    /// statfs's f_type of nsfs (namespace files).
    static let nsfsMagic = 0x6e73_6673

    /// A namespace to join is a namespace file of its type (a regular file
    /// there would make setns fail late, with EINVAL).
    static func checkNamespacePaths(_ namespaces: [OCINamespace]) throws {
        for (i, ns) in namespaces.enumerated() {
            guard let path = ns.path else { continue }
            let at = OCIConfigValue(.null, path: "linux.namespaces[\(i)].path")
            // By its file system first, without opening it: open(2) of a FIFO
            // named here would block, of a device could act.
            var fs = statfs()
            guard statfs(path, &fs) == 0 else { throw at.error("\(path): \(errnoText(errno))") }
            guard Int(fs.f_type) == nsfsMagic else { throw at.error("\(path) is not a namespace") }
            let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
            guard fd >= 0 else { throw at.error("\(path): \(errnoText(errno))") }
            defer { close(fd) }
            guard fstatfs(fd, &fs) == 0, Int(fs.f_type) == nsfsMagic else { throw at.error("\(path) is not a namespace") }
            let type = sys_ioctl_int(fd, nsGetType, 0)
            let expected = OCILinuxConfig.namespaceTypes.first { $0.0 == ns.type }?.1
            guard type >= 0, UInt(type) == expected else {
                let actual = OCILinuxConfig.namespaceTypes.first { $0.1 == UInt(max(type, 0)) }?.0 ?? "unknown"
                throw at.error("\(path) is a \(actual) namespace, not a \(ns.type) namespace")
            }
        }
    }

    /// runc's rule: a sysctl is set only inside a namespace of the
    /// container's own, never the host's (IPC ones need an ipc namespace,
    /// net.* a network namespace other than the host's, kernel.domainname
    /// a uts namespace; kernel.hostname is the hostname field's).
    static func checkSysctls(_ sysctl: [OCISysctl], namespaces: [OCINamespace]) throws {
        let ipcKeys: Set<String> = ["kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                                    "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"]
        func has(_ type: String) -> Bool { namespaces.contains { $0.type == type } }
        for entry in sysctl {
            let at = OCIConfigValue(.null, path: "linux.sysctl.\(entry.key)")
            let key = String(entry.key.map { $0 == "/" ? "." : $0 })
            if ipcKeys.contains(key) || key.hasPrefix("fs.mqueue.") {
                guard has("ipc") else { throw at.error("not allowed in the host's ipc namespace (linux.namespaces has no ipc)") }
            } else if key.hasPrefix("net.") {
                guard let net = namespaces.first(where: { $0.type == "network" }) else {
                    throw at.error("not allowed in the host's network namespace (linux.namespaces has no network)")
                }
                if let path = net.path, isHostNetworkNamespace(path) {
                    throw at.error("not allowed: linux.namespaces joins the host's network namespace (\(path))")
                }
            } else if key == "kernel.domainname", has("uts") {
                continue
            } else if key == "kernel.hostname" {
                throw at.error("not allowed: set the hostname field instead")
            } else {
                throw at.error("not in a namespace of the container's own; it would change the host")
            }
        }
    }

    /// A host name or domain name is set in a uts namespace of the
    /// container's, never the host's (runc's rule).
    static func checkHostNames(_ c: OCIBundleConfig) throws {
        guard !c.linux.namespaces.contains(where: { $0.type == "uts" }) else { return }
        for (key, value) in [("hostname", c.hostname), ("domainname", c.domainname)] {
            if let v = value, !v.isEmpty {
                throw OCIConfigValue(.null, path: key).error("'\(v)' needs a uts namespace (linux.namespaces has none); it would rename the host")
            }
        }
    }

    static func isHostNetworkNamespace(_ path: String) -> Bool {
        guard let a = FS.stat(path), let b = FS.stat("/proc/self/ns/net") else { return false }
        return a.st_dev == b.st_dev && a.st_ino == b.st_ino
    }
}

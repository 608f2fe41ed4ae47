#if canImport(Glibc)
import Glibc
#endif
import CConfinement
import CSyscalls
import NativeThreads
import RunSettingsWire
import RuntimeSpec
import SharedDirectory
import SwvmBase

/// What an OCI bundle becomes inside a VM (`swvm create` at the VM level):
/// config.json's root.path, a plain host directory, is virtio-9p share 0
/// (writes reach the host's rootfs, as a container's do); a bind of a host
/// directory is a further share; a bind of a host file (podman's
/// /etc/hosts, resolv.conf...) is copied into the guest, since sharing its
/// directory would hand the guest the engine's other files there (podman's
/// conmon.pid among them). The guest's confinement then applies config.json
/// with the same C code a container's init runs.
public struct VMMOCIPlan {
    /// The host spec with the guest's paths: root.path and each bind's
    /// source as the guest sees them.
    public var guestSpec: RunSpec
    public var shares: [Share] = []
    /// Guest path and contents of each copied file.
    public var files: [(path: String, contents: String)] = []
    /// CLONE_NEW* flags of the namespaces the workload gets in the guest.
    public var newNamespaces: UInt32 = 0
    /// The root as a disk of the bundle's image layers (OCIRootDisk), or
    /// nil: root.path shared over 9p, for the reason in `root`.
    public var rootDisk: OCIRootDisk?
    /// Which root the VM has, as the run reports it: "disk (...)" or "9p (why)".
    public var root = ""

    /// The largest host file a bind may copy into the guest.
    static let maxCopiedFile = 1 << 20
    static let filesDirectory = "/.swvm-files"

    public init(_ spec: RunSpec) throws {
        guard var oci = spec.oci else { throw SwvmError(.internalError, "VMMOCIPlan: the RunSpec has no OCI settings") }
        guestSpec = spec
        newNamespaces = try VMMOCIPlan.namespaces(oci)
        if let uts = VMMOCIPlan.podNamespacePath(oci, "uts"), spec.hostname.isEmpty {
            guestSpec.hostname = try VMMOCIPlan.hostname(ofUTSNamespace: uts)
        }
        switch VMMOCIPlan.chooseRoot(oci) {
        case .success(let disk):
            rootDisk = disk
            root = "disk (\(disk.lowers.count) image layers, \(Path.basename(disk.lock.path)), upper in guest RAM)"
            oci.rootPath = VMMOCIPlan.diskRootPath
        case .failure(let why):
            root = "9p (\(why.description.map { $0.isNewline ? " " : $0 }.reduce("") { $0 + String($1) }))"
            shares.append(Share(hostPath: oci.rootPath, readOnly: spec.readOnlyRoot))
            oci.rootPath = VMMOCIPlan.sharePath(0)
        }
        for i in oci.mounts.indices where VMMOCIPlan.isBind(oci.mounts[i]) {
            oci.mounts[i].source = try guestSource(oci.mounts[i], what: "config.json mounts[\(i)]")
        }
        guestSpec.oci = oci
    }

    static func sharePath(_ n: Int) -> String { "\(SWVM_VOLUMES_DIR)/\(n)" }

    /// Where guest-init mounts the disk root's overlay (init.c setup_root).
    static let diskRootPath = "/newroot"

    /// The disk root when config.json allows it: no rootfs propagation
    /// asked (a guest overlay cannot share mounts with the host's rootfs).
    static func chooseRoot(_ oci: OCISettings) -> Result<OCIRootDisk, OCIRootRefusal> {
        if !oci.rootfsPropagation.isEmpty { return .failure(OCIRootRefusal("linux.rootfsPropagation \(oci.rootfsPropagation)")) }
        let annotations = Dictionary(oci.annotations.map { ($0.key, $0.value) }, uniquingKeysWith: { $1 })
        return OCIRootDisk.choose(rootPath: oci.rootPath, annotations: annotations)
    }

    /// runc's test: type "bind", or a "bind"/"rbind" option.
    static func isBind(_ m: OCIMount) -> Bool {
        m.type == "bind" || m.options.contains("bind") || m.options.contains("rbind")
    }

    /// Where a bind's host source is in the guest: a share, or a copy.
    mutating func guestSource(_ m: OCIMount, what: String) throws -> String {
        guard m.source.hasPrefix("/"), let st = FS.stat(m.source) else {
            throw SwvmError(.notFound, "\(what).source \"\(m.source)\": no such host file or directory (a VM reaches only those swvm shares or copies)")
        }
        switch st.st_mode & S_IFMT {
        case S_IFDIR:
            shares.append(Share(hostPath: m.source, readOnly: m.options.contains("ro")))
            return VMMOCIPlan.sharePath(shares.count - 1)
        case S_IFREG:
            let bytes = try FS.readFile(m.source, limit: VMMOCIPlan.maxCopiedFile + 1)
            guard bytes.count <= VMMOCIPlan.maxCopiedFile, !bytes.contains(0), let text = String(validating: bytes, as: UTF8.self) else {
                throw SwvmError(.unsupported, "\(what).source \"\(m.source)\": a host file bound into a VM is copied, and this one is over 1 MiB or not text")
            }
            let path = "\(VMMOCIPlan.filesDirectory)/\(files.count)"
            files.append((path, text))
            return path
        default:
            throw SwvmError(.unsupported, "\(what).source \"\(m.source)\": only host directories and files can be bound into a VM, not devices, sockets or FIFOs")
        }
    }

    /// config.json's namespaces at the VM level. A user namespace, and
    /// joining a host namespace by path, cannot apply to a guest. A network
    /// namespace path is the pod's (podman's netavark, CNI): the VMM joins
    /// its interface to the guest's eth0 (PodNetwork), so the workload
    /// stays in guest-init's network namespace, where eth0 is, instead of
    /// getting a new one.
    static func namespaces(_ oci: OCISettings) throws -> UInt32 {
        // What a guest can give its workload: not a user or time namespace.
        let flags = Dictionary(uniqueKeysWithValues: OCILinuxConfig.namespaceTypes.filter { $0.0 != "user" && $0.0 != "time" })
        var result: UInt32 = 0
        for (i, ns) in oci.namespaces.enumerated() {
            let what = "config.json linux.namespaces[\(i)] (\(ns.type))"
            guard let flag = flags[ns.type] else {
                throw SwvmError(.unsupported, "\(what): a \(ns.type) namespace cannot apply at the VM level (\(IsolationAnnotation.key)=vm): the VM's kernel is the boundary")
            }
            if let path = ns.path, !podShared.contains(ns.type) {
                throw SwvmError(.unsupported, "\(what).path \"\(path)\": a host namespace cannot be joined from inside a VM")
            }
            if let path = ns.path, ns.type == "network" {
                if try isOwnNetworkNamespace(path) {
                    throw SwvmError(.unsupported, "\(what).path \"\(path)\": the host's network namespace (a pod on the node's network), which a VM cannot have")
                }
                continue
            }
            result |= UInt32(flag)
        }
        guard result & UInt32(sys_CLONE_NEWNET) != 0 || podNetworkPath(oci) != nil else {
            throw SwvmError(.unsupported, "config.json linux.namespaces: no network namespace, i.e. the host's network, which a VM cannot have")
        }
        if !oci.uidMappings.isEmpty || !oci.gidMappings.isEmpty {
            throw SwvmError(.unsupported, "config.json linux.uidMappings: a user namespace cannot apply at the VM level (\(IsolationAnnotation.key)=vm)")
        }
        return result
    }

    /// The pod's network namespace, when config.json joins one by path.
    public static func podNetworkPath(_ oci: OCISettings) -> String? {
        podNamespacePath(oci, "network")
    }

    /// The namespaces a CRI engine has a pod's containers join by path (the
    /// sandbox's /proc/PID/ns/...): the network one the VMM joins its tap
    /// to; the uts and ipc ones become the guest's own, since the pod's
    /// cannot reach into a VM: the hostname is copied from the pod's, SysV
    /// IPC is not shared with the pod's other containers.
    static let podShared: Set<String> = ["network", "uts", "ipc"]

    static func podNamespacePath(_ oci: OCISettings, _ type: String) -> String? {
        oci.namespaces.first { $0.type == type && $0.path != nil }?.path
    }

    /// Whether `path` is the network namespace this process is in (the
    /// host's: the runtime runs there), by device and inode. A missing
    /// path is not: joining it fails later, naming it.
    static func isOwnNetworkNamespace(_ path: String) throws -> Bool {
        guard let joined = FS.stat(path) else { return false }
        guard let own = FS.stat("/proc/self/ns/net") else { throw SwvmError.errno("stat /proc/self/ns/net") }
        return joined.st_dev == own.st_dev && joined.st_ino == own.st_ino
    }

    /// The hostname in the UTS namespace at `path`, read on a thread of
    /// its own that joins it (setns moves only the calling thread) and ends.
    static func hostname(ofUTSNamespace path: String) throws -> String {
        let fd = try FileDescriptor.open(path, O_RDONLY | O_CLOEXEC)
        let result = Locked<Result<String, SwvmError>>(.failure(SwvmError(.internalError, "no hostname read")))
        let raw = fd.raw
        let thread = try NativeThread(name: "uts") {
            guard sys_setns(raw, Int32(sys_CLONE_NEWUTS)) == 0 else {
                let e = errno
                result.with { $0 = .failure(SwvmError(.systemCall, "setns to the UTS namespace \(path): \(String(cString: strerror(e)))")) }
                return
            }
            var u = utsname()
            uname(&u)
            let name = withUnsafeBytes(of: u.nodename) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            result.with { $0 = .success(name) }
        }
        thread.join()
        return try result.current.get()
    }

    /// MSG_CONFIG for guest-init: config.json's settings as a container's
    /// init gets them (OCI mode), and what a VM adds: the host's time,
    /// fresh entropy, the guest cgroup's limits, the shares to mount, the
    /// copied files. The start gate is guest-init's (no exec FIFO here).
    public func settings(seccompProgram: [UInt8]?, entropy: [UInt8]) throws -> [UInt8] {
        var level = RunSettings.OCILevel()
        level.newNamespaces = newNamespaces
        var bytes = try RunSettings.encodeOCI(guestSpec, seccompProgram: seccompProgram, level: level)
        var f = RunSettings.Fields()
        f.add(CFG_INTERACTIVE, true)
        // No CFG_EXEC_ZYGOTE: the zygote's set-up on the guest's one vCPU
        // made `podman run --rm IMAGE true` 1.25x slower (BENCHMARKS.md,
        // issue 19, twelfth session); guest-init starts it after the first exec.
        f.add(CFG_TIME, le64(Clock.realtimeNanos()))
        f.add(CFG_ENTROPY, entropy)
        if let m = guestSpec.resources.memory { f.add(CFG_MEMORY, le64(m)) }
        if let p = guestSpec.resources.pids { f.add(CFG_PIDS, le64(UInt64(bitPattern: p))) }
        for (n, s) in shares.enumerated() { f.add(CFG_VOLUME, s.readOnly ? 1 : 0, VMMOCIPlan.sharePath(n), "") }
        for file in files { f.add(CFG_VM_FILE, 0, file.path, file.contents) }
        if let disk = rootDisk {
            f.add(CFG_OCI_DISK_ROOT, true)
            for e in disk.upper { f.add(CFG_OCI_UPPER, [e.kind] + le32(e.mode) + Array(e.path.utf8) + [0] + Array(e.contents.utf8)) }
        }
        bytes += f.bytes
        return bytes
    }
}

/// The annotation that picks the isolation level in config.json.
public enum IsolationAnnotation {
    public static let key = "swvm.isolation"
}

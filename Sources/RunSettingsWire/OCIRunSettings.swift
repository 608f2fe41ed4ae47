import CConfinement
import RuntimeSpec
import SwvmBase

/// OCI mode's wire form (swvm_run_settings.h, CFG_OCI_*): a RunSpec with
/// `oci` set, as the container child applies it (config.json's root,
/// mounts in order, devices, sysctls, namespaces, the five capability
/// sets), for a container's init and for a process exec'd into it.
extension RunSettings {
    /// What the parent prepared for the child besides the RunSpec.
    public struct OCILevel {
        /// How the child mounts a config.json mount of type "cgroup".
        public var cgroupMounts: [CgroupMount] = []
        /// Namespaces joined by path: a CLONE_NEW* type and an fd the
        /// parent opened and checked (the child inherits it).
        public var join: [(type: UInt32, fd: Int32)] = []
        /// CLONE_NEW* flags of the namespaces the container gets new.
        public var newNamespaces: UInt32 = 0
        /// An O_PATH fd of the exec FIFO (nil for an exec).
        public var execFIFO: Int32?
        public var preserveFDs: UInt32 = 0
        /// The process runs in a user namespace (new or joined): it becomes root there first.
        public var userNamespace = false

        public init() {}
    }

    /// The settings of an OCI container's init (or, without an exec FIFO,
    /// of a process exec'd into it). Throws for mount options the wire
    /// cannot carry and numbers out of range, naming config.json's field.
    public static func encodeOCI(_ spec: RunSpec, seccompProgram: [UInt8]?, level: OCILevel) throws -> [UInt8] {
        guard let oci = spec.oci else { throw SwvmError(.internalError, "encodeOCI: the RunSpec has no OCI settings") }
        let window = (rows: oci.consoleRows, cols: oci.consoleCols)
        var f = processFields(spec, seccompProgram: seccompProgram, window: window)
        f.add(CFG_READONLY, spec.readOnlyRoot)
        for p in spec.maskedPaths { f.add(CFG_MASKED, p) }
        for p in spec.readonlyPaths { f.add(CFG_READONLY_PATH, p) }
        f.add(CFG_OCI_ROOT, le32(try rootPropagation(oci.rootfsPropagation)) + Array(oci.rootPath.utf8))
        for (i, m) in oci.mounts.enumerated() { f.add(CFG_OCI_MOUNT, try mountValue(m, what: "mounts[\(i)]")) }
        for (i, d) in oci.devices.enumerated() { f.add(CFG_OCI_DEVICE, try deviceValue(d, what: "linux.devices[\(i)]")) }
        for s in oci.sysctl { f.add(CFG_OCI_SYSCTL, Array(s.key.utf8) + [0] + Array(s.value.utf8)) }
        let c = oci.capabilities
        f.add(CFG_OCI_CAPS, le64(c.bounding) + le64(c.effective) + le64(c.inheritable) + le64(c.permitted) + le64(c.ambient))
        f.add(CFG_OCI_UMASK, le32(oci.umask ?? 0o022))
        for j in level.join { f.add(CFG_OCI_JOIN_NS, le32(j.type) + le32(UInt32(bitPattern: j.fd))) }
        f.add(CFG_OCI_NAMESPACES, le32(level.newNamespaces))
        if let fifo = level.execFIFO { f.add(CFG_OCI_EXEC_FIFO, le32(UInt32(bitPattern: fifo))) }
        if level.preserveFDs > 0 { f.add(CFG_OCI_PRESERVE_FDS, le32(level.preserveFDs)) }
        if level.userNamespace { f.add(CFG_USERNS, true) }
        for m in level.cgroupMounts {
            switch m {
            case .v1(let c): f.add(CFG_CGROUP_MOUNT, UInt8(CGROUP_MOUNT_V1.rawValue), c, "")
            case .bind(let name, let source): f.add(CFG_CGROUP_MOUNT, UInt8(CGROUP_MOUNT_BIND.rawValue), name, source)
            }
        }
        return f.bytes
    }

    /// linux.rootfsPropagation as MS_* flags ("" : 0, the child's rslave default).
    public static func rootPropagation(_ word: String) throws -> UInt32 {
        if word.isEmpty { return 0 }
        guard let p = OCIMountOptions.propagationWords[word] else {
            throw SwvmError(.invalidArgument, "config.json linux.rootfsPropagation: unknown propagation \"\(word)\"")
        }
        return p
    }

    static func mountValue(_ m: OCIMount, what: String) throws -> [UInt8] {
        for (field, text) in [("destination", m.destination), ("type", m.type), ("source", m.source)] where text.utf8.contains(0) {
            throw SwvmError(.invalidArgument, "config.json \(what).\(field): holds a NUL byte")
        }
        var options = try OCIMountOptions(m.options, what: what)
        // A cgroup mount is read-only unless asked for "rw" (runc's default mounts say "ro").
        if m.type == "cgroup" && !m.options.contains("rw") { options.flags |= OCIMountOptions.rdonly }
        return options.encoded(type: m.type, source: m.source, destination: m.destination)
    }

    static func deviceValue(_ d: OCIDevice, what: String) throws -> [UInt8] {
        guard let type = d.type.utf8.first, d.type.utf8.count == 1, "cbup".utf8.contains(type) else {
            throw SwvmError(.invalidArgument, "config.json \(what).type: \"\(d.type)\" is not c, b, u or p")
        }
        // makedev's ranges: 12-bit major, 20-bit minor.
        guard (0...0xfff).contains(d.major), (0...0xf_ffff).contains(d.minor) else {
            throw SwvmError(.invalidArgument, "config.json \(what): major \(d.major) or minor \(d.minor) out of range")
        }
        guard d.path.hasPrefix("/"), !d.path.utf8.contains(0), !Path.components(d.path).contains("..") else {
            throw SwvmError(.invalidArgument, "config.json \(what).path: \"\(d.path)\" is not an absolute path without ..")
        }
        // The file type bits, when given, are the node's type already.
        let mode = (d.fileMode ?? 0o666) & ~UInt32(0o170000)
        guard mode <= 0o7777 else { throw SwvmError(.invalidArgument, "config.json \(what).fileMode: \(mode) out of range") }
        return [type] + le32(UInt32(d.major)) + le32(UInt32(d.minor)) + le32(mode) + le32(d.uid ?? 0) + le32(d.gid ?? 0)
            + Array(d.path.utf8)
    }
}

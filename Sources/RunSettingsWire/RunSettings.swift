import CConfinement
import RuntimeSpec
import SwvmBase

/// The run's settings in the wire form of swvm_run_settings.h (the one
/// definition of its tags), as the C confinement decodes them: in
/// guest-init over the VM's control port, and in the container's child.
public enum RunSettings {
    /// What only one isolation level needs besides the RunSpec.
    public enum Level {
        /// The guest builds its root from the image's block device;
        /// `entropy` seeds its CRNG.
        /// `netInterface`: eth0 with --network bridge (CFG_NET_IF).
        case vm(rootDevice: String, hostTimeNanos: UInt64, probeSource: String?, entropy: [UInt8]?, netInterface: swvm_net_if? = nil)
        /// The container child builds its root from the image root on the host.
        case container(stateDir: String, cgroupMounts: [CgroupMount])
    }

    /// How /sys/fs/cgroup is made in a container (none: one cgroup2 mount).
    public enum CgroupMount: Equatable {
        /// The v1 hierarchy of a controller.
        case v1(controller: String)
        /// The run's own cgroup directory, bound at /sys/fs/cgroup/NAME.
        case bind(name: String, source: String)
    }

    /// A field list being built: u16 tag, u32 length, bytes.
    public struct Fields {
        /// A VM's eth0 (CFG_NET_IF) and, with --network ns:PATH, the pod
        /// interface's further addresses and routes (the RunSpec's, which
        /// GuestNetwork.apply filled in).
        public mutating func addGuestNetwork(_ netInterface: swvm_net_if, _ spec: RunSpec) {
            var n = netInterface
            var bytes = [UInt8](repeating: 0, count: Int(SWVM_NET_IF_LEN))
            swvm_net_if_encode(&n, &bytes)
            add(CFG_NET_IF, bytes)
            for a in spec.podAddresses { add(CFG_NET_ADDR, a.address.bytes + [UInt8(a.prefix)]) }
            for r in spec.podRoutes { add(CFG_NET_ROUTE, r.destination.bytes + [UInt8(r.prefix)] + (r.gateway ?? IPv4Address(0)).bytes) }
        }

        public private(set) var bytes: [UInt8] = []
        public init() {}

        public mutating func add(_ tag: swvm_config_tag, _ value: [UInt8]) {
            bytes += le16(UInt16(tag.rawValue)) + le32(UInt32(value.count)) + value
        }
        public mutating func add(_ tag: swvm_config_tag, _ text: String) { add(tag, Array(text.utf8)) }
        public mutating func add(_ tag: swvm_config_tag, _ flag: Bool) { add(tag, [flag ? 1 : 0]) }
        /// u8 flag, first string, NUL, second string.
        public mutating func add(_ tag: swvm_config_tag, _ flag: UInt8, _ first: String, _ second: String) {
            add(tag, [flag] + Array(first.utf8) + [0] + Array(second.utf8))
        }
    }

    public static func encode(_ spec: RunSpec, seccompProgram: [UInt8]?, window: (rows: UInt16, cols: UInt16)?,
                              level: Level) -> [UInt8] {
        var f = processFields(spec, seccompProgram: seccompProgram, window: window)
        f.add(CFG_READONLY, spec.readOnlyRoot)
        f.add(CFG_INTERACTIVE, spec.interactive)
        if spec.initProcess { f.add(CFG_INIT, true) }
        for p in spec.maskedPaths { f.add(CFG_MASKED, p) }
        for p in spec.readonlyPaths { f.add(CFG_READONLY_PATH, p) }
        for m in spec.mounts {
            switch m.kind {
            case .tmpfs: f.add(CFG_TMPFS, m.readOnly ? 1 : 0, m.destination, m.options.joined(separator: ","))
            case .bind(let source): f.add(CFG_VOLUME, m.readOnly ? 1 : 0, source, m.destination)
            }
        }
        // The same /etc/hosts and resolv.conf at both levels.
        f.add(CFG_ETC_HOSTS, spec.etcHosts)
        if let r = spec.resolvConf { f.add(CFG_RESOLV_CONF, r) }
        switch level {
        case .vm(let rootDevice, let time, let probe, let entropy, let netInterface):
            if let n = netInterface { f.addGuestNetwork(n, spec) }
            f.add(CFG_ROOTDEV, rootDevice)
            f.add(CFG_TIME, le64(time))
            if let m = spec.resources.memory { f.add(CFG_MEMORY, le64(m)) }
            if let p = spec.resources.pids { f.add(CFG_PIDS, le64(UInt64(bitPattern: p))) }
            if let p = probe { f.add(CFG_PROBE, p) }
            if let e = entropy { f.add(CFG_ENTROPY, e) }
        case .container(let stateDir, let cgroupMounts):
            f.add(CFG_ROOTFS, spec.rootfs)
            f.add(CFG_STATE_DIR, stateDir)
            if let p = spec.probe { f.add(CFG_PROBE, p) }
            if spec.network == .host { f.add(CFG_HOST_NETWORK, true) }
            if spec.userNamespace != nil { f.add(CFG_USERNS, true) }
            for m in cgroupMounts {
                switch m {
                case .v1(let c): f.add(CFG_CGROUP_MOUNT, UInt8(CGROUP_MOUNT_V1.rawValue), c, "")
                case .bind(let name, let source): f.add(CFG_CGROUP_MOUNT, UInt8(CGROUP_MOUNT_BIND.rawValue), name, source)
                }
            }
        }
        return f.bytes
    }

    /// What every run's process gets, the same for a container's init and
    /// for a process exec'd into it.
    static func processFields(_ spec: RunSpec, seccompProgram: [UInt8]?, window: (rows: UInt16, cols: UInt16)?) -> Fields {
        var f = Fields()
        for a in spec.process.args { f.add(CFG_ARG, a) }
        for e in spec.process.env { f.add(CFG_ENV, e) }
        f.add(CFG_CWD, spec.process.cwd)
        f.add(CFG_UID, le32(spec.process.uid))
        f.add(CFG_GID, le32(spec.process.gid))
        f.add(CFG_GROUPS, spec.process.additionalGids.flatMap(le32))
        f.add(CFG_HOSTNAME, spec.hostname)
        for r in spec.process.rlimits { f.add(CFG_RLIMIT, le32(UInt32(bitPattern: r.resource)) + le64(r.soft) + le64(r.hard)) }
        f.add(CFG_CAPS, le64(Capabilities.mask(spec.capabilities)))
        if let p = seccompProgram { f.add(CFG_SECCOMP, p) }
        f.add(CFG_NNP, spec.noNewPrivileges)
        // Without a size (swvm's stdin is no terminal) 0x0: the kernel's default stays.
        if spec.terminal { f.add(CFG_TERMINAL, le16(window?.rows ?? 0) + le16(window?.cols ?? 0)) }
        return f
    }
}

/// The masked and read-only paths a run's confinement applied, as its
/// child reported them (MSG_CONFINED): a path the kernel lacks is skipped.
public struct ConfinedPaths: Equatable, Sendable {
    public var masked: [String] = []
    public var readOnly: [String] = []
    public init(masked: [String] = [], readOnly: [String] = []) {
        self.masked = masked
        self.readOnly = readOnly
    }

    /// Decodes MSG_CONFINED's payload with the C decoder of the settings'
    /// fields (it comes from guest-init, untrusted, in a VM).
    public init(decoding payload: [UInt8]) throws {
        var fields = swvm_settings()
        var error = [CChar](repeating: 0, count: 256)
        guard payload.withUnsafeBufferPointer({ swvm_fields_decode($0.baseAddress, $0.count, &fields, &error, error.count) }) == 0 else {
            throw SwvmError(.internalError, "the report of the masked and read-only paths applied: \(String(cString: error))")
        }
        defer { swvm_settings_free(&fields) }
        func strings(_ list: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ n: UInt32) -> [String] {
            (0..<Int(n)).compactMap { list?[$0].map { String(cString: $0) } }
        }
        self.init(masked: strings(fields.masked, fields.nmasked), readOnly: strings(fields.readonly_paths, fields.nreadonly_paths))
    }
}

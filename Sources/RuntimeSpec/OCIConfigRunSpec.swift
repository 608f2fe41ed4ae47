import Seccomp
import SwvmBase

/// A checked config.json as a RunSpec: what every run has in its fields,
/// what only a bundle has in `oci`. Defaults are runc's, not `swvm run`'s:
/// nothing masked, no seccomp and no capabilities unless config.json asks.
extension OCIConfig {
    static func runSpec(_ c: OCIBundleConfig, process p: OCIProcessConfig, root: String, id: String) throws -> RunSpec {
        let caps = p.boundingNames ?? []
        let seccomp = try c.linux.seccomp.map { try SeccompProfile.parse($0, capabilities: caps, context: "config.json linux.seccomp") }
        var spec = RunSpec(id: id, rootfs: root, process: processSpec(p), hostname: c.hostname ?? "", capabilities: caps, seccomp: seccomp)
        spec.readOnlyRoot = c.rootReadonly
        spec.noNewPrivileges = p.noNewPrivileges ?? false
        spec.maskedPaths = c.linux.maskedPaths ?? []
        spec.readonlyPaths = c.linux.readonlyPaths ?? []
        spec.terminal = p.terminal
        spec.resources = resourceLimits(c.linux.resources)
        // No network namespace in config.json: the host's, as runc.
        spec.network = c.linux.namespaces.contains { $0.type == "network" } ? .none : .host
        spec.oci = settings(c, process: p, root: root)
        return spec
    }

    static func processSpec(_ p: OCIProcessConfig) -> ProcessSpec {
        let uid = p.uid ?? 0, gid = p.gid ?? 0
        var process = ProcessSpec(args: p.args, env: p.env, cwd: p.cwd.isEmpty ? "/" : p.cwd, uid: uid, gid: gid,
                                  additionalGids: p.additionalGids, user: "\(uid):\(gid)")
        process.rlimits = p.rlimits
        return process
    }

    static func settings(_ c: OCIBundleConfig, process p: OCIProcessConfig, root: String) -> OCISettings {
        var oci = OCISettings(rootPath: root)
        oci.mounts = c.mounts
        oci.namespaces = c.linux.namespaces
        oci.devices = c.linux.devices
        oci.sysctl = c.linux.sysctl
        oci.uidMappings = c.linux.uidMappings
        oci.gidMappings = c.linux.gidMappings
        oci.cgroupsPath = c.linux.cgroupsPath
        oci.rootfsPropagation = c.linux.rootfsPropagation
        oci.resources = c.linux.resources
        oci.hooks = c.hooks
        oci.annotations = c.annotations
        oci.domainname = c.domainname
        oci.timeOffsets = c.linux.timeOffsets
        oci.personality = c.linux.personality
        applyProcessSettings(p, to: &oci)
        return oci
    }

    static func applyProcessSettings(_ p: OCIProcessConfig, to oci: inout OCISettings) {
        oci.oomScoreAdj = p.oomScoreAdj
        oci.umask = p.umask
        oci.capabilities = p.capabilities ?? OCICapabilitySets()
        oci.consoleRows = p.consoleRows
        oci.consoleCols = p.consoleCols
    }

    /// What `swvm run` has of linux.resources: memory, CPU bandwidth, pids.
    static func resourceLimits(_ r: OCIResources) -> ResourceLimits {
        var limits = ResourceLimits()
        if let m = r.memory.limit, m > 0 { limits.memory = UInt64(m) }
        if let q = r.cpu.quota, q > 0 { limits.cpuQuota = q }
        if let period = r.cpu.period, period > 0 { limits.cpuPeriod = period }
        if let pids = r.pidsLimit, pids > 0 { limits.pids = pids }
        return limits
    }

    /// A container's RunSpec with the process of `swvm exec -p` (or one
    /// the exec flags made): its program, identity, capabilities, limits
    /// and terminal; the container's namespaces, root and seccomp stay.
    public static func applyProcess(_ p: OCIProcessConfig, to spec: inout RunSpec) {
        spec.process = processSpec(p)
        spec.capabilities = p.boundingNames ?? []
        spec.noNewPrivileges = p.noNewPrivileges ?? false
        spec.terminal = p.terminal
        if var oci = spec.oci {
            let oom = oci.oomScoreAdj
            applyProcessSettings(p, to: &oci)
            oci.oomScoreAdj = p.oomScoreAdj ?? oom
            spec.oci = oci
        }
    }
}

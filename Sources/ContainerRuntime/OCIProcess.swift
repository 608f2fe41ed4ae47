#if canImport(Glibc)
import Glibc
#endif
import CConfinement
import CSyscalls
import Cgroups
import RuntimeSpec
import RunSettingsWire
import Seccomp
import SwvmBase

/// The stdio and fds an OCI container's process gets (`swvm create`,
/// `swvm exec`), as runc takes them.
public struct OCICreateIO {
    /// Put on the process's 0, 1, 2 (its own 0, 1, 2 by default: inherited as they are).
    public var stdin: Int32
    public var stdout: Int32
    public var stderr: Int32
    /// --console-socket, connected: with process.terminal the pty master
    /// goes there (SCM_RIGHTS), as runc sends it.
    public var consoleSocket: Int32?
    /// --preserve-fds: fds 3 ..< 3+N stay open in the process.
    public var preserveFDs: Int
    /// The exec FIFO the lifecycle made (create only). The init opens it
    /// as the process's user, after the user switch: make it as runc does
    /// (mode 0622, owned by the container's root). `swvm start` should not
    /// block on it for ever: the init may die before it opens it.
    public var execFIFO: String
    /// Create only: called with the init's pid once its mounts are made
    /// (before pivot_root); runs the hooks of swvm's namespaces and returns
    /// those the init runs itself (swvm_oci_hooks.h). nil: the init runs none.
    public var hooks: ((pid_t) throws -> OCIHookBlob)? = nil

    public init(stdin: Int32 = 0, stdout: Int32 = 1, stderr: Int32 = 2, consoleSocket: Int32? = nil, preserveFDs: Int = 0,
                execFIFO: String = "") {
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.consoleSocket = consoleSocket
        self.preserveFDs = preserveFDs
        self.execFIFO = execFIFO
    }
}

/// A container `swvm create` made: its init waits on the exec FIFO.
public struct OCICreated {
    public var pid: pid_t
    /// The cgroup's directories (keep them: pause, update, ps, delete).
    public var cgroupPaths: [String]
    /// /proc/PID/stat field 22, so a reused pid is never taken for the init.
    public var startTime: UInt64
}

/// The process side of swvm as an OCI runtime: a container's init made
/// from a RunSpec with `oci` set (config.json applied as runc applies it,
/// by the C confinement), and processes exec'd into a running container.
public enum OCIProcess {
    /// Creates the container: namespaces (joined ones opened and checked
    /// first), the cgroup at linux.cgroupsPath (or swvm/ID), id maps,
    /// oom_score_adj, the terminal relayed to the console socket; returns
    /// once the init reports it waits on the exec FIFO. A failure before
    /// that kills the init and removes the cgroup.
    public static func create(_ spec: RunSpec, io: OCICreateIO, stateDir: String) throws -> OCICreated {
        guard let oci = spec.oci else { throw SwvmError(.internalError, "OCIProcess.create: the RunSpec has no OCI settings") }
        if spec.terminal && io.consoleSocket == nil {
            throw SwvmError(.invalidArgument, "config.json process.terminal is true but no --console-socket was given")
        }
        let namespaces = try OCINamespaces(oci.namespaces)
        try checkSettings(spec, oci, namespaces)
        let filter = try spec.seccomp.map { try SeccompCompiler.compile($0) }
        let cgroup = try makeCgroup(spec, oci)
        do {
            let fifo = try FileDescriptor.open(io.execFIFO, sys_O_PATH | O_CLOEXEC)
            var level = RunSettings.OCILevel()
            level.cgroupMounts = cgroupMounts(cgroup.paths, namespaces: namespaces)
            level.join = namespaces.join
            level.newNamespaces = namespaces.newFlags
            level.execFIFO = fifo.raw
            level.preserveFDs = UInt32(io.preserveFDs)
            level.userNamespace = namespaces.has("user")
            var settings = try decode(RunSettings.encodeOCI(spec, seccompProgram: filter?.program, level: level))
            defer { swvm_settings_free(&settings) }
            let child = try clone(&settings, io: io, terminal: spec.terminal)
            namespaces.close()
            fifo.close()
            try release(child, spec: spec, cgroup: cgroup, io: io)
            return OCICreated(pid: child.pid, cgroupPaths: cgroup.paths, startTime: try startTime(of: child.pid))
        } catch {
            cgroup.destroy()
            throw error
        }
    }

    /// What runc's validator refuses before anything is made.
    static func checkSettings(_ spec: RunSpec, _ oci: OCISettings, _ ns: OCINamespaces) throws {
        try ns.checkSysctls(oci.sysctl)
        if !spec.hostname.isEmpty && !ns.has("uts") {
            throw SwvmError(.invalidArgument, "config.json hostname: setting it needs a private UTS namespace (linux.namespaces has none)")
        }
        if (!oci.uidMappings.isEmpty || !oci.gidMappings.isEmpty) && !ns.isNew("user") {
            throw SwvmError(.invalidArgument, "config.json linux.uidMappings/gidMappings need a new user namespace")
        }
        if ns.isNew("user") && (oci.uidMappings.isEmpty || oci.gidMappings.isEmpty) {
            throw SwvmError(.invalidArgument, "config.json linux: a new user namespace needs uidMappings and gidMappings")
        }
    }

    /// The cgroup at linux.cgroupsPath (swvm/ID when absent), with the
    /// run's limits and a device allow-list: runc's defaults and linux.devices.
    static func makeCgroup(_ spec: RunSpec, _ oci: OCISettings) throws -> Cgroup {
        let cgroup = try Cgroups.create(cgroupsPath: oci.cgroupsPath ?? "/swvm/\(spec.id)", cpuset: Cgroups.needsCpuset(oci.resources))
        do {
            try cgroup.apply(spec.resources)
            try CgroupDirectories(cgroup.paths).applyOCI(oci.resources)
            try cgroup.restrictDevices(allowing: oci.devices.map { "\($0.type == "b" ? "b" : "c") \($0.major):\($0.minor) rwm" })
        } catch {
            cgroup.destroy()
            throw error
        }
        return cgroup
    }

    /// A config.json mount of type "cgroup": with a cgroup namespace (and
    /// no user namespace, which cannot mount v1) each controller's
    /// hierarchy, rooted at the container's cgroup; otherwise the
    /// container's own directories bound (runc's way), never the host's tree.
    static func cgroupMounts(_ paths: [String], namespaces: OCINamespaces) -> [RunSettings.CgroupMount] {
        guard case .v1(let root) = Cgroups.detect() else { return [] }
        let named = paths.compactMap { p -> (String, String)? in
            guard let first = Path.components(String(p.dropFirst(root.count))).first, first != "unified" else { return nil }
            return (first, p)
        }
        if namespaces.has("cgroup") && !namespaces.has("user") { return named.map { .v1(controller: $0.0) } }
        return named.map { .bind(name: $0.0, source: $0.1) }
    }

    static func decode(_ encoded: [UInt8]) throws -> swvm_settings {
        var settings = swvm_settings()
        var error = [CChar](repeating: 0, count: 256)
        guard encoded.withUnsafeBufferPointer({ swvm_settings_decode($0.baseAddress, $0.count, &settings, &error, error.count) }) == 0 else {
            throw SwvmError(.internalError, String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return settings
    }

    /// /proc/PID/stat's starttime (field 22, after the parenthesised name).
    public static func startTime(of pid: pid_t) throws -> UInt64 {
        let text = try FS.readText("/proc/\(pid)/stat", limit: 4096)
        guard let close = text.lastIndex(of: ")") else { throw SwvmError(.systemCall, "/proc/\(pid)/stat: no command field") }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state): field 22 is fields[19].
        guard fields.count > 19, let t = UInt64(fields[19]) else { throw SwvmError(.systemCall, "/proc/\(pid)/stat: no start time") }
        return t
    }
}

#if canImport(Glibc)
import Glibc
#endif
import SwvmBase

/// What one `swvm run` measured and applied, written as a JSON line to the
/// file descriptor given with `--report-fd` (swvm compare reads it).
public struct RunReport {
    public var isolation: String
    public var status: Int32
    /// CLOCK_MONOTONIC ns when swvm saw the workload's execve succeed.
    public var execNanos: UInt64?
    /// CLOCK_MONOTONIC ns when the run ended.
    public var endNanos: UInt64
    /// swvm's own peak RSS (VmHWM): for a VM this includes the guest RAM it touched.
    public var swvmPeakRSS: UInt64
    /// The container's cgroup peak (memory.max_usage_in_bytes / memory.peak).
    public var workloadPeak: UInt64?
    public var guestMemoryTouched: UInt64?
    public var guestMemorySize: UInt64?
    /// Host pid of the container's init, or the guest pid of the workload.
    public var workloadPID: UInt32?
    /// How a VM started: "warm" (restored from the boot snapshot),
    /// "template" (restored from an image template), "cold", or "cold (no
    /// snapshot)"; nil for a container.
    public var vmStart: String?
    /// CLOCK_MONOTONIC ns when the VM was ready for the run's settings:
    /// booted (cold) or restored and about to resume (warm).
    public var readyNanos: UInt64?
    /// CLOCK_MONOTONIC ns when a VM's threads were about to start, its VMM jailed.
    public var threadsStartNanos: UInt64?
    /// A VM run through an image template: whether the workload's seccomp
    /// filter was loaded before the template point (a plain template whose
    /// filter allows the steps after it); nil without a template.
    public var seccompInTemplate: Bool?
    public var posture: Posture

    public struct Posture {
        public var sharesHostKernel: Bool
        public var namespaces: [String]
        public var capabilities: [String]
        /// nil: unconfined.
        public var seccompAllowedSyscalls: Int?
        public var noNewPrivileges: Bool
        public var devices: [String]
        /// The masked and read-only paths the run's confinement applied
        /// (those the kernel lacks are skipped, so the levels may differ).
        public var maskedPaths: [String]
        public var readOnlyPaths: [String]
        public var vmmConfinement: String?
        /// The VMM's jail as read back from /proc (every thread's ids,
        /// capabilities, no_new_privs and seccomp; namespaces; root; rlimits).
        public var vmmJail: JSON?

        public init(sharesHostKernel: Bool, namespaces: [String], capabilities: [String], seccompAllowedSyscalls: Int?,
                    noNewPrivileges: Bool, devices: [String], maskedPaths: [String], readOnlyPaths: [String],
                    vmmConfinement: String?, vmmJail: JSON? = nil) {
            self.vmmJail = vmmJail
            self.sharesHostKernel = sharesHostKernel
            self.namespaces = namespaces
            self.capabilities = capabilities
            self.seccompAllowedSyscalls = seccompAllowedSyscalls
            self.noNewPrivileges = noNewPrivileges
            self.devices = devices
            self.maskedPaths = maskedPaths
            self.readOnlyPaths = readOnlyPaths
            self.vmmConfinement = vmmConfinement
        }
    }

    public init(isolation: String, status: Int32, execNanos: UInt64?, endNanos: UInt64, swvmPeakRSS: UInt64,
                workloadPeak: UInt64?, guestMemoryTouched: UInt64?, guestMemorySize: UInt64?, workloadPID: UInt32?,
                vmStart: String? = nil, readyNanos: UInt64? = nil, posture: Posture, threadsStartNanos: UInt64? = nil) {
        self.threadsStartNanos = threadsStartNanos
        self.vmStart = vmStart
        self.readyNanos = readyNanos
        self.isolation = isolation
        self.status = status
        self.execNanos = execNanos
        self.endNanos = endNanos
        self.swvmPeakRSS = swvmPeakRSS
        self.workloadPeak = workloadPeak
        self.guestMemoryTouched = guestMemoryTouched
        self.guestMemorySize = guestMemorySize
        self.workloadPID = workloadPID
        self.posture = posture
    }

    /// This process's peak RSS from /proc/self/status (VmHWM), in bytes.
    public static func selfPeakRSS() -> UInt64 {
        let text = ProcSelf.readText("status") ?? ""
        for line in text.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kb = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { UInt64($0) } ?? 0
            return kb * 1024
        }
        return 0
    }

    public var json: JSON {
        func opt(_ v: UInt64?) -> JSON { v.map { .integer(Int64($0)) } ?? .null }
        let jail: JSON = posture.vmmJail ?? .null
        let inTemplate: JSON = seccompInTemplate.map { .bool($0) } ?? .null
        return .object([
            ("isolation", .string(isolation)), ("status", .integer(Int64(status))),
            ("execNanos", opt(execNanos)), ("endNanos", .integer(Int64(endNanos))),
            ("swvmPeakRSS", .integer(Int64(swvmPeakRSS))), ("workloadPeak", opt(workloadPeak)),
            ("guestMemoryTouched", opt(guestMemoryTouched)), ("guestMemorySize", opt(guestMemorySize)),
            ("workloadPID", workloadPID.map { .integer(Int64($0)) } ?? .null),
            ("vmStart", vmStart.map { .string($0) } ?? .null),
            ("readyNanos", opt(readyNanos)),
            ("threadsStartNanos", opt(threadsStartNanos)),
            ("seccompInTemplate", inTemplate),
            ("posture", .object([
                ("sharesHostKernel", .bool(posture.sharesHostKernel)),
                ("namespaces", .array(posture.namespaces.map { .string($0) })),
                ("capabilities", .array(posture.capabilities.map { .string($0) })),
                ("seccompAllowedSyscalls", posture.seccompAllowedSyscalls.map { .integer(Int64($0)) } ?? .null),
                ("noNewPrivileges", .bool(posture.noNewPrivileges)),
                ("devices", .array(posture.devices.map { .string($0) })),
                ("maskedPaths", .array(posture.maskedPaths.map { .string($0) })),
                ("readOnlyPaths", .array(posture.readOnlyPaths.map { .string($0) })),
                ("vmmConfinement", posture.vmmConfinement.map { .string($0) } ?? .null),
                ("vmmJail", jail),
            ])),
        ])
    }

    public init(json j: JSON) throws {
        func u64(_ k: String) -> UInt64? { j[k]?.int64.map { UInt64(max(0, $0)) } }
        guard let iso = j["isolation"]?.string, let status = j["status"]?.int64.flatMap({ Int32(exactly: $0) }), let end = u64("endNanos"),
              let p = j["posture"] else {
            throw SwvmError(.internalError, "malformed run report: \(j.serialized())")
        }
        self.init(isolation: iso, status: status, execNanos: u64("execNanos"), endNanos: end,
                  swvmPeakRSS: u64("swvmPeakRSS") ?? 0, workloadPeak: u64("workloadPeak"),
                  guestMemoryTouched: u64("guestMemoryTouched"), guestMemorySize: u64("guestMemorySize"),
                  workloadPID: j["workloadPID"]?.int64.flatMap { UInt32(exactly: $0) },
                  vmStart: j["vmStart"]?.string, readyNanos: u64("readyNanos"),
                  posture: Posture(sharesHostKernel: p["sharesHostKernel"]?.bool ?? true,
                                   namespaces: (p["namespaces"]?.array ?? []).compactMap(\.string),
                                   capabilities: (p["capabilities"]?.array ?? []).compactMap(\.string),
                                   seccompAllowedSyscalls: p["seccompAllowedSyscalls"]?.int,
                                   noNewPrivileges: p["noNewPrivileges"]?.bool ?? false,
                                   devices: (p["devices"]?.array ?? []).compactMap(\.string),
                                   maskedPaths: (p["maskedPaths"]?.array ?? []).compactMap(\.string),
                                   readOnlyPaths: (p["readOnlyPaths"]?.array ?? []).compactMap(\.string),
                                   vmmConfinement: p["vmmConfinement"]?.string,
                                   vmmJail: p["vmmJail"].flatMap { $0.isNull ? nil : $0 }),
                  threadsStartNanos: u64("threadsStartNanos"))
        seccompInTemplate = j["seccompInTemplate"]?.bool
    }

    /// Writes the report to `fd` as one line.
    public func write(to fd: Int32) {
        _ = try? Array((json.serialized() + "\n").utf8).withUnsafeBytes { try FileDescriptor.writeAll(fd, $0) }
    }
}

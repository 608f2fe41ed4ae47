#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import Network
import SwvmBase

/// `swvm compare`: the same workload under both isolation levels,
/// alternating, each run a separate `swvm run` process so that its time and
/// memory are its own. Every figure comes from these runs.
public struct CompareOptions {
    public var image: String
    /// `swvm run` options to pass through (Docker-style flags).
    public var runArguments: [String]
    public var command: [String]
    public var repeats: Int = 3
    /// Seconds the probe may spend on each of its figures.
    public var probeBudget: Double = 1.0
    public var swvm: String = "/proc/self/exe"
    /// Also run the VM cold (--cold-boot) in each repetition, to show warm
    /// and cold starts side by side.
    public var alsoColdBoot = false
    /// The runs have --network bridge: the probe also times a TCP request
    /// to a listener on the bridge's host address.
    public var bridgeNetwork = false
    /// The runs have -v/--mount bind volumes: the probe also times its file
    /// cycle on the first one (a VM's goes through virtio-9p).
    public var hasVolume = false

    public init(image: String, runArguments: [String], command: [String]) {
        self.image = image
        self.runArguments = runArguments
        self.command = command
    }
}

/// One run of the workload.
public struct WorkloadSample {
    public var startSeconds: Double?
    public var totalSeconds: Double
    public var hostPeakBytes: UInt64
    public var report: RunReport
    public var stdoutBytes: Int
    public var stderrBytes: Int
}

/// The probe's figures from one run.
public struct ProbeSample {
    public var syscallNanos: Double
    public var forkExecMillis: Double
    public var fileMillis: Double
    public var cpuMillis: Double
    /// TCP connect + a one-line request echoed back + close, to the host's
    /// bridge address (--network bridge only).
    public var tcpRequestMicros: Double?
    /// With -v: file_ms's cycle on the first volume.
    public var volumeMillis: Double?
    public var iterations: JSON
}

public struct CompareResult {
    public var options: CompareOptions
    public var workload: [String: [WorkloadSample]] = [:]
    public var probe: [String: [ProbeSample]] = [:]
    public var hostDescription: String
    public static let isolations = ["container", "vm"]
    /// Where the extra --cold-boot VM runs are kept.
    public static let coldVM = "vmColdBoot"

}

public final class Comparison {
    public let options: CompareOptions
    public var progress: ((String) -> Void)?

    public init(options: CompareOptions) { self.options = options }

    public func run() throws -> CompareResult {
        var result = CompareResult(options: options, hostDescription: Comparison.hostDescription())
        let total = options.repeats * (options.alsoColdBoot ? 5 : 4)
        var step = 0
        // Open for the whole comparison, so both levels reach the same one.
        let hold = options.bridgeNetwork ? try HostBridge.hold() : nil
        defer { withExtendedLifetime(hold) {} }
        let listener = try hold.map { try ProbeListener(address: $0.bridge.gateway.description) }
        for i in 1...options.repeats {
            for iso in CompareResult.isolations {
                step += 1
                progress?("[\(step)/\(total)] \(iso): workload, run \(i) of \(options.repeats)")
                result.workload[iso, default: []].append(try runWorkload(iso))
                if iso == "vm" && options.alsoColdBoot {
                    step += 1
                    progress?("[\(step)/\(total)] vm --cold-boot: workload, run \(i) of \(options.repeats)")
                    result.workload[CompareResult.coldVM, default: []].append(try runWorkload(iso, extra: ["--cold-boot"]))
                }
                step += 1
                progress?("[\(step)/\(total)] \(iso): probe, run \(i) of \(options.repeats)")
                result.probe[iso, default: []].append(try runProbe(iso, listener: listener))
            }
        }
        return result
    }

    func runWorkload(_ iso: String, extra: [String] = []) throws -> WorkloadSample {
        let argv = [options.swvm, "run", "--isolation=\(iso)", "--report-fd", "3"] + extra + options.runArguments
            + [options.image, "--"] + options.command
        let r = try Comparison.spawn(argv)
        guard let report = r.report else {
            throw SwvmError(.internalError, "swvm run --isolation=\(iso) gave no report (status \(r.status)): \(UntrustedText.escaped(String(r.stderr.suffix(500))))")
        }
        let start = report.execNanos.map { Double(Int64($0) - Int64(r.spawnNanos)) / 1e9 }
        let peak = report.swvmPeakRSS + (report.workloadPeak ?? 0)
        return WorkloadSample(startSeconds: start, totalSeconds: r.seconds, hostPeakBytes: peak, report: report,
                              stdoutBytes: r.stdoutBytes, stderrBytes: r.stderr.utf8.count)
    }

    func runProbe(_ iso: String, listener: ProbeListener?) throws -> ProbeSample {
        let argv = [options.swvm, "run", "--isolation=\(iso)", "--probe", formatFixed(options.probeBudget, 2)]
            + (listener.map { ["--probe-connect", $0.target] } ?? []) + ["--report-fd", "3"]
            + options.runArguments + [options.image]
        let servedBefore = listener?.served.current ?? 0
        let r = try Comparison.spawn(argv, keepStdout: true)
        guard r.status == 0, let j = try? JSON.parse(r.stdout), let s = j["syscall_ns"]?.double,
              let f = j["fork_exec_ms"]?.double, let w = j["file_ms"]?.double, let c = j["cpu_ms"]?.double else {
            throw SwvmError(.internalError, "the probe failed under --isolation=\(iso) (status \(r.status)): \(UntrustedText.escaped(String(r.stderr.suffix(500))))")
        }
        let tcp = j["tcp_request_us"]?.double
        if let listener {
            // Every request the probe timed (and its untimed first) was
            // echoed by this listener: the figure is a round trip to it.
            let served = listener.served.current - servedBefore
            guard let t = tcp, t > 0, let n = j["iterations"]?["tcp_request"]?.int, served == n + 1 else {
                throw SwvmError(.internalError, "the probe's TCP figure under --isolation=\(iso) does not match the listener (\(listener.target) echoed \(served) requests): \(UntrustedText.escaped(r.stdout))")
            }
        }
        let volume = j["volume_ms"]?.double
        if options.hasVolume && !(volume.map { $0 > 0 } ?? false) {
            throw SwvmError(.internalError, "the probe gave no volume figure under --isolation=\(iso): \(UntrustedText.escaped(r.stdout))")
        }
        return ProbeSample(syscallNanos: s, forkExecMillis: f, fileMillis: w, cpuMillis: c, tcpRequestMicros: tcp, volumeMillis: volume,
                           iterations: j["iterations"] ?? .null)
    }

    struct Spawned {
        var status: Int32
        var seconds: Double
        var spawnNanos: UInt64
        var stdout: [UInt8]
        var stdoutBytes: Int
        var stderr: String
        var report: RunReport?
    }

    /// Runs swvm with stdout, stderr and the report pipe (fd 3) captured.
    static func spawn(_ argv: [String], keepStdout: Bool = false) throws -> Spawned {
        let out = try makePipe(), err = try makePipe(), rep = try makePipe()
        let start = Clock.monotonicNanos()
        let pid: pid_t
        do {
            pid = try Spawn.start(argv[0], argv: argv, actions: [.open(0, path: "/dev/null", flags: O_RDONLY),
                                  .dup(out.write.raw, to: 1), .dup(err.write.raw, to: 2), .dup(rep.write.raw, to: 3)])
        } catch { throw SwvmError.errno("spawn \(argv[0])", error.errno) }
        out.write.close(); err.write.close(); rep.write.close()
        var stdout: [UInt8] = [], stderr: [UInt8] = [], report: [UInt8] = []
        var stdoutBytes = 0
        var open = [out.read.raw, err.read.raw, rep.read.raw]
        var buf = [UInt8](repeating: 0, count: 65536)
        while open.contains(where: { $0 >= 0 }) {
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            if poll(&fds, nfds_t(fds.count), -1) < 0 && errno != EINTR { break }
            for i in 0..<3 where fds[i].revents != 0 {
                let n = read(open[i], &buf, buf.count)
                if n <= 0 {
                    if n < 0 && errno == EINTR { continue }
                    open[i] = -1
                    continue
                }
                switch i {
                case 0:
                    stdoutBytes += n
                    if keepStdout && stdout.count < 1 << 20 { stdout += buf[0..<n] }
                case 1: if stderr.count < 1 << 16 { stderr += buf[0..<n] }
                default: report += buf[0..<n]
                }
            }
        }
        let (_, status) = waitForExit(pid)
        let seconds = Clock.secondsSince(start)
        let parsed = (try? JSON.parse(report)).flatMap { try? RunReport(json: $0) }
        return Spawned(status: shellStatus(fromWaitStatus: status), seconds: seconds, spawnNanos: start, stdout: stdout,
                       stdoutBytes: stdoutBytes, stderr: String(decoding: stderr, as: UTF8.self), report: parsed)
    }

    static func hostDescription() -> String {
        var u = utsname()
        uname(&u)
        let release = withUnsafeBytes(of: u.release) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        let cpus = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        let pvm = FS.exists("/sys/module/kvm_pvm") ? ", /dev/kvm is PVM (guest kernel emulated)" : ""
        return "Linux \(release), \(cpus) CPUs\(pvm)"
    }
}

import SwvmBase

/// One row of the comparison: a figure for each isolation level.
public struct Figure {
    public enum Cell {
        /// Measured values, one per run.
        case values([Double])
        /// A value that is the same kind of thing but not a number.
        case text(String)
        /// Not measurable here, and why.
        case notApplicable(String)
    }

    public let name: String
    public let unit: String
    public let group: String
    public var cells: [String: Cell]

    public static func stats(_ v: [Double]) -> (median: Double, min: Double, max: Double) {
        let s = v.sorted()
        let mid = s.count / 2
        let median = s.count % 2 == 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2
        return (median, s.first ?? 0, s.last ?? 0)
    }

    /// vm median / container median, when both are measured.
    public var ratio: Double? {
        guard case .values(let c)? = cells["container"], case .values(let v)? = cells["vm"], !c.isEmpty, !v.isEmpty else { return nil }
        let cm = Figure.stats(c).median
        return cm == 0 ? nil : Figure.stats(v).median / cm
    }
}

public enum Figures {
    /// The table's rows, group by group.
    public static func build(_ r: CompareResult) -> [Figure] {
        let rows = Rows(r)
        return rows.start() + rows.memory() + rows.workloadCost() + rows.sameWork() + rows.posture()
    }

    /// One compare result's figures: how each row reads its cells.
    struct Rows {
        let r: CompareResult

        init(_ r: CompareResult) { self.r = r }

        func values(_ iso: String, _ f: (WorkloadSample) -> Double?) -> Figure.Cell {
            let v = (r.workload[iso] ?? []).compactMap(f)
            return v.isEmpty ? .notApplicable("not reported") : .values(v)
        }

        func probe(_ iso: String, _ f: (ProbeSample) -> Double?) -> Figure.Cell {
            let v = (r.probe[iso] ?? []).compactMap(f)
            return v.isEmpty ? .notApplicable("no probe run") : .values(v)
        }

        func both(_ f: (String) -> Figure.Cell) -> [String: Figure.Cell] {
            Dictionary(uniqueKeysWithValues: CompareResult.isolations.map { ($0, f($0)) })
        }

        /// From the configuration each run applied (the last run's).
        func posture(_ iso: String, _ f: (RunReport.Posture) -> String) -> Figure.Cell {
            guard let p = r.workload[iso]?.last?.report.posture else { return .notApplicable("no run") }
            return .text(f(p))
        }

        func start() -> [Figure] {
            var rows = [
                Figure(name: "start (swvm start to the workload's exec)", unit: "ms", group: "start",
                       cells: both { iso in values(iso) { $0.startSeconds.map { $0 * 1000 } } }),
                Figure(name: "total wall time", unit: "ms", group: "start",
                       cells: both { iso in values(iso) { $0.totalSeconds * 1000 } }),
            ]
            // Each VM run's start, in run order (a warm start restores a snapshot).
            var starts = Figure(name: "VM start, run by run", unit: "", group: "start", cells: [:])
            starts.cells["container"] = .notApplicable("no VM")
            let vmStarts = (r.workload["vm"] ?? []).compactMap(\.report.vmStart).map(Figures.startName)
            starts.cells["vm"] = vmStarts.isEmpty ? .notApplicable("not reported") : .text(vmStarts.joined(separator: ", "))
            rows.append(starts)
            if let cold = r.workload[CompareResult.coldVM], !cold.isEmpty {
                // The VM column holds the --cold-boot runs; the ratio is to the container.
                func coldRow(_ name: String, _ f: @escaping (WorkloadSample) -> Double?) -> Figure {
                    Figure(name: name, unit: "ms", group: "start",
                           cells: ["container": values("container", f), "vm": .values(cold.compactMap(f))])
                }
                rows.append(coldRow("start, VM booted cold (--cold-boot)") { $0.startSeconds.map { $0 * 1000 } })
                rows.append(coldRow("total wall time, VM booted cold (--cold-boot)") { $0.totalSeconds * 1000 })
            }
            return rows
        }

        func memory() -> [Figure] {
            var guest = Figure(name: "guest memory touched", unit: "MiB", group: "memory", cells: [:])
            guest.cells["container"] = .notApplicable("no guest: the workload shares the host kernel")
            guest.cells["vm"] = values("vm") { $0.report.guestMemoryTouched.map { Double($0) / 1048576 } }
            return [Figure(name: "host memory peak (swvm + workload)", unit: "MiB", group: "memory",
                           cells: both { iso in values(iso) { Double($0.hostPeakBytes) / 1048576 } }),
                    guest]
        }

        func workloadCost() -> [Figure] {
            func row(_ name: String, _ unit: String, _ f: @escaping (ProbeSample) -> Double?) -> Figure {
                Figure(name: name, unit: unit, group: "workload cost", cells: both { iso in probe(iso, f) })
            }
            var rows = [
                row("syscall round trip (getppid)", "ns") { $0.syscallNanos },
                row("fork + exec + wait", "ms") { $0.forkExecMillis },
                row("file: create, write 1 MiB, fsync, read, unlink on /", "ms") { $0.fileMillis },
                row("CPU-bound loop (10^8 iterations)", "ms") { $0.cpuMillis },
            ]
            var tcp = row("TCP connect + small request to the host (bridge)", "µs") { $0.tcpRequestMicros }
            if !r.options.bridgeNetwork {
                tcp.cells = both { _ in .notApplicable("no network: compare with --network bridge") }
            }
            rows.append(tcp)
            if r.options.hasVolume {
                rows.append(row("shared directory: the file cycle on the first -v volume", "ms") { $0.volumeMillis })
            }
            return rows
        }

        func sameWork() -> [Figure] {
            [Figure(name: "exit status", unit: "", group: "same work", cells: both { iso in values(iso) { Double($0.report.status) } }),
             Figure(name: "stdout bytes", unit: "B", group: "same work", cells: both { iso in values(iso) { Double($0.stdoutBytes) } }),
             Figure(name: "stderr bytes", unit: "B", group: "same work", cells: both { iso in values(iso) { Double($0.stderrBytes) } })]
        }

        func posture() -> [Figure] {
            func row(_ name: String, _ f: @escaping (RunReport.Posture) -> String) -> Figure {
                Figure(name: name, unit: "", group: "posture", cells: both { iso in posture(iso, f) })
            }
            var vmm = row("VMM confinement") { $0.vmmConfinement ?? "" }
            vmm.cells["container"] = .notApplicable("no VMM")
            let escape = row("an escape from the workload reaches") { Figures.escapeReach($0) }
            // How the last VM run started: what the guest had done before the run's settings.
            var start = Figure(name: "VM start (last run)", unit: "", group: "posture", cells: ["container": .notApplicable("no VM")])
            start.cells["vm"] = r.workload["vm"]?.last?.report.vmStart.map { .text(Figures.startName($0)) } ?? .notApplicable("not reported")
            return [
                row("kernel") { $0.sharesHostKernel ? "shared with the host" : "the VM's own (guest kernel)" },
                row("namespaces") { $0.namespaces.joined(separator: ", ") },
                row("capabilities") { "\($0.capabilities.count): " + $0.capabilities.joined(separator: " ") },
                row("syscalls the seccomp filter allows") { $0.seccompAllowedSyscalls.map(String.init) ?? "unconfined" },
                row("no_new_privs") { $0.noNewPrivileges ? "yes" : "no" },
                row("devices exposed") { $0.devices.joined(separator: "; ") },
                row("masked paths") { "\($0.maskedPaths.count): " + $0.maskedPaths.joined(separator: " ") },
                row("read-only paths") { "\($0.readOnlyPaths.count): " + $0.readOnlyPaths.joined(separator: " ") },
                vmm,
                escape,
                start,
            ]
        }
    }

    /// A VM run's start (VMStart's raw value) as the reports name it.
    static func startName(_ raw: String) -> String {
        switch raw {
        case "warm": return "boot snapshot"
        case "template": return "image template"
        case "cold": return "cold (saved a boot snapshot)"
        default: return raw
        }
    }

    /// What code that breaks out of the workload's confinement reaches at
    /// each level, from what the run applied (the VMM's jail as read back
    /// from /proc).
    static func escapeReach(_ p: RunReport.Posture) -> String {
        if p.sharesHostKernel {
            return "the host's kernel, directly (\(p.seccompAllowedSyscalls.map(String.init) ?? "all") system calls, \(p.capabilities.count) capabilities)"
        }
        guard let jail = p.vmmJail, let threads = jail["threads"]?.array, !threads.isEmpty else {
            return "the guest kernel; past it, the VMM (its jail unknown)"
        }
        let uids = Set(threads.compactMap { $0["uid"]?.array?.first?.int })
        let who = uids.contains(0) ? "as root" : "as uid \(uids.sorted().map(String.init).joined(separator: ","))"
        let withCaps = threads.filter { ($0["capEff"]?.string ?? "0") != "0" }.count
        let caps = withCaps == 0 ? "no capability" : "capabilities on \(withCaps) of \(threads.count) threads"
        let ns = (jail["ownNamespaces"]?.array ?? []).compactMap(\.string)
        let root = jail["rootIsOwn"]?.bool == true && (jail["rootEntries"]?.array ?? []).isEmpty ? "an empty root" : "the host's files"
        return "the guest kernel; past it and a device bug, the VMM \(who), \(caps), \(root), own namespaces: \(ns.joined(separator: ", "))"
    }

    /// A number as a table shows it.
    public static func format(_ v: Double, unit: String) -> String {
        if unit == "" || unit == "B" { return v == v.rounded() ? String(Int64(v)) : formatFixed(v, 1) }
        if v >= 100 { return formatFixed(v, 0) }
        if v >= 10 { return formatFixed(v, 1) }
        return formatFixed(v, 2)
    }

    /// Time figures in a unit that keeps the number short (ns -> µs -> ms -> s).
    static func humanUnit(_ value: Double, _ unit: String) -> (scale: Double, unit: String) {
        let ladder = ["ns", "µs", "ms", "s"]
        guard var i = ladder.firstIndex(of: unit) else { return (1, unit) }
        var scale = 1.0
        while i < ladder.count - 1 && value / scale >= 1000 { scale *= 1000; i += 1 }
        return (scale, ladder[i])
    }

    public static func describe(_ cell: Figure.Cell?, unit: String) -> String {
        switch cell {
        case .values(let v)?:
            let s = Figure.stats(v)
            let (scale, shown) = humanUnit(s.median, unit)
            let u = shown.isEmpty ? "" : " " + shown
            if s.min == s.max { return format(s.median / scale, unit: shown) + u }
            return "\(format(s.median / scale, unit: shown))\(u) (\(format(s.min / scale, unit: shown))-\(format(s.max / scale, unit: shown)))"
        // Text comes from the runs' reports: a VM's masked and read-only
        // paths and devices are what its guest said.
        case .text(let t)?: return UntrustedText.escaped(t)
        case .notApplicable(let why)?: return "n/a: \(why)"
        case nil: return "n/a"
        }
    }
}

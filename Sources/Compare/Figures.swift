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
    public static func build(_ r: CompareResult) -> [Figure] {
        var rows: [Figure] = []
        func values(_ iso: String, _ f: (WorkloadSample) -> Double?) -> Figure.Cell {
            let v = (r.workload[iso] ?? []).compactMap(f)
            return v.isEmpty ? .notApplicable("not reported") : .values(v)
        }
        func probe(_ iso: String, _ f: (ProbeSample) -> Double) -> Figure.Cell {
            let v = (r.probe[iso] ?? []).map(f)
            return v.isEmpty ? .notApplicable("no probe run") : .values(v)
        }
        func both(_ f: (String) -> Figure.Cell) -> [String: Figure.Cell] {
            Dictionary(uniqueKeysWithValues: CompareResult.isolations.map { ($0, f($0)) })
        }
        rows.append(Figure(name: "start (swvm start to the workload's exec)", unit: "ms", group: "start",
                           cells: both { iso in values(iso) { $0.startSeconds.map { $0 * 1000 } } }))
        rows.append(Figure(name: "total wall time", unit: "ms", group: "start",
                           cells: both { iso in values(iso) { $0.totalSeconds * 1000 } }))
        // Each VM run's start, in run order (a warm start restores a snapshot).
        var starts = Figure(name: "VM start, run by run", unit: "", group: "start", cells: [:])
        starts.cells["container"] = .notApplicable("no VM")
        let vmStarts = (r.workload["vm"] ?? []).compactMap(\.report.vmStart)
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
        rows.append(Figure(name: "host memory peak (swvm + workload)", unit: "MiB", group: "memory",
                           cells: both { iso in values(iso) { Double($0.hostPeakBytes) / 1048576 } }))
        var guest = Figure(name: "guest memory touched", unit: "MiB", group: "memory", cells: [:])
        guest.cells["container"] = .notApplicable("no guest: the workload shares the host kernel")
        guest.cells["vm"] = values("vm") { $0.report.guestMemoryTouched.map { Double($0) / 1048576 } }
        rows.append(guest)
        rows.append(Figure(name: "syscall round trip (getppid)", unit: "ns", group: "workload cost",
                           cells: both { iso in probe(iso) { $0.syscallNanos } }))
        rows.append(Figure(name: "fork + exec + wait", unit: "ms", group: "workload cost",
                           cells: both { iso in probe(iso) { $0.forkExecMillis } }))
        rows.append(Figure(name: "file: create, write 1 MiB, fsync, read, unlink on /", unit: "ms", group: "workload cost",
                           cells: both { iso in probe(iso) { $0.fileMillis } }))
        rows.append(Figure(name: "CPU-bound loop (10^8 iterations)", unit: "ms", group: "workload cost",
                           cells: both { iso in probe(iso) { $0.cpuMillis } }))
        rows.append(Figure(name: "TCP connect + small request to the host (bridge)", unit: "µs", group: "workload cost",
                           cells: both { iso in
                               guard r.options.bridgeNetwork else { return .notApplicable("no network: compare with --network bridge") }
                               let v = (r.probe[iso] ?? []).compactMap(\.tcpRequestMicros)
                               return v.isEmpty ? .notApplicable("no probe run") : .values(v)
                           }))
        if r.options.hasVolume {
            rows.append(Figure(name: "shared directory: the file cycle on the first -v volume", unit: "ms", group: "workload cost",
                               cells: both { iso in
                                   let v = (r.probe[iso] ?? []).compactMap(\.volumeMillis)
                                   return v.isEmpty ? .notApplicable("no probe run") : .values(v)
                               }))
        }
        rows.append(Figure(name: "exit status", unit: "", group: "same work",
                           cells: both { iso in values(iso) { Double($0.report.status) } }))
        rows.append(Figure(name: "stdout bytes", unit: "B", group: "same work",
                           cells: both { iso in values(iso) { Double($0.stdoutBytes) } }))
        rows.append(Figure(name: "stderr bytes", unit: "B", group: "same work",
                           cells: both { iso in values(iso) { Double($0.stderrBytes) } }))
        // Posture: from the configuration each run applied (the last run's).
        func posture(_ iso: String, _ f: (RunReport.Posture) -> String) -> Figure.Cell {
            guard let p = r.workload[iso]?.last?.report.posture else { return .notApplicable("no run") }
            return .text(f(p))
        }
        rows.append(Figure(name: "kernel", unit: "", group: "posture",
                           cells: both { iso in posture(iso) { $0.sharesHostKernel ? "shared with the host" : "the VM's own (guest kernel)" } }))
        rows.append(Figure(name: "namespaces", unit: "", group: "posture",
                           cells: both { iso in posture(iso) { $0.namespaces.joined(separator: ", ") } }))
        rows.append(Figure(name: "capabilities", unit: "", group: "posture",
                           cells: both { iso in posture(iso) { "\($0.capabilities.count): " + $0.capabilities.joined(separator: " ") } }))
        rows.append(Figure(name: "syscalls the seccomp filter allows", unit: "", group: "posture",
                           cells: both { iso in posture(iso) { $0.seccompAllowedSyscalls.map(String.init) ?? "unconfined" } }))
        rows.append(Figure(name: "no_new_privs", unit: "", group: "posture",
                           cells: both { iso in posture(iso) { $0.noNewPrivileges ? "yes" : "no" } }))
        rows.append(Figure(name: "devices exposed", unit: "", group: "posture",
                           cells: both { iso in posture(iso) { $0.devices.joined(separator: "; ") } }))
        rows.append(Figure(name: "masked paths", unit: "", group: "posture",
                           cells: both { iso in posture(iso) { "\($0.maskedPaths.count): " + $0.maskedPaths.joined(separator: " ") } }))
        rows.append(Figure(name: "read-only paths", unit: "", group: "posture",
                           cells: both { iso in posture(iso) { "\($0.readOnlyPaths.count): " + $0.readOnlyPaths.joined(separator: " ") } }))
        var vmm = Figure(name: "VMM confinement", unit: "", group: "posture", cells: both { iso in posture(iso) { $0.vmmConfinement ?? "" } })
        vmm.cells["container"] = .notApplicable("no VMM")
        rows.append(vmm)
        return rows
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
        case .text(let t)?: return t
        case .notApplicable(let why)?: return "n/a: \(why)"
        case nil: return "n/a"
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import OCIRuntime
import SwvmBase

/// runc events: a container's resource usage as JSON lines
/// {"type":"stats","id":ID,"data":{cpu,memory,pids}} read from its cgroup
/// (v1 controllers here), every --interval or once with --stats, and
/// {"type":"oom","id":ID} when the kernel OOM-kills in it. Ends when the
/// container stops.
struct EventsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "events", abstract: "Print a container's resource usage and OOM events.")

    @Flag(help: "Print the usage once and exit.") var stats = false
    @Option(help: "Time between stats events (Go's form: 5s, 500ms, 1m).") var interval = "5s"
    @Argument(help: "The container id.") var id: String

    func run() throws {
        try runOCI { lifecycle in
            let period = try Self.seconds(interval)
            let state = try lifecycle.state(id)
            guard state.status != .stopped, let record = state.record else {
                throw SwvmError(.invalidArgument, "container with id \(id) is not running")
            }
            let cgroup = CgroupUsage(record.cgroupPaths)
            Self.emit("stats", id, cgroup.stats())
            if stats { return 0 }
            var ooms = cgroup.oomKills()
            var next = Clock.monotonicNanos() + UInt64(period * 1e9)
            // OOM kills are polled often; stats come every interval.
            while (try? lifecycle.state(id).status) != .stopped {
                usleep(100_000)
                let now = cgroup.oomKills()
                if now > ooms { Self.emit("oom", id, nil) }
                ooms = now
                if Clock.monotonicNanos() >= next {
                    Self.emit("stats", id, cgroup.stats())
                    next = Clock.monotonicNanos() + UInt64(period * 1e9)
                }
            }
            return 0
        }
    }

    static func emit(_ type: String, _ id: String, _ data: JSON?) {
        var members: [(String, JSON)] = [("type", .string(type)), ("id", .string(id))]
        if let data { members.append(("data", data)) }
        Log.out(JSON.object(members).serialized() + "\n")
    }

    /// A Go duration of one unit (ns, us, ms, s, m, h), above zero.
    static func seconds(_ text: String) throws -> Double {
        let units: [(String, Double)] = [("ns", 1e-9), ("us", 1e-6), ("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600)]
        for (unit, scale) in units where text.hasSuffix(unit) {
            if let n = Double(text.dropLast(unit.count)), n > 0, n.isFinite { return n * scale }
        }
        throw SwvmError(.invalidArgument, "events --interval \(UntrustedText.escaped(text)): expected a duration such as 5s or 500ms")
    }
}

/// The usage figures of a container's v1 cgroup directories, in the
/// shape of runc's events data (its types.Stats, the fields swvm knows).
struct CgroupUsage {
    let paths: [String]

    init(_ paths: [String]) { self.paths = paths }

    /// The directory of v1 controller `name` (…/cgroup/NAME/…).
    func controller(_ name: String) -> String? {
        paths.first { $0.hasPrefix("/sys/fs/cgroup/\(name)/") }
    }

    func number(_ controller: String, _ file: String) -> Int64 {
        guard let dir = self.controller(controller), let text = try? FS.readText(Path.join(dir, file), limit: 4096) else { return 0 }
        return text.split(whereSeparator: \.isWhitespace).first.flatMap { Int64($0) } ?? 0
    }

    /// "key value" lines (memory.stat, cpu.stat, memory.oom_control).
    func table(_ controller: String, _ file: String) -> [(String, Int64)] {
        guard let dir = self.controller(controller), let text = try? FS.readText(Path.join(dir, file), limit: 65536) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ")
            guard f.count == 2, let v = Int64(f[1]) else { return nil }
            return (String(f[0]), v)
        }
    }

    func oomKills() -> Int64 { table("memory", "memory.oom_control").first { $0.0 == "oom_kill" }?.1 ?? 0 }

    func stats() -> JSON {
        .object([("cpu", cpu()), ("memory", memory()), ("pids", pids())])
    }

    func cpu() -> JSON {
        // cpuacct.stat is in clock ticks; runc reports nanoseconds.
        let tick = 1_000_000_000 / max(Int64(sysconf(Int32(_SC_CLK_TCK))), 1)
        let times = table("cpuacct", "cpuacct.stat")
        let value = { (key: String) in (times.first { $0.0 == key }?.1 ?? 0) * tick }
        var percpuText = ""
        if let dir = controller("cpuacct") { percpuText = (try? FS.readText(Path.join(dir, "cpuacct.usage_percpu"), limit: 65536)) ?? "" }
        let percpu: [JSON] = percpuText.split(whereSeparator: \.isWhitespace).compactMap { Int64($0) }.map { JSON.integer($0) }
        let throttling = table("cpu", "cpu.stat")
        let throttle = { (key: String) in JSON.integer(throttling.first { $0.0 == key }?.1 ?? 0) }
        return .object([
            ("usage", .object([("total", .integer(number("cpuacct", "cpuacct.usage"))), ("percpu", .array(percpu)),
                               ("kernel", .integer(value("system"))), ("user", .integer(value("user")))])),
            ("throttling", .object([("periods", throttle("nr_periods")), ("throttled_periods", throttle("nr_throttled")),
                                    ("throttled_time", throttle("throttled_time"))])),
        ])
    }

    func memory() -> JSON {
        let raw = table("memory", "memory.stat")
        return .object([
            ("cache", .integer(raw.first { $0.0 == "cache" }?.1 ?? 0)),
            ("usage", .object([("limit", .integer(number("memory", "memory.limit_in_bytes"))),
                               ("usage", .integer(number("memory", "memory.usage_in_bytes"))),
                               ("max", .integer(number("memory", "memory.max_usage_in_bytes"))),
                               ("failcnt", .integer(number("memory", "memory.failcnt")))])),
            ("raw", .object(raw.map { ($0.0, .integer($0.1)) })),
        ])
    }

    /// pids.max "max" is no limit: 0, as runc reports it.
    func pids() -> JSON {
        .object([("current", .integer(number("pids", "pids.current"))), ("limit", .integer(number("pids", "pids.max")))])
    }
}

#if canImport(Glibc)
import Glibc
#endif
import CVMMJail
import SwvmBase

/// The VMM's confinement as the kernel reports it, read from outside the
/// jail (the keeper, the tests): every thread's /proc status, the
/// namespaces it is in and its root. Never what swvm meant to apply.
public struct JailPosture: Equatable {
    public struct ThreadStatus: Equatable {
        public var tid: Int32
        public var name: String
        /// Real, effective, saved and file-system ids.
        public var uids: [UInt32]
        public var gids: [UInt32]
        public var groups: [UInt32]
        public var capInh: UInt64, capPrm: UInt64, capEff: UInt64, capBnd: UInt64, capAmb: UInt64
        public var noNewPrivs: Bool
        /// 0 off, 1 strict, 2 filter.
        public var seccomp: Int
        public var seccompFilters: Int
    }

    public var pid: pid_t
    public var threads: [ThreadStatus]
    /// The namespaces (mnt, net, ipc, uts, pid, user, cgroup) it does not
    /// share with the reader (pid: with /proc's PID 1, the host's).
    public var ownNamespaces: [String]
    /// What its root directory holds (empty in the jail).
    public var rootEntries: [String]
    /// The root is not the reader's.
    public var rootIsOwn: Bool
    public var limits: [String: String]
    /// VmHWM of the process, bytes.
    public var peakRSS: UInt64

    /// Reads `pid`'s posture; nil if it is gone. The reading is
    /// swvm_posture_collect's, the keeper's too.
    public static func read(pid: pid_t) -> JailPosture? {
        var buf = [UInt8](repeating: 0, count: Int(SWVM_KEEPER_MESSAGE_MAX))
        let n = buf.withUnsafeMutableBytes { swvm_posture_collect(pid, $0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count) }
        guard n > 0 else { return nil }
        return parse(records: Array(buf[0..<Int(n)]))?.posture
    }

    /// The posture in swvm_posture_collect's records, with the reader's
    /// own peak RSS (the keeper's, when the keeper read it); nil when the
    /// records are not whole.
    public static func parse(records: [UInt8]) -> (posture: JailPosture, readerPeakRSS: UInt64)? {
        let fields = records.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        // "KEY\0VALUE\0" pairs: an odd count before the final empty field.
        guard fields.count % 2 == 1, fields.last == "" else { return nil }
        var threads: [ThreadStatus] = [], values: [String: String] = [:]
        for i in stride(from: 0, to: fields.count - 1, by: 2) {
            if fields[i] == "task" {
                let lines = fields[i + 1].split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)
                guard lines.count == 2, let tid = Int32(lines[0]) else { return nil }
                threads.append(parseStatus(String(lines[1]), tid: tid))
            } else {
                values[fields[i]] = fields[i + 1]
            }
        }
        guard !threads.isEmpty, let ns = values["ns"], let root = values["root"], let own = values["rootIsOwn"],
              let status = values["status"] else { return nil }
        func hwm(_ status: String?) -> UInt64 {
            (field(status ?? "", "VmHWM").split(separator: " ").first.flatMap { UInt64($0) } ?? 0) * 1024
        }
        let posture = JailPosture(pid: pid_t(field(status, "Tgid")) ?? 0, threads: threads,
                                  ownNamespaces: ns.split(separator: " ").map(String.init),
                                  rootEntries: root.split(separator: "/").map(String.init).sorted(), rootIsOwn: own == "1",
                                  limits: parseLimits(values["limits"] ?? ""), peakRSS: hwm(status))
        return (posture, hwm(values["reader"]))
    }

    static func field(_ text: String, _ name: String) -> String {
        for line in text.split(separator: "\n") where line.hasPrefix(name + ":") {
            return String(line.dropFirst(name.count + 1)).trimmingCharacters(in: " ").trimmingCharacters(in: "\t")
        }
        return ""
    }

    static func parseStatus(_ text: String, tid: Int32) -> ThreadStatus {
        func ids(_ name: String) -> [UInt32] { field(text, name).split(whereSeparator: { $0 == "\t" || $0 == " " }).compactMap { UInt32($0) } }
        func hex(_ name: String) -> UInt64 { UInt64(field(text, name), radix: 16) ?? UInt64.max }
        return ThreadStatus(tid: tid, name: field(text, "Name"), uids: ids("Uid"), gids: ids("Gid"), groups: ids("Groups"),
                            capInh: hex("CapInh"), capPrm: hex("CapPrm"), capEff: hex("CapEff"), capBnd: hex("CapBnd"),
                            capAmb: hex("CapAmb"), noNewPrivs: field(text, "NoNewPrivs") == "1",
                            seccomp: Int(field(text, "Seccomp")) ?? -1,
                            seccompFilters: Int(field(text, "Seccomp_filters")) ?? -1)
    }

    /// "Max open files" -> "soft hard".
    static func parseLimits(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        for line in text.split(separator: "\n").dropFirst() {
            let s = String(line)
            guard s.count > 26 else { continue }
            let name = String(s.prefix(26)).trimmingCharacters(in: " ")
            let values = s.dropFirst(26).split(separator: " ", omittingEmptySubsequences: true)
            if values.count >= 2 { out[name] = "\(values[0]) \(values[1])" }
        }
        return out
    }

    /// The posture in one line, for `swvm compare`'s "VMM confinement" row.
    public var summary: String {
        let uids = Set(threads.flatMap { $0.uids }), gids = Set(threads.flatMap { $0.gids })
        let idText = uids.contains(0) || gids.contains(0)
            ? "root on some thread (uids \(uids.sorted()), gids \(gids.sorted()))"
            : "uid \(uids.sorted().map(String.init).joined(separator: ",")) gid \(gids.sorted().map(String.init).joined(separator: ",")) on every thread"
        let withCaps = threads.filter { $0.capEff != 0 || $0.capPrm != 0 }
        let capText = withCaps.isEmpty ? "no capabilities"
            : "capabilities on \(withCaps.map { "\($0.name) (\(String($0.capEff, radix: 16)))" }.joined(separator: ", "))"
        let bnd = threads.allSatisfy { $0.capBnd == 0 } ? "empty bounding set" : "a bounding set"
        let nnp = threads.allSatisfy { $0.noNewPrivs } ? "no_new_privs" : "no_new_privs missing on some thread"
        let filtered = threads.filter { $0.seccomp == 2 }.count
        let ns = ownNamespaces.isEmpty ? "the host's namespaces" : "its own \(ownNamespaces.joined(separator: ", ")) namespaces"
        let root = !rootIsOwn ? "the host's root" : rootEntries.isEmpty ? "an empty root" : "a root holding \(rootEntries.joined(separator: ", "))"
        return "\(idText), \(capText), \(bnd), \(nnp), seccomp on \(filtered) of \(threads.count) threads, \(ns), \(root)"
    }

    /// The posture as JSON (the run report's posture.vmmJail).
    public var json: JSON {
        .object([
            ("threads", .array(threads.map { t in
                .object([("tid", .integer(Int64(t.tid))), ("name", .string(t.name)),
                         ("uid", .array(t.uids.map { .integer(Int64($0)) })), ("gid", .array(t.gids.map { .integer(Int64($0)) })),
                         ("groups", .array(t.groups.map { .integer(Int64($0)) })),
                         ("capPrm", .string(String(t.capPrm, radix: 16))), ("capEff", .string(String(t.capEff, radix: 16))),
                         ("capBnd", .string(String(t.capBnd, radix: 16))), ("noNewPrivs", .bool(t.noNewPrivs)),
                         ("seccomp", .integer(Int64(t.seccomp)))])
            })),
            ("ownNamespaces", .array(ownNamespaces.map { .string($0) })),
            ("rootIsOwn", .bool(rootIsOwn)),
            ("rootEntries", .array(rootEntries.map { .string($0) })),
            ("limits", .object(limits.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })),
        ])
    }
}

import Network
import RuntimeSpec
import Seccomp
import SwvmBase

/// The host <-> guest-init protocol over the control port; the C side is
/// guest-init/protocol.h (keep the two in step). Frames are u32 type,
/// u32 length, payload, little-endian.
public enum GuestProtocol {
    // host -> guest
    public static let config: UInt32 = 1, signal: UInt32 = 2, resize: UInt32 = 3
    // guest -> host
    public static let ready: UInt32 = 100, started: UInt32 = 101, exit: UInt32 = 102, error: UInt32 = 103

    enum Field: UInt16 {
        case arg = 1, env, cwd, uid, gid, groups, hostname, rlimit, caps, seccomp, nnp, readonly, terminal
        case interactive, memory, pids, cpu, masked, readonlyPath, tmpfs, time, rootdev, debug, probe, entropy
        case netInterface = 40, etcHosts, resolvConf
    }

    /// eth0 of a --network bridge run, and the files that go with it.
    public struct NetworkConfig {
        public var address: IPv4Address
        public var prefix: UInt8
        public var gateway: IPv4Address
        public var mtu: UInt16
        public var mac: [UInt8]
        public var resolvConf: String

        public init(_ n: NetworkAttachment) {
            address = n.address
            prefix = UInt8(n.bridge.subnet.prefix)
            gateway = n.bridge.gateway
            mtu = UInt16(n.bridge.mtu)
            mac = n.mac
            resolvConf = n.resolvConf
        }
    }

    public static func frame(_ type: UInt32, _ payload: [UInt8]) -> [UInt8] {
        le32(type) + le32(UInt32(payload.count)) + payload
    }

    /// The run's settings as guest-init reads them.
    public static func encodeConfig(_ spec: RunSpec, filter: SeccompFilter?, rootDevice: String,
                                    window: (rows: UInt16, cols: UInt16)?, hostTimeNanos: UInt64, entropy: [UInt8], debug: Bool,
                                    network: NetworkConfig? = nil) -> [UInt8] {
        var out: [UInt8] = []
        func field(_ f: Field, _ bytes: [UInt8]) { out += le16(f.rawValue) + le32(UInt32(bytes.count)) + bytes }
        func text(_ f: Field, _ s: String) { field(f, Array(s.utf8)) }
        for a in spec.process.args { text(.arg, a) }
        for e in spec.process.env { text(.env, e) }
        text(.cwd, spec.process.cwd)
        field(.uid, le32(spec.process.uid))
        field(.gid, le32(spec.process.gid))
        field(.groups, spec.process.additionalGids.flatMap(le32))
        text(.hostname, spec.hostname)
        for r in spec.process.rlimits { field(.rlimit, le32(UInt32(r.resource)) + le64(r.soft) + le64(r.hard)) }
        field(.caps, le64(Capabilities.mask(spec.capabilities)))
        if let f = filter { field(.seccomp, f.program) }
        field(.nnp, [spec.noNewPrivileges ? 1 : 0])
        field(.readonly, [spec.readOnlyRoot ? 1 : 0])
        if spec.terminal, let w = window { field(.terminal, le16(w.rows) + le16(w.cols)) }
        field(.interactive, [spec.interactive ? 1 : 0])
        if let m = spec.resources.memory { field(.memory, le64(m)) }
        if let p = spec.resources.pids { field(.pids, le64(UInt64(bitPattern: p))) }
        if let q = spec.resources.cpuQuota { field(.cpu, le64(UInt64(bitPattern: q)) + le64(spec.resources.cpuPeriod)) }
        for p in spec.maskedPaths { text(.masked, p) }
        for p in spec.readonlyPaths { text(.readonlyPath, p) }
        for m in spec.mounts where m.kind == .tmpfs {
            field(.tmpfs, [m.readOnly ? 1 : 0] + Array(m.destination.utf8) + [0] + Array(m.options.joined(separator: ",").utf8))
        }
        field(.time, le64(hostTimeNanos))
        field(.entropy, entropy)
        text(.rootdev, rootDevice)
        if debug { field(.debug, [1]) }
        if spec.probe != nil { field(.probe, [1]) }
        var hostsSpec = spec
        if let n = network {
            field(.netInterface, n.address.bytes + [n.prefix] + n.gateway.bytes + le16(n.mtu) + n.mac)
            text(.resolvConf, n.resolvConf)
            hostsSpec.networkAddress = n.address
        }
        text(.etcHosts, hostsSpec.etcHosts)
        return out
    }

    /// Splits a byte stream into frames; keeps an incomplete tail.
    public struct Reader {
        private var buffer: [UInt8] = []
        public init() {}

        public mutating func feed(_ bytes: [UInt8]) -> [(type: UInt32, payload: [UInt8])] {
            buffer += bytes
            var frames: [(UInt32, [UInt8])] = []
            while buffer.count >= 8 {
                let type = le32(buffer, 0), len = Int(le32(buffer, 4))
                guard len <= 1 << 20 else { buffer.removeAll(); break }   // garbage: drop it
                guard buffer.count >= 8 + len else { break }
                frames.append((type, Array(buffer[8..<(8 + len)])))
                buffer.removeFirst(8 + len)
            }
            return frames
        }
    }
}


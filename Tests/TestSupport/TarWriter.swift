import SwvmBase

/// Builds tar archives byte by byte, including the hostile ones a real
/// tar would refuse to write.
public struct TarWriter {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    public enum Kind: UInt8 {
        case file = 0x30, hardLink = 0x31, symlink = 0x32, char = 0x33, block = 0x34, directory = 0x35, fifo = 0x36
    }

    public mutating func file(_ name: String, _ content: String = "", mode: UInt32 = 0o644, uid: UInt32 = 0, gid: UInt32 = 0, mtime: Int = 1_700_000_000) {
        add(name, kind: .file, data: Array(content.utf8), mode: mode, uid: uid, gid: gid, mtime: mtime)
    }

    public mutating func directory(_ name: String, mode: UInt32 = 0o755) { add(name, kind: .directory, mode: mode) }
    public mutating func symlink(_ name: String, to target: String) { add(name, kind: .symlink, link: target, mode: 0o777) }
    public mutating func hardLink(_ name: String, to target: String) { add(name, kind: .hardLink, link: target) }
    /// A PAX extended header (type x, or g for a global one) with these records.
    public mutating func pax(_ records: [(String, String)], global: Bool = false) {
        let data = records.flatMap { paxRecord($0.0, $0.1) }
        header(name: global ? "GlobalHead" : "PaxHeaders/x", type: global ? 0x67 : 0x78, size: data.count, link: "",
               mode: 0o644, uid: 0, gid: 0, mtime: 1_700_000_000)
        appendPadded(data)
    }

    public mutating func fifo(_ name: String) { add(name, kind: .fifo) }
    public mutating func charDevice(_ name: String, major: UInt32, minor: UInt32) {
        add(name, kind: .char, mode: 0o666, devMajor: major, devMinor: minor)
    }

    public mutating func add(_ name: String, kind: Kind, data: [UInt8] = [], link: String = "", mode: UInt32 = 0o644,
                             uid: UInt32 = 0, gid: UInt32 = 0, mtime: Int = 1_700_000_000, devMajor: UInt32 = 0, devMinor: UInt32 = 0) {
        if name.utf8.count > 99 || link.utf8.count > 99 {
            var records: [UInt8] = []
            if name.utf8.count > 99 { records += paxRecord("path", name) }
            if link.utf8.count > 99 { records += paxRecord("linkpath", link) }
            header(name: "PaxHeaders/x", type: 0x78, size: records.count, link: "", mode: 0o644, uid: 0, gid: 0, mtime: mtime)
            appendPadded(records)
        }
        header(name: String(name.utf8.prefix(99))!, type: kind.rawValue, size: data.count, link: String(link.utf8.prefix(99))!,
               mode: mode, uid: uid, gid: gid, mtime: mtime, devMajor: devMajor, devMinor: devMinor)
        appendPadded(data)
    }

    func paxRecord(_ key: String, _ value: String) -> [UInt8] {
        let body = " \(key)=\(value)\n"
        var len = body.utf8.count + 1
        while "\(len)\(body)".utf8.count != len { len += 1 }
        return Array("\(len)\(body)".utf8)
    }

    mutating func header(name: String, type: UInt8, size: Int, link: String, mode: UInt32, uid: UInt32, gid: UInt32, mtime: Int,
                         devMajor: UInt32 = 0, devMinor: UInt32 = 0) {
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ s: String, _ o: Int, _ len: Int) { for (i, b) in s.utf8.prefix(len).enumerated() { h[o + i] = b } }
        func octal(_ v: Int, _ o: Int, _ len: Int) {
            let s = String(v, radix: 8)
            put(String(repeating: "0", count: max(0, len - 1 - s.count)) + s, o, len - 1)
        }
        put(name, 0, 100)
        octal(Int(mode), 100, 8)
        octal(Int(uid), 108, 8)
        octal(Int(gid), 116, 8)
        octal(size, 124, 12)
        octal(mtime, 136, 12)
        for i in 148..<156 { h[i] = 0x20 }
        h[156] = type
        put(link, 157, 100)
        put("ustar", 257, 6)
        put("00", 263, 2)
        octal(Int(devMajor), 329, 8)
        octal(Int(devMinor), 337, 8)
        let sum = h.reduce(0) { $0 + Int($1) }
        octal(sum, 148, 7)
        h[155] = 0x20
        bytes += h
    }

    mutating func appendPadded(_ data: [UInt8]) {
        bytes += data
        if data.count % 512 != 0 { bytes += [UInt8](repeating: 0, count: 512 - data.count % 512) }
    }

    public func finish() -> [UInt8] { bytes + [UInt8](repeating: 0, count: 1024) }
}

#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import SwvmBase

extension NinePServer {
    static let rootQid = NinePQid(type: NineP.qtDir, version: 0, path: 1 << 63)

    /// One path component the guest named: never empty, ".", "..", or
    /// holding "/" or NUL, and at most NAME_MAX bytes.
    static func checkedName(_ name: [UInt8]) throws -> [CChar] {
        guard !name.isEmpty, name.count <= 255 else { throw Failure(errno: name.isEmpty ? EINVAL : ENAMETOOLONG) }
        guard !name.contains(0x2f), !name.contains(0), name != [0x2e], name != [0x2e, 0x2e] else {
            throw Failure(errno: EPERM)
        }
        // Bytes, not a Swift String: a name need not be UTF-8, and must reach
        // the host exactly as the guest gave it.
        return name.map { CChar(bitPattern: $0) } + [0]
    }

    static let beneath: UInt64 = 0x08 | 0x04 | 0x02   // RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS

    /// Opens `name` in the directory `dir` (sys_O_PATH unless `flags` say
    /// otherwise), never following a symlink and never leaving `dir`.
    func openBeneath(_ dir: Int32, _ name: [CChar], _ flags: Int32 = sys_O_PATH, mode: UInt32 = 0) throws -> Int32 {
        let fd = sys_openat2(dir, name, UInt64(UInt32(bitPattern: flags | O_NOFOLLOW | O_CLOEXEC)), UInt64(mode), NinePServer.beneath)
        guard fd >= 0 else { throw Failure(errno: errno) }
        return fd
    }

    /// The node `name` names in `parent`: a share from the synthetic root,
    /// or a file in a share.
    func step(_ parent: Fid, _ name: [UInt8]) throws -> Fid {
        guard let share = parent.share else {
            guard let text = String(validatingUTF8: name.map { CChar(bitPattern: $0) } + [0]),
                  let i = Int(text), String(i) == text, roots.indices.contains(i) else {
                throw Failure(errno: ENOENT)
            }
            let fd = dup(roots[i].fd)
            guard fd >= 0 else { throw Failure(errno: errno) }
            return Fid(share: i, fd: fd, uid: parent.uid)
        }
        let fd = try openBeneath(parent.fd, try NinePServer.checkedName(name))
        return Fid(share: share, fd: fd, uid: parent.uid)
    }

    func walk(_ r: inout NinePReader) throws {
        let startID = try r.u32("fid")
        guard let start = fids[startID] else { throw Failure(errno: EBADF) }
        let newID = try r.u32("newfid")
        let n = Int(try r.u16("nwname"))
        guard n <= NineP.maxWalkNames else { throw Failure(errno: EINVAL) }
        var names: [[UInt8]] = []
        for _ in 0..<n { names.append(try r.string("wname")) }
        guard newID == startID || fids[newID] == nil else { throw Failure(errno: EBADF) }

        var current = Fid(share: start.share, fd: -1, uid: start.uid)
        if start.fd >= 0 {
            current.fd = dup(start.fd)
            guard current.fd >= 0 else { throw Failure(errno: errno) }
        }
        var qids: [NinePQid] = []
        for name in names {
            do {
                let next = try step(current, name)
                qids.append(try qid(next))
                release(current)
                current = next
            } catch let f as Failure {
                // A partial walk returns the qids it found and makes no fid.
                release(current)
                if qids.isEmpty { throw f }
                writeWalk(qids)
                return
            }
        }
        if newID == startID, let old = fids.removeValue(forKey: newID) { release(old) }
        try install(newID, current)
        writeWalk(qids)
    }

    func writeWalk(_ qids: [NinePQid]) {
        writer.u16(UInt16(qids.count))
        for q in qids { writer.qid(q) }
    }
}

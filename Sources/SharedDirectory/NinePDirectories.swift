#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import SwvmBase

extension NinePServer {
    func readdir(_ r: inout NinePReader, limit: Int) throws {
        let f = try fid(&r)
        let offset = try r.u64("offset")
        let count = Int(try r.u32("count"))
        let room = min(count, limit - NineP.headerSize - 4)
        writer.u32(0)
        let start = writer.bytes.count
        func entry(_ q: NinePQid, _ next: UInt64, _ type: UInt8, _ name: [UInt8]) -> Bool {
            guard writer.bytes.count - start + 24 + name.count <= room else { return false }
            writer.qid(q)
            writer.u64(next)
            writer.u8(type)
            writer.string(name)
            return true
        }
        if f.share == nil {
            guard f.rootOpened else { throw Failure(errno: EBADF) }
            let names = [".", ".."] + roots.indices.map { String($0) }
            var i = Int(min(offset, UInt64(names.count)))
            while i < names.count, entry(i < 2 ? NinePServer.rootQid : (try qid(Fid(share: i - 2, fd: roots[i - 2].fd, uid: 0))),
                                         UInt64(i + 1), UInt8(DT_DIR), Array(names[i].utf8)) { i += 1 }
        } else {
            guard f.open >= 0 else { throw Failure(errno: EBADF) }
            guard offset <= UInt64(Int64.max), lseek(f.open, off_t(offset), SEEK_SET) >= 0 else {
                throw Failure(errno: errno == 0 ? EINVAL : errno)
            }
            let dev = UInt64(try attributes(f).st_dev), rootDev = roots[f.share!].dev
            var buf = [UInt8](repeating: 0, count: max(512, min(room, 65536)))
            let got = buf.withUnsafeMutableBytes { sys_getdents64(f.open, $0.baseAddress, $0.count) }
            guard got >= 0 else { throw Failure(errno: errno) }
            var o = 0
            while o + 19 <= got {
                let ino = le64(buf, o), next = le64(buf, o + 8)
                let reclen = Int(le16(buf, o + 16))
                let type = buf[o + 18]
                guard reclen >= 19, o + reclen <= got else { break }
                let nameBytes = buf[(o + 19)..<(o + reclen)].prefix { $0 != 0 }
                let qtype = type == UInt8(DT_DIR) ? NineP.qtDir : type == UInt8(DT_LNK) ? NineP.qtSymlink : NineP.qtFile
                guard entry(NinePQid(type: qtype, version: 0, path: NinePServer.qidPath(ino: ino, dev: dev, rootDev: rootDev)), next, type, Array(nameBytes)) else { break }
                o += reclen
            }
        }
        writer.patch32(at: NineP.headerSize, UInt32(writer.bytes.count - start))
    }
}

#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import SwvmBase

extension NinePServer {
    func version(_ r: inout NinePReader) throws {
        let requested = try r.u32("msize")
        let v = try r.string("version")
        // A new session: every fid of the old one is gone.
        closeAllFids()
        guard requested >= NinePServer.minMessageSize else { throw Failure(errno: EINVAL) }
        msize = min(requested, NinePServer.maxMessageSize)
        writer.u32(msize)
        writer.string(v == Array(NineP.version.utf8) ? Array(NineP.version.utf8) : Array("unknown".utf8))
    }

    func attach(_ r: inout NinePReader) throws {
        let fid = try r.u32("fid")
        _ = try r.u32("afid")
        _ = try r.string("uname")
        _ = try r.string("aname")
        let nuname = try r.u32("n_uname")
        try install(fid, Fid(share: nil, fd: -1, uid: nuname == NineP.noFid ? 0 : nuname))
        writer.qid(NinePServer.rootQid)
    }

    func install(_ id: UInt32, _ f: Fid) throws {
        guard id != NineP.noFid, fids[id] == nil else { release(f); throw Failure(errno: EBADF) }
        guard fids.count < maxFids else { release(f); throw Failure(errno: EMFILE) }
        fids[id] = f
    }

    func fid(_ r: inout NinePReader, _ what: String = "fid") throws -> Fid {
        let id = try r.u32(what)
        guard let f = fids[id] else { throw Failure(errno: EBADF) }
        return f
    }

    func clunk(_ r: inout NinePReader) throws {
        let id = try r.u32("fid")
        guard let f = fids.removeValue(forKey: id) else { throw Failure(errno: EBADF) }
        release(f)
    }
}

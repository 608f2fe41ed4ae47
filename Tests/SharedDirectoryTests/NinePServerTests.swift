#if canImport(Glibc)
import Glibc
#endif
import Testing
import SharedDirectory
import SwvmBase

/// The 9p server driven directly with crafted requests, as a hostile guest
/// kernel could send them: real files in a temporary share, real replies.
@Suite struct NinePServerTests {
    /// A minimal 9P2000.L client over `NinePServer.handle`.
    final class Client {
        let server: NinePServer
        var tag: UInt16 = 0
        init(_ server: NinePServer) { self.server = server }

        struct Reply {
            let type: UInt8
            let body: [UInt8]
            var errno: Int32? { type == NineP.rlerror ? Int32(bitPattern: le32(body, 0)) : nil }
            func u32(_ o: Int) -> UInt32 { le32(body, o) }
            func u64(_ o: Int) -> UInt64 { le64(body, o) }
        }

        func send(_ type: UInt8, _ fields: [UInt8], replyLimit: Int = 1 << 20, size: UInt32? = nil) -> Reply {
            tag &+= 1
            let n = UInt32(7 + fields.count)
            let msg = le32(size ?? n) + [type] + le16(tag) + fields
            let r = msg.withUnsafeBytes { server.handle($0, replyLimit: replyLimit) }!
            #expect(le32(r, 0) == UInt32(r.count))
            #expect(le16(r, 5) == tag)
            return Reply(type: r[4], body: Array(r[7...]))
        }

        static func s(_ text: String) -> [UInt8] { le16(UInt16(text.utf8.count)) + Array(text.utf8) }

        @discardableResult
        func version(_ msize: UInt32 = 65536) -> Reply { send(NineP.tversion, le32(msize) + Client.s("9P2000.L")) }
        func attach(_ fid: UInt32, uid: UInt32 = 0) -> Reply {
            send(NineP.tattach, le32(fid) + le32(NineP.noFid) + Client.s("") + Client.s("") + le32(uid))
        }
        func walk(_ fid: UInt32, _ newfid: UInt32, _ names: [String]) -> Reply {
            send(NineP.twalk, le32(fid) + le32(newfid) + le16(UInt16(names.count)) + names.flatMap(Client.s))
        }
        func lopen(_ fid: UInt32, _ flags: Int32) -> Reply { send(NineP.tlopen, le32(fid) + le32(UInt32(bitPattern: flags))) }
        func lcreate(_ fid: UInt32, _ name: String, flags: Int32 = O_RDWR, mode: UInt32 = 0o644, gid: UInt32 = 0) -> Reply {
            send(NineP.tlcreate, le32(fid) + Client.s(name) + le32(UInt32(bitPattern: flags)) + le32(mode) + le32(gid))
        }
        func write(_ fid: UInt32, _ offset: UInt64, _ data: [UInt8]) -> Reply {
            send(NineP.twrite, le32(fid) + le64(offset) + le32(UInt32(data.count)) + data)
        }
        func read(_ fid: UInt32, _ offset: UInt64, _ count: UInt32, replyLimit: Int = 1 << 20) -> Reply {
            send(NineP.tread, le32(fid) + le64(offset) + le32(count), replyLimit: replyLimit)
        }
        func clunk(_ fid: UInt32) -> Reply { send(NineP.tclunk, le32(fid)) }
        func mkdir(_ fid: UInt32, _ name: String, mode: UInt32 = 0o755) -> Reply {
            send(NineP.tmkdir, le32(fid) + Client.s(name) + le32(mode) + le32(0))
        }
        func getattr(_ fid: UInt32) -> Reply { send(NineP.tgetattr, le32(fid) + le64(0x7ff)) }
        /// A session (Tversion) with `dir`'s share as share 0, walked to as fid 1.
        static func onShare(_ dir: Scratch, readOnly: Bool = false, maxFids: Int = NinePServer.maxFids) throws -> Client {
            let c = Client(try NinePServer(shares: [Share(hostPath: dir.share, readOnly: readOnly)], maxFids: maxFids))
            c.version()
            c.share(0, as: 1)
            return c
        }

        /// The share's root as fid `fid` (attach as fid 100, walk to "index").
        func share(_ index: Int, as fid: UInt32) {
            if attach(100).errno == nil { }
            #expect(walk(100, fid, [String(index)]).errno == nil)
        }
    }

    /// A temporary host directory with a sibling the guest must never reach.
    final class Scratch: Sendable {
        let base: String
        let share: String
        let outside: String
        init() throws {
            var t = Array("/tmp/swvm-9p-test-XXXXXX".utf8CString)
            guard mkdtemp(&t) != nil else { throw SwvmError.errno("mkdtemp") }
            base = String(decoding: t.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            share = base + "/share"
            outside = base + "/outside"
            try FS.makeDirectories(share)
            try FS.makeDirectories(outside)
            try FS.writeFile(outside + "/secret", Array("secret".utf8))
        }
        deinit { try? FS.removeTree(base) }
    }

    @Test func filesWrittenThroughTheServerAppearOnTheHost() throws {
        let dir = try Scratch()
        try FS.writeFile(dir.share + "/from-host", Array("hello from the host\n".utf8))
        let c = Client(try NinePServer(shares: [Share(hostPath: dir.share, readOnly: false)]))
        #expect(c.version().u32(0) == 65536)
        c.share(0, as: 1)
        #expect(c.walk(1, 2, []).errno == nil)   // clone
        let created = c.lcreate(2, "new", mode: 0o4755)
        #expect(created.errno == nil)
        #expect(c.write(2, 0, Array("written in the guest".utf8)).u32(0) == 20)
        #expect(c.clunk(2).errno == nil)
        #expect(try FS.readFile(dir.share + "/new") == Array("written in the guest".utf8))
        // The set-user-ID bit the guest asked for is not on the host.
        #expect(FS.stat(dir.share + "/new")!.st_mode & 0o7777 == 0o755)

        #expect(c.walk(1, 3, ["from-host"]).errno == nil)
        #expect(c.lopen(3, O_RDONLY).errno == nil)
        let r = c.read(3, 0, 4096)
        #expect(r.u32(0) == 20)
        #expect(Array(r.body[4...]) == Array("hello from the host\n".utf8))
        #expect(c.getattr(3).u64(8 + 13 + 4 + 4 + 4 + 8 + 8) == 20)   // size
    }

    @Test func namesThatClimbOrHoldASlashAreRefused() throws {
        let dir = try Scratch()
        try FS.makeDirectories(dir.share + "/sub")
        let c = try Client.onShare(dir)
        let server = c.server
        for name in ["..", ".", "../outside", "sub/..", "", "a\u{0}b"] {
            let r = c.walk(1, 2, [name])
            #expect(r.errno != nil, "walk '\(name)' from the share's root")
        }
        #expect(c.walk(1, 2, ["sub", ".."]).body.prefix(2) == [1, 0])   // only "sub" was walked
        #expect(c.walk(1, 2, ["sub"]).errno == nil)
        #expect(c.walk(2, 3, [".."]).errno == EPERM)
        #expect(c.lcreate(2, "../escape").errno == EPERM)
        #expect(c.mkdir(1, "x/y").errno == EPERM)
        #expect(c.send(NineP.tunlinkat, le32(1) + Client.s("../outside/secret") + le32(0)).errno == EPERM)
        #expect(c.send(NineP.trenameat, le32(1) + Client.s("sub") + le32(1) + Client.s("../moved")).errno == EPERM)
        #expect(FS.exists(dir.outside + "/secret"))
        #expect(!FS.exists(dir.base + "/escape") && !FS.exists(dir.base + "/moved"))
        // The synthetic root holds only the shares.
        #expect(c.walk(100, 5, ["1"]).errno == ENOENT)
        #expect(c.walk(100, 5, ["00"]).errno == ENOENT)
        #expect(c.walk(100, 5, [".."]).errno == ENOENT)
        #expect(c.mkdir(100, "new").errno == EROFS)
        #expect(server.refusals > 0)
    }

    @Test func aSymlinkToTheHostsEtcIsNeverFollowed() throws {
        let dir = try Scratch()
        #expect(symlink("/etc", dir.share + "/etc-link") == 0)
        #expect(symlink(dir.outside + "/secret", dir.share + "/secret-link") == 0)
        let c = try Client.onShare(dir)
        // Walking through the link fails; the link itself is a symlink qid.
        #expect(c.walk(1, 2, ["etc-link", "passwd"]).body.prefix(2) == [1, 0])
        let link = c.walk(1, 3, ["secret-link"])
        #expect(link.errno == nil && link.body[2] == NineP.qtSymlink)
        #expect(c.lopen(3, O_RDONLY).errno == ELOOP)
        #expect(c.lcreate(3, "x").errno != nil)
        #expect(c.walk(1, 4, ["etc-link"]).errno == nil)
        #expect(c.mkdir(4, "planted").errno != nil)
        #expect(c.lcreate(4, "planted").errno != nil)
        #expect(!FS.exists("/etc/planted"))
        // readlink gives the target as stored, for the guest to resolve.
        let target = c.send(NineP.treadlink, le32(4))
        #expect(target.body == Client.s("/etc"))
        // Creating over an existing link never writes through it.
        #expect(c.lcreate(1, "secret-link", flags: O_RDWR | O_TRUNC).errno == EEXIST)
        #expect(try FS.readFile(dir.outside + "/secret") == Array("secret".utf8))
    }

    @Test func forgedFidsAndMalformedRequestsAreRefused() throws {
        let dir = try Scratch()
        try FS.writeFile(dir.share + "/f", Array("data".utf8))
        let c = try Client.onShare(dir)
        for fid: UInt32 in [0, 2, 999, NineP.noFid] {
            #expect(c.getattr(fid).errno == EBADF)
            #expect(c.walk(fid, 50, []).errno == EBADF)
            #expect(c.read(fid, 0, 10).errno == EBADF)
            #expect(c.clunk(fid).errno == EBADF)
        }
        // A fid in use cannot be taken again by attach or walk.
        #expect(c.attach(1).errno == EBADF)
        #expect(c.walk(100, 1, []).errno == EBADF)
        // Reading a fid that was never opened.
        #expect(c.walk(1, 2, ["f"]).errno == nil)
        #expect(c.read(2, 0, 10).errno == EBADF)
        // Twrite announcing more data than it carries.
        #expect(c.lopen(2, O_RDWR).errno == nil)
        #expect(c.send(NineP.twrite, le32(2) + le64(0) + le32(1 << 30) + [1, 2, 3]).errno == EINVAL)
        // A string longer than the request.
        #expect(c.send(NineP.twalk, le32(1) + le32(3) + le16(1) + le16(60000) + [0x61]).errno == EINVAL)
        // More names than a walk may carry.
        #expect(c.walk(1, 3, Array(repeating: "f", count: 17)).errno == EINVAL)
        // A size field larger than the request, and a huge one.
        #expect(c.send(NineP.tclunk, le32(2), size: 4096).errno == EINVAL)
        #expect(c.send(NineP.tclunk, le32(2), size: UInt32.max).errno == EINVAL)
        // A huge read count is cut to the room the driver gave.
        let r = c.read(2, 0, UInt32.max, replyLimit: 64)
        #expect(r.errno == nil && r.u32(0) == 4)
        // A huge offset.
        #expect(c.read(2, UInt64.max, 10).errno == EINVAL)
        // Unknown and 9P2000 messages.
        #expect(c.send(200, []).errno == EOPNOTSUPP)
        #expect(c.send(112, le32(1) + [0]).errno == EOPNOTSUPP)   // Topen
        // Too short to answer at all.
        #expect([UInt8](repeating: 0, count: 5).withUnsafeBytes { c.server.handle($0, replyLimit: 100) } == nil)
        #expect(try FS.readFile(dir.share + "/f") == Array("data".utf8))
    }

    @Test func aReadOnlyShareRefusesEveryChange() throws {
        let dir = try Scratch()
        try FS.writeFile(dir.share + "/f", Array("keep".utf8))
        let c = try Client.onShare(dir, readOnly: true)
        #expect(c.lcreate(1, "new").errno == EROFS)
        #expect(c.mkdir(1, "d").errno == EROFS)
        #expect(c.send(NineP.tsymlink, le32(1) + Client.s("l") + Client.s("/etc") + le32(0)).errno == EROFS)
        #expect(c.send(NineP.tunlinkat, le32(1) + Client.s("f") + le32(0)).errno == EROFS)
        #expect(c.walk(1, 2, ["f"]).errno == nil)
        #expect(c.lopen(2, O_WRONLY).errno == EROFS)
        #expect(c.lopen(2, O_RDONLY | O_TRUNC).errno == EROFS)
        // setattr: size 0 (a truncate)
        #expect(c.send(NineP.tsetattr, le32(2) + le32(0x8) + le32(0) + le32(0) + le32(0) + le64(0) + le64(0) + le64(0) + le64(0) + le64(0)).errno == EROFS)
        #expect(c.lopen(2, O_RDONLY).errno == nil)
        #expect(c.write(2, 0, [1]).errno == EROFS)
        #expect(try FS.readFile(dir.share + "/f") == Array("keep".utf8))
        #expect(!FS.exists(dir.share + "/new"))
    }

    @Test func openHandlesAreBounded() throws {
        let dir = try Scratch()
        let c = try Client.onShare(dir, maxFids: 8)
        var refused = 0
        for fid: UInt32 in 2..<20 where c.walk(1, fid, []).errno == EMFILE { refused += 1 }
        #expect(refused == 12)   // 100 and 1 are held, 6 more fit
        // A new session (Tversion) drops every fid.
        c.version()
        #expect(c.server.openFids == 0)
    }

    @Test func directoriesListAndRenameUnlinkWork() throws {
        let dir = try Scratch()
        let c = try Client.onShare(dir)
        #expect(c.mkdir(1, "d").errno == nil)
        #expect(c.walk(1, 2, []).errno == nil)
        #expect(c.lcreate(2, "a").errno == nil)
        #expect(c.send(NineP.trenameat, le32(1) + Client.s("a") + le32(1) + Client.s("b")).errno == nil)
        #expect(FS.exists(dir.share + "/b") && !FS.exists(dir.share + "/a"))
        #expect(c.walk(1, 3, []).errno == nil)
        #expect(c.lopen(3, O_RDONLY | O_DIRECTORY).errno == nil)
        let list = c.send(NineP.treaddir, le32(3) + le64(0) + le32(4096))
        var names: [String] = []
        var o = 4
        while o < list.body.count {
            let n = Int(le16(list.body, o + 22))
            names.append(String(decoding: list.body[(o + 24)..<(o + 24 + n)], as: UTF8.self))
            o += 24 + n
        }
        #expect(Set(names) == [".", "..", "d", "b"])
        #expect(c.send(NineP.tunlinkat, le32(1) + Client.s("d") + le32(0x200)).errno == nil)
        #expect(!FS.exists(dir.share + "/d"))
    }
}

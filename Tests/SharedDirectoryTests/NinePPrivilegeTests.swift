#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import Testing
@testable import SharedDirectory
import SwvmBase
import NativeThreads

/// The server's own privileges in a share (issue 23): its thread holds no
/// CAP_FSETID, and a name swapped between a creation and the chown is left
/// alone.
@Suite struct NinePPrivilegeTests {
    typealias Client = NinePServerTests.Client

    /// A set-user-ID file of uid 1234 in the share, written through the
    /// server by guest root: with CAP_FSETID (any other thread of the VMM)
    /// the bit stays, which is what a guest used to get; on a thread that
    /// ran `confineThread` the kernel clears it, as for any unprivileged writer.
    @Test func writesOnTheConfinedThreadClearSetUserID() throws {
        let dir = try NinePServerTests.Scratch()
        func setUID(_ name: String) throws -> String {
            let path = dir.share + "/" + name
            try FS.writeFile(path, Array("#!/bin/sh\n".utf8))
            try sys("chown") { chown(path, 1234, 1234) }
            try sys("chmod") { chmod(path, 0o6755) }
            return path
        }
        @Sendable func write(_ name: String, on c: Client) {
            #expect(c.walk(1, 2, [name]).errno == nil)
            #expect(c.lopen(2, O_WRONLY).errno == nil)
            #expect(c.write(2, 0, Array("#!/bin/bash".utf8)).errno == nil)
            #expect(c.clunk(2).errno == nil)
        }
        let kept = try setUID("kept"), cleared = try setUID("cleared")
        let c = try Client.onShare(dir)
        write("kept", on: c)
        #expect(FS.stat(kept)!.st_mode & 0o7777 == 0o6755)

        // The confined thread has a client of its own (a client is not
        // Sendable: it keeps its next tag).
        let thread = try NativeThread {
            #expect((try? NinePServer.confineThread()) != nil)
            #expect(sys_thread_has_capability(Int32(NinePServer.capFSetID)) == 0)
            do { write("cleared", on: try Client.onShare(dir)) } catch { Issue.record("\(error)") }
        }
        thread.join()
        #expect(FS.stat(cleared)!.st_mode & 0o7777 == 0o0755)
        #expect(FS.stat(cleared)!.st_uid == 1234)
        // The drop was that thread's own.
        #expect(sys_thread_has_capability(Int32(NinePServer.capFSetID)) == 1)
    }

    /// Between mkdirat/mknodat/symlinkat and the chown, a host user swaps
    /// the new name for a hard link to a file outside the share, or for an
    /// entry of its own: the server answers EEXIST and changes neither.
    @Test(arguments: ["mkdir", "mknod", "symlink"])
    func aNameSwappedBeforeTheChownIsLeftAlone(_ op: String) throws {
        let dir = try NinePServerTests.Scratch()
        let victim = dir.outside + "/victim"
        try FS.writeFile(victim, Array("host file".utf8))
        try sys("chmod") { chmod(victim, 0o600) }
        try FS.makeDirectories(dir.share + "/theirs")
        try sys("chown") { chown(dir.share + "/theirs", 1234, 1234) }
        let c = try Client(NinePServer(shares: [Share(hostPath: dir.share, readOnly: false)]))
        c.version()
        #expect(c.attach(100, uid: 4321).errno == nil)
        #expect(c.walk(100, 1, ["0"]).errno == nil)

        for swapIn in ["hard link", "their entry"] {
            c.server.afterCreate = { dirFD, name in
                #expect(renameat(dirFD, name, dirFD, "moved-away") == 0)
                if swapIn == "hard link" {
                    #expect(linkat(AT_FDCWD, victim, dirFD, name, 0) == 0)
                } else {
                    #expect(renameat(dirFD, "theirs", dirFD, name) == 0)
                }
            }
            let r: Client.Reply
            switch op {
            case "mkdir": r = c.mkdir(1, "new", mode: 0o777)
            case "mknod": r = c.send(NineP.tmknod, le32(1) + Client.s("new") + le32(0o100666) + le32(0) + le32(0) + le32(77))
            default: r = c.send(NineP.tsymlink, le32(1) + Client.s("new") + Client.s("target") + le32(77))
            }
            #expect(r.errno == EEXIST, "\(swapIn): \(r)")
            let st = try #require(FS.lstat(dir.share + "/new"))
            if swapIn == "hard link" {
                #expect(st.st_uid == 0 && st.st_gid == 0 && st.st_mode & 0o7777 == 0o600, "\(swapIn)")
                unlink(dir.share + "/new")
            } else {
                #expect(st.st_uid == 1234 && st.st_gid == 1234, "\(swapIn)")
                rename(dir.share + "/new", dir.share + "/theirs")
            }
            try FS.removeTree(dir.share + "/moved-away")
        }
        // Without a race, the entry is the guest's.
        c.server.afterCreate = nil
        #expect(c.mkdir(1, "plain").errno == nil)
        #expect(FS.stat(dir.share + "/plain")!.st_uid == 4321)
    }
}

#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import SwvmBase
import NativeThreads

/// The cache convention: users share an item, removal needs it alone.
@Suite struct CacheItemLockTests {
    @Test func usersShareAndRemovalNeedsTheItemAlone() throws {
        let dir = "/tmp/swvm-test-lock-\(getpid())-\(randomHex(4))"
        try FS.makeDirectories(dir + "/item")
        defer { try? FS.removeTree(dir) }
        var old = [timespec(tv_sec: 1000, tv_nsec: 0), timespec(tv_sec: 1000, tv_nsec: 0)]
        utimensat(AT_FDCWD, dir + "/item", &old, 0)

        var user1 = try CacheItemLock.shared(dir + "/item")
        var user2 = try CacheItemLock.shared(dir + "/item")
        #expect(user1 != nil && user2 != nil)
        // Taking it stamps the last use.
        #expect(try #require(FS.lstat(dir + "/item")).st_mtim.tv_sec > 1000)
        #expect(try CacheItemLock.exclusive(dir + "/item") == nil)
        user1 = nil
        #expect(try CacheItemLock.exclusive(dir + "/item") == nil)
        user2 = nil
        #expect(try CacheItemLock.exclusive(dir + "/item") != nil)
        #expect(try CacheItemLock.shared(dir + "/absent") == nil)
    }

    /// A user that waited while the item was removed gets nil, not a lock
    /// on what is gone, and makes the item again.
    @Test func aUserWaitingOnARemovalGetsNil() throws {
        let dir = "/tmp/swvm-test-lock-\(getpid())-\(randomHex(4))"
        try FS.makeDirectories(dir + "/item")
        defer { try? FS.removeTree(dir) }
        var remover = try CacheItemLock.exclusive(dir + "/item")
        #expect(remover != nil)
        let result = Locked<String>("waiting")
        let user = try NativeThread {
            let lock = try? CacheItemLock.shared(dir + "/item")
            result.with { $0 = lock == nil ? "nil" : "locked" }
        }
        usleep(200_000)
        #expect(result.current == "waiting")
        try sys("rename") { rename(dir + "/item", dir + "/.item.removing") }
        remover = nil
        user.join()
        #expect(result.current == "nil")
    }
}

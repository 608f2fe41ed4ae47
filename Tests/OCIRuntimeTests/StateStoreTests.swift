#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import OCIRuntime
import RuntimeSpec
@testable import SwvmBase

/// A scratch --root, removed at the end.
final class ScratchRoot {
    let path: String
    var store: StateStore { StateStore(root: path) }

    init() throws {
        path = "/tmp/swvm-oci-test-\(getpid())-\(randomHex(4))"
        try FS.makeDirectories(path, mode: 0o700)
    }

    deinit { try? FS.removeTree(path) }
}

func sampleRecord(_ id: String = "c1") -> ContainerRecord {
    var r = ContainerRecord(id: id, bundle: "/b", rootfs: "/b/rootfs", creator: ProcessIdentity(pid: 10, startTime: 20),
                            created: "2026-12-07T09:00:00Z")
    r.createFinished = true
    r.initProcess = ProcessIdentity(pid: 123, startTime: 456)
    r.annotations = [OCIAnnotation(key: "a", value: "b")]
    r.cgroupsPath = "/x/y"
    r.cgroupPaths = ["/sys/fs/cgroup/memory/x/y"]
    r.poststop = [OCIHook(path: "/bin/true", args: ["true", "x"], env: ["A=1"], timeout: 5)]
    return r
}

@Suite struct StateStoreTests {
    @Test func aRecordReadsBackAsWritten() throws {
        let root = try ScratchRoot()
        let lock = try root.store.makeContainer("c1")
        try root.store.write(sampleRecord(), lock)
        #expect(try root.store.read("c1") == sampleRecord())
        // Written through a temporary file and rename: nothing else is left.
        #expect(try FS.listDirectory(root.store.directory("c1")) == ["state.json"])
    }

    /// A reader racing a writer sees a whole state.json every time.
    @Test func readersNeverSeeAPartialFile() throws {
        let root = try ScratchRoot()
        let lock = try root.store.makeContainer("c1")
        try root.store.write(sampleRecord(), lock)
        let store = root.store
        let writer = try NativeThread {
            for i in 0..<300 {
                var r = sampleRecord()
                r.annotations = (0..<(i % 50) * 10).map { OCIAnnotation(key: "k\($0)", value: String(repeating: "v", count: 100)) }
                try? store.write(r, lock)
            }
        }
        var failures = 0
        for _ in 0..<300 where (try? store.read("c1")) == nil { failures += 1 }
        writer.join()
        #expect(failures == 0)
    }

    @Test func anIdTakenIsRefused() throws {
        let root = try ScratchRoot()
        _ = try root.store.makeContainer("c1")
        #expect(throws: SwvmError.self) { _ = try root.store.makeContainer("c1") }
    }

    @Test(arguments: ["", "a/b", "..", "a..b", "../x", ".", "a\0b", String(repeating: "x", count: 1025)])
    func badIdsAreRefused(_ id: String) throws {
        let root = try ScratchRoot()
        #expect(throws: SwvmError.self) { _ = try root.store.makeContainer(id) }
        #expect(throws: SwvmError.self) { _ = try root.store.lock(id) }
        #expect(try FS.listDirectory(root.path).isEmpty)
    }

    @Test func anIdOf1024BytesIsFine() throws {
        let root = try ScratchRoot()
        // A name of 1,024 bytes is over NAME_MAX: the error is the file
        // system's, not the id check's.
        #expect(throws: Never.self) { try ContainerID.validate(String(repeating: "x", count: 1024)) }
        _ = try root.store.makeContainer(String(repeating: "x", count: 200))
    }

    @Test func aCorruptStateFileIsAClearError() throws {
        let root = try ScratchRoot()
        _ = try root.store.makeContainer("c1")
        let cases: [(String, String)] = [
            ("{\"swvmStateVersion\":1,", "state.json is corrupt: expected a string key at byte 22"),
            ("[]", "state.json is corrupt: not a JSON object"),
            (String(decoding: sampleRecord().encoded(), as: UTF8.self).replacing("\"pid\":123", with: "\"pid\":4294967296"),
             "state.json is corrupt: init.pid: 4294967296 is out of range"),
            (String(decoding: sampleRecord().encoded(), as: UTF8.self).replacing("\"id\":\"c1\"", with: "\"id\":\"c2\""),
             "it names container c2"),
            (String(decoding: sampleRecord().encoded(), as: UTF8.self).replacing("\"args\":[\"true\",\"x\"]", with: "\"args\":[1]"),
             "state.json is corrupt: poststop[0].args[0]: not a string"),
        ]
        for (text, message) in cases {
            try FS.writeText(root.store.stateFile("c1"), text)
            do {
                _ = try root.store.read("c1")
                Issue.record("\(text) was read")
            } catch let e as SwvmError {
                #expect(e.message.contains(message), "\(e.message)")
                #expect(e.message.contains(root.store.stateFile("c1")))
            }
        }
    }

    /// The lock is flock(2) on the container's directory: another process
    /// (flock(1) here) cannot take it while swvm holds it, and can after.
    @Test func theLockExcludesAnotherProcess() throws {
        let root = try ScratchRoot()
        var lock: ContainerLock? = try root.store.makeContainer("c1")
        let dir = root.store.directory("c1")
        let held = try Command.run(["flock", "-n", "-E", "7", dir, "true"], timeout: 10)
        #expect(held.status == 7, "\(held)")
        withExtendedLifetime(lock) {}
        lock = nil
        let free = try Command.run(["flock", "-n", "-E", "7", dir, "true"], timeout: 10)
        #expect(free.status == 0, "\(free)")
        // And swvm waits for another process's lock.
        let start = Clock.monotonicNanos()
        var other: CommandResult?
        let t = try NativeThread { other = try? Command.run(["flock", dir, "sleep", "0.5"], timeout: 10) }
        usleep(150_000)
        _ = try root.store.lock("c1")
        #expect(Clock.secondsSince(start) >= 0.45)
        t.join()
        #expect(other?.status == 0)
    }

    @Test func aRemovedContainerCannotBeLocked() throws {
        let root = try ScratchRoot()
        let lock = try root.store.makeContainer("c1")
        try root.store.remove("c1", lock)
        #expect(throws: SwvmError.self) { _ = try root.store.lock("c1") }
    }
}

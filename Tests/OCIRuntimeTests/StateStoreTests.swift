#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import OCIRuntime
import RuntimeSpec
@testable import SwvmBase
import NativeThreads

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
        #expect(try FS.listDirectory(root.store.directory("c1")) == ["lock", "state.json"])
    }

    /// A reader racing a writer sees a whole state.json every time.
    @Test func readersNeverSeeAPartialFile() throws {
        let root = try ScratchRoot()
        let lock = try root.store.makeContainer("c1")
        try root.store.write(sampleRecord(), lock)
        let store = root.store, file = store.stateFile("c1")
        // The writer writes as StateStore.write does (the lock stays here).
        let writer = try NativeThread {
            for i in 0..<300 {
                var r = sampleRecord()
                r.annotations = (0..<(i % 50) * 10).map { OCIAnnotation(key: "k\($0)", value: String(repeating: "v", count: 100)) }
                try? FS.writeFile(file, r.encoded(), mode: 0o600)
            }
        }
        withExtendedLifetime(lock) {}
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

    /// Another process's attempt at the lock (fcntl's record lock, as
    /// Python's lockf takes it): exit 7 when it is held.
    func tryLock(_ dir: String, hold seconds: Double = 0) throws -> CommandResult {
        try Command.run(["python3", "-c", """
            import fcntl, sys, time
            f = open(sys.argv[1] + "/lock", "r+")
            try: fcntl.lockf(f, fcntl.LOCK_EX | (fcntl.LOCK_NB if float(sys.argv[2]) == 0 else 0))
            except OSError: sys.exit(7)
            time.sleep(float(sys.argv[2]))
            """, dir, String(seconds)], timeout: 10)
    }

    /// Another process cannot take the lock while swvm holds it, and can
    /// after; swvm waits for another process's lock.
    @Test func theLockExcludesAnotherProcess() throws {
        let root = try ScratchRoot()
        var lock: ContainerLock? = try root.store.makeContainer("c1")
        let dir = root.store.directory("c1")
        #expect(try tryLock(dir).status == 7)
        #expect(ContainerLock.isHeld(dir) == false)   // a process's own lock is not "another's"
        withExtendedLifetime(lock) {}
        lock = nil
        #expect(try tryLock(dir).status == 0)
        let start = Clock.monotonicNanos()
        let other = Locked<Int32?>(nil)
        let test = self
        let t = try NativeThread { other.replace(try? test.tryLock(dir, hold: 0.6).status) }
        for _ in 0..<100 where !ContainerLock.isHeld(dir) { usleep(10_000) }
        #expect(ContainerLock.isHeld(dir))
        _ = try root.store.lock("c1")
        #expect(Clock.secondsSince(start) >= 0.5)
        t.join()
        #expect(other.current == 0)
    }

    /// A process forked while swvm holds the lock (the container's init,
    /// cloned by `swvm create`) does not hold it: once swvm lets go, or is
    /// gone, another swvm gets it although the child lives on.
    @Test func aChildDoesNotInheritTheLock() throws {
        let root = try ScratchRoot()
        var lock: ContainerLock? = try root.store.makeContainer("c1")
        let child = fork()
        if child == 0 { while true { pause() } }
        defer { kill(child, SIGKILL); _ = waitForExit(child) }
        withExtendedLifetime(lock) {}
        lock = nil
        // swvm pause takes the lock, then finds nothing to pause.
        let r = try Binary.run(["--root", root.path, "pause", "c1"], timeout: 5)
        #expect(!r.timedOut && r.err.contains("not running"), "\(r)")
    }

    @Test func aRemovedContainerCannotBeLocked() throws {
        let root = try ScratchRoot()
        let lock = try root.store.makeContainer("c1")
        try root.store.remove("c1", lock)
        #expect(throws: SwvmError.self) { _ = try root.store.lock("c1") }
    }
}

/// ExecFIFO.awaitExit reaps state.json's init only while its pid still
/// names that process: a child of ours that has the pid with another start
/// time (pid reuse) is left for its own waiter.
@Suite struct AwaitExitTests {
    /// A child that has exited and not been reaped (a zombie), and its start time.
    func zombie() throws -> ProcessIdentity {
        let pid = try Spawn.start("/bin/true", argv: ["true"])
        for _ in 0..<500 where ProcessStat.read(pid)?.state != "Z" { usleep(2000) }
        let stat = try #require(ProcessStat.read(pid))
        try #require(stat.state == "Z")
        return ProcessIdentity(pid: pid, startTime: stat.startTime)
    }

    @Test func anotherProcessWithThePidIsNotReaped() throws {
        let child = try zombie()
        ExecFIFO.awaitExit(ProcessIdentity(pid: child.pid, startTime: child.startTime + 1), seconds: 0.05)
        var status: Int32 = 0
        #expect(waitpid(child.pid, &status, WNOHANG) == child.pid, "the other process was reaped by awaitExit")
    }

    @Test func theSameProcessIsReaped() throws {
        let child = try zombie()
        ExecFIFO.awaitExit(child, seconds: 0.05)
        var status: Int32 = 0
        #expect(waitpid(child.pid, &status, WNOHANG) == -1 && errno == ECHILD, "awaitExit left its own child unreaped")
    }
}

#if canImport(Glibc)
import Glibc
#endif
import CVMMJail
import Testing
import TestSupport
@testable import SwvmBase
@testable import VMMJail

/// The keeper (swvm-vmm-keeper) on its own, without a VM: this process
/// plays the VMM, and a script plays the swvm it execs for the clean-up.
@Suite(.serialized)
struct VMMKeeperTests {
    /// Starts the keeper for this process, as VMMKeeper.spawn does, with
    /// `cleanUp` (a script writing its arguments to `out`) as its swvm.
    func startKeeper(_ dir: TempDir) throws -> (VMMKeeper, out: String) {
        let out = Path.join(dir.path, "clean-up-args"), script = Path.join(dir.path, "swvm")
        try FS.writeText(script, "#!/bin/sh\necho \"$@\" > \(out)\n")
        chmod(script, 0o755)
        let keeper = Path.join(Path.dirname(Harness.swvm), SWVM_KEEPER_EXECUTABLE)
        var pair: [Int32] = [-1, -1]
        #expect(socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0)
        let argv = [keeper, String(getpid()), "/run/swvm/runs/none", "/run/swvm/vmm-ids/none", script]
        defer { close(pair[1]) }
        let pid: pid_t
        do { pid = try Spawn.start(keeper, argv: argv, actions: [.dup(pair[1], to: SWVM_KEEPER_SOCKET_FD)]) } catch {
            throw SwvmError.errno("spawn \(keeper)", error.errno)
        }
        return (VMMKeeper(fd: pair[0], pid: pid), out)
    }

    /// An OCI or detached VMM's keeper is its child, in the VMM's pid
    /// namespace: the posture it reads must still name "pid" (the
    /// namespace is not the one /proc numbers the host's processes in).
    /// A `sleep` as PID 1 of a new pid namespace plays the VMM; the keeper
    /// is started in that namespace (nsenter).
    @Test func aKeeperInTheVMMsPidNamespaceStillReportsIt() throws {
        let dir = try TempDir("keeper-pidns")
        defer { dir.cleanup() }
        let script = Path.join(dir.path, "swvm")
        try FS.writeText(script, "#!/bin/sh\nexit 0\n")
        chmod(script, 0o755)
        let holder = try Spawn.start("/usr/bin/unshare", argv: ["unshare", "--pid", "--fork", "--kill-child", "sleep", "60"])
        defer { kill(holder, SIGKILL); _ = waitForExit(holder) }
        var vmm: pid_t?
        _ = DockerVerbsTests.eventually(5) {
            vmm = (try? FS.readText("/proc/\(holder)/task/\(holder)/children"))?.split(separator: " ").first.flatMap { pid_t($0) }
            return vmm != nil
        }
        let target = try #require(vmm, "the pid namespace's sleep")
        let keeper = Path.join(Path.dirname(Harness.swvm), SWVM_KEEPER_EXECUTABLE)
        var pair: [Int32] = [-1, -1]
        #expect(socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0)
        let argv = ["nsenter", "--target", String(target), "--pid", "--", keeper, String(target), "/run/swvm/runs/none",
                    "/run/swvm/vmm-ids/none", script]
        let pid = try Spawn.start("/usr/bin/nsenter", argv: argv, actions: [.dup(pair[1], to: SWVM_KEEPER_SOCKET_FD)])
        close(pair[1])
        let k = VMMKeeper(fd: pair[0], pid: pid)
        defer { k.finish() }
        let p = try #require(k.posture(), "no posture from the keeper")
        let ns = p.json["ownNamespaces"]?.array?.compactMap(\.string) ?? []
        #expect(ns.contains("pid"), "the VMM's own namespaces as its keeper read them: \(ns)")
    }

    func privateKiB(_ pid: pid_t) -> Int {
        let text = (try? FS.readText("/proc/\(pid)/smaps_rollup")) ?? ""
        return text.split(separator: "\n").filter { $0.hasPrefix("Private_Clean:") || $0.hasPrefix("Private_Dirty:") }
            .compactMap { $0.split(separator: " ").dropFirst().first.flatMap { Int($0) } }.reduce(0, +)
    }

    /// It reads the VMM's posture (the same records JailPosture parses),
    /// holds at most 1 MiB of its own while it waits, refuses what was not
    /// announced, and at the end execs swvm's clean-up with the run's ids.
    @Test func theKeeperServesTheVMMInLittleMemory() throws {
        let dir = try TempDir("keeper")
        defer { dir.cleanup() }
        let (keeper, out) = try startKeeper(dir)
        let p = try #require(keeper.posture(), "no posture from the keeper")
        #expect(p.json["threads"]?.array?.isEmpty == false, "\(p.summary)")
        #expect(p.keeperPeakRSS > 0 && p.keeperPeakRSS <= 1 << 20, "keeper peak RSS \(p.keeperPeakRSS)")
        let kib = privateKiB(keeper.pid)
        #expect(kib > 0 && kib <= 1024, "the keeper's private memory: \(kib) KiB (target: at most 1024)")
        #expect(throws: SwvmError.self) { try keeper.publishSnapshot(0) }
        #expect(throws: SwvmError.self) { try keeper.announceSnapshot(temporary: "tmp", final: "/x", lock: "/y") }
        keeper.finish()
        let args = (try? FS.readText(out)) ?? ""
        #expect(args == "vmm-keeper --vmm \(getpid()) --record /run/swvm/runs/none --lease /run/swvm/vmm-ids/none\n", "\(args)")
    }

    /// Publishing: exactly the two files move into place; anything else in
    /// the directory is refused and left to the clean-up to remove.
    @Test(arguments: [false, true])
    func theKeeperPublishesOnlyASnapshotsTwoFiles(extraFile: Bool) throws {
        let dir = try TempDir("keeper-publish")
        defer { dir.cleanup() }
        let (keeper, out) = try startKeeper(dir)
        let tmp = Path.join(dir.path, "tmp"), final = Path.join(dir.path, "final"), lock = Path.join(dir.path, "lock")
        try FS.makeDirectories(tmp)
        for name in ["memory", "state"] + (extraFile ? ["extra"] : []) { try FS.writeText(Path.join(tmp, name), name) }
        try FS.writeText(lock, "")
        let index = try keeper.announceSnapshot(temporary: tmp, final: final, lock: lock)
        #expect(index == 0)
        if extraFile {
            #expect(throws: SwvmError.self) { try keeper.publishSnapshot(index) }
        } else {
            try keeper.publishSnapshot(index)
        }
        #expect(FS.exists(Path.join(final, "state")) == !extraFile && !FS.exists(lock))
        keeper.finish()
        let args = (try? FS.readText(out)) ?? ""
        #expect(args.hasSuffix(extraFile ? " --discard \(tmp)\n" : "/run/swvm/vmm-ids/none\n"), "\(args)")
    }
}

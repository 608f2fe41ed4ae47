#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import SwvmBase
import NativeThreads

/// A compromised guest against swvm's end of the control channel: a
/// hostile guest-init (Tests/Fixtures/hostile-init) takes its settings,
/// then breaks the protocol. Each run ends with a clear error (exit 125),
/// writes no snapshot once the settings went out, and the VMM's memory
/// stays bounded.
@Suite(.serialized, .enabled(if: Harness.vmReady, "needs /dev/kvm, the guest kernel and guest-init"))
struct HostileGuestTests {
    /// The hostile init, built as guest-init is: static, with the shared
    /// frame format and settings decoder (Sources/CConfinement).
    static let initPath: String = {
        let dir = Path.join(Harness.repo, ".build/test-fixtures/hostile-init")
        try? FS.makeDirectories(dir)
        let out = Path.join(dir, "init")
        let shared = Path.join(Harness.repo, "Sources/CConfinement")
        let cc = FS.exists("/usr/bin/musl-gcc") ? "musl-gcc" : "gcc"
        let r = try? Subprocess.run([cc, "-static", "-Os", "-I", Path.join(shared, "include"), "-o", out,
                                     Path.join(Harness.repo, "Tests/Fixtures/hostile-init/init.c"),
                                     Path.join(shared, "run_settings.c"), Path.join(shared, "exec_wire.c")])
        if r?.status != 0 { Issue.record("compiling the hostile init: \(r?.output ?? "\(cc) missing")") }
        return out
    }()

    /// The VMM's peak resident memory may not pass this: the guest RAM it
    /// backs (128 MiB at most here; a run was seen at 40 MiB) and swvm
    /// itself, with room to spare.
    /// Before the bounds, the READY flood queued the settings 100,000
    /// times (hundreds of megabytes).
    static let peakMemoryKiB = 200 << 10

    /// A cache of the test's own, so that the snapshots it finds are this
    /// run's; it shares the guest kernel.
    static func privateCache() throws -> String {
        let dir = Path.join(Harness.repo, ".build/test-fixtures/hostile-cache-\(randomHex(4))")
        try FS.makeDirectories(dir)
        symlink(Path.join(SwvmPaths.cacheRoot, "kernel"), Path.join(dir, "kernel"))
        return dir
    }

    /// A run ends at the violation: well before the init's own 120 s wait
    /// is over (a cold boot here takes 10-20 s).
    static let secondsBound = 90.0

    static func run(_ mode: String, cache: String, coldBoot: Bool) throws -> CommandResult {
        try Command.run([Harness.swvm, "run", "--isolation=vm"] + (coldBoot ? ["--cold-boot"] : [])
                            + [Harness.exampleImage, "--", mode],
                        timeout: 300, environment: ["SWVM_CACHE": cache, "SWVM_GUEST_INIT": initPath, "SWVM_DEBUG": "1"])
    }

    /// The snapshots in `cache` (not the locks or temporaries of a writer).
    static func snapshots(_ cache: String) -> [String] {
        let names = (try? FS.listDirectory(Path.join(cache, "snapshots"))) ?? []
        return names.filter { !$0.hasPrefix(".") && !$0.hasSuffix(".lock") }
    }

    /// The first READY saves the snapshot (the VM before any setting of the
    /// run), which the test removes at once, as `swvm cache rm` would. The
    /// guest then says READY again with the run's settings in hand: that
    /// used to save the VM once more, for every later run to restore.
    @Test func aSecondReadyEndsTheRunAndSavesNoSnapshot() throws {
        let cache = try HostileGuestTests.privateCache()
        defer { try? FS.removeTree(cache) }
        let result = Locked<CommandResult?>(nil)
        let runner = try NativeThread {
            let r = try? HostileGuestTests.run("ready-twice", cache: cache, coldBoot: false)
            result.with { $0 = r }
        }
        var removed: [String] = []
        while result.current == nil {
            for name in HostileGuestTests.snapshots(cache) {
                try? FS.removeTree(Path.join(cache, "snapshots/\(name)"))
                removed.append(name)
            }
            usleep(20_000)
        }
        runner.join()
        let r = try #require(result.current)
        // The loop removes every snapshot it sees: a second is one saved
        // after the settings went out.
        #expect(removed.count == 1, "\(removed.count) snapshots saved, not the first READY's alone: \(r)")
        #expect(r.status == 125 && r.seconds < HostileGuestTests.secondsBound, "\(r.seconds) s: \(r)")
        #expect(r.err.contains("swvm: the guest broke swvm's control protocol: READY sent twice"), "\(r.err)")
        #expect(HostileGuestTests.snapshots(cache).isEmpty, "a snapshot was saved after the settings went out")
        #expect(r.maxRSSKiB < HostileGuestTests.peakMemoryKiB, "peak RSS \(r.maxRSSKiB) KiB")
    }

    /// A flood on the control port ends the run at its first bad frame,
    /// within bounded memory.
    @Test(arguments: [("ready-flood", "READY sent twice"), ("tiny-frames", "CONFINED sent twice")])
    func aFloodEndsTheRunInBoundedMemory(_ mode: String, _ violation: String) throws {
        let cache = try HostileGuestTests.privateCache()
        defer { try? FS.removeTree(cache) }
        let r = try HostileGuestTests.run(mode, cache: cache, coldBoot: true)
        #expect(r.status == 125 && r.seconds < HostileGuestTests.secondsBound, "\(r.seconds) s: \(r)")
        #expect(r.err.contains("swvm: the guest broke swvm's control protocol: \(violation)"), "\(r.err)")
        #expect(r.maxRSSKiB < HostileGuestTests.peakMemoryKiB, "peak RSS \(r.maxRSSKiB) KiB")
        #expect(HostileGuestTests.snapshots(cache).isEmpty)
    }
}

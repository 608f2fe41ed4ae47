#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import SwvmBase
import NativeThreads

/// Warm starts: a VM restored from the cached snapshot behaves as a booted
/// one, restored VMs share no secrets, and a damaged snapshot is rebuilt,
/// never restored.
@Suite(.serialized, .enabled(if: Harness.vmReady, "needs /dev/kvm, the guest kernel and guest-init"))
struct WarmStartTests {
    /// A VM run with SWVM_DEBUG=1, so swvm names the snapshot it used;
    /// without image templates (TemplateTests), which would take the place
    /// of the boot snapshot from the second run on.
    static func debugRun(_ options: [String], _ command: [String]) throws -> CommandResult {
        try Command.run([Harness.swvm, "run", "--isolation=vm", "--no-template"] + options + [Harness.exampleImage, "--"] + command,
                        timeout: 600, environment: ["SWVM_DEBUG": "1"])
    }

    /// The snapshot directory a debug run restored from or saved.
    static func snapshotDirectory(_ r: CommandResult) -> String? {
        for line in r.err.split(separator: "\n") {
            for marker in ["restored from snapshot: ", "snapshot saved: "] {
                if let range = line.range(of: marker) { return String(line[range.upperBound...]) }
            }
        }
        return nil
    }

    static func warmRun(_ command: [String]) throws -> (CommandResult, String) {
        // The first run on a machine (or after swvm changes) saves the snapshot.
        _ = try debugRun([], ["true"])
        let r = try debugRun([], command)
        let dir = snapshotDirectory(r)
        #expect(r.err.contains("restored from snapshot: "), "not a warm start: \(r)")
        return (r, dir ?? "")
    }

    @Test func restoredVMsShareNoSecrets() throws {
        let script = "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo; cat /proc/sys/kernel/random/boot_id; hostname; date +%s"
        let before = time(nil)
        let (a, dirA) = try WarmStartTests.warmRun(["sh", "-c", script])
        let b = try WarmStartTests.debugRun([], ["sh", "-c", script])   // the snapshot is there now
        let after = time(nil)
        #expect(a.status == 0 && b.status == 0, "\(a)\n\(b)")
        #expect(b.err.contains("restored from snapshot: ") && WarmStartTests.snapshotDirectory(b) == dirA, "both runs restore the same snapshot")
        let la = a.out.split(separator: "\n").map(String.init), lb = b.out.split(separator: "\n").map(String.init)
        #expect(la.count == 4 && lb.count == 4, "\(a.out) \(b.out)")
        guard la.count == 4, lb.count == 4 else { return }
        #expect(la[0].count == 64 && la[0] != lb[0], "urandom: \(la[0]) vs \(lb[0])")
        #expect(la[1] != lb[1], "boot_id: \(la[1]) vs \(lb[1])")
        #expect(la[2] != lb[2], "hostname: \(la[2]) vs \(lb[2])")
        for line in [la[3], lb[3]] {
            let t = Int(line) ?? 0
            #expect(t >= before - 1 && t <= after + 1, "guest clock \(t) outside host's [\(before), \(after)]")
        }
    }

    @Test func coldBootReadsAndWritesNoSnapshot() throws {
        let r = try WarmStartTests.debugRun(["--cold-boot"], ["echo", "cold"])
        #expect(r.status == 0, "\(r)")
        #expect(r.out == "cold\n")
        #expect(WarmStartTests.snapshotDirectory(r) == nil, "\(r.err)")
    }

    /// Each kind of damage is detected; the run boots cold instead, still
    /// succeeds, and saves a good snapshot that the next run restores.
    /// (SnapshotFileTests covers truncation and every other damage at the
    /// file level, without a VM.)
    @Test(arguments: ["flip a state byte", "overwrite memory"])
    func aDamagedSnapshotIsRebuilt(_ damage: String) throws {
        let (_, dir) = try WarmStartTests.warmRun(["true"])
        guard !dir.isEmpty else { return }
        let state = Path.join(dir, "state"), memory = Path.join(dir, "memory")
        switch damage {
        case "flip a state byte":
            var bytes = try FS.readFile(state)
            bytes[bytes.count - 100] ^= 0xff
            try FS.writeFile(state, bytes, mode: 0o600)
        default:
            // Same size; the page that holds the kernel's text.
            let fd = open(memory, O_WRONLY)
            var junk = [UInt8](repeating: 0xcc, count: 4096)
            #expect(pwrite(fd, &junk, junk.count, 0x100_0000) == junk.count)
            close(fd)
        }
        let r = try WarmStartTests.debugRun([], ["echo", "rebuilt"])
        #expect(r.status == 0, "\(r)")
        #expect(r.out == "rebuilt\n")
        #expect(!r.err.contains("restored from snapshot"), "a damaged snapshot was restored: \(r.err)")
        #expect(r.err.contains("snapshot \(dir)"), "the damage was not reported: \(r.err)")
        #expect(r.err.contains("snapshot saved: \(dir)"), "not rebuilt: \(r.err)")
        let again = try WarmStartTests.debugRun([], ["echo", "warm"])
        #expect(again.out == "warm\n" && again.err.contains("restored from snapshot: \(dir)"), "\(again)")
    }

    /// Two runs that find no snapshot at once: one writes it, the other
    /// boots without writing, both succeed, and the snapshot is whole.
    @Test func concurrentColdRunsWriteOneSnapshot() throws {
        let (_, dir) = try WarmStartTests.warmRun(["true"])
        guard !dir.isEmpty else { return }
        try FS.removeTree(dir)
        let results = Locked<[CommandResult]>([])
        let threads = try (0..<2).map { i in
            try NativeThread {
                if let r = try? WarmStartTests.debugRun([], ["echo", "run\(i)"]) { results.with { $0.append(r) } }
            }
        }
        for t in threads { t.join() }
        let rs = results.current
        #expect(rs.count == 2)
        #expect(rs.allSatisfy { $0.status == 0 }, "\(rs)")
        #expect(rs.filter { $0.err.contains("snapshot saved: \(dir)") }.count == 1, "\(rs.map(\.err))")
        let next = try WarmStartTests.debugRun([], ["echo", "warm"])
        #expect(next.out == "warm\n" && next.err.contains("restored from snapshot: \(dir)"), "\(next)")
    }
}

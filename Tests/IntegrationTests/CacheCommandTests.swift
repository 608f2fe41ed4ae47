#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import SwvmBase
import NativeThreads

/// `swvm cache ls/rm/prune` over a cache of its own (SWVM_ROOT, SWVM_CACHE).
@Suite(.serialized) struct CacheCommandTests {
    struct Env {
        let t: TempDir
        var vars: [String: String] { ["SWVM_ROOT": t.path + "/state", "SWVM_CACHE": t.path + "/cache"] }
        func swvm(_ args: [String], timeout: Double = 60) throws -> CommandResult {
            try Command.run([Harness.swvm] + args, timeout: timeout, environment: vars)
        }
        /// KIND/KEY of each listed item.
        func items() throws -> [String] {
            let r = try swvm(["cache", "ls"])
            #expect(r.status == 0, "\(r)")
            return r.out.split(separator: "\n").dropFirst().map { line in
                let f = line.split(separator: " ", omittingEmptySubsequences: true)
                return "\(f[0])/\(f[1])"
            }
        }
    }

    @Test func listsRemovesAndPrunes() throws {
        let env = Env(t: try TempDir("cache"))
        defer { env.t.cleanup() }
        let run = try env.swvm(["run", Harness.exampleImage, "--", "true"])
        #expect(run.status == 0, "\(run)")
        // Kinds swvm made (an image, a seccomp filter) and two placed here:
        // a snapshot directory (the lead's VM path makes them) and a disk file.
        try FS.makeDirectories(env.t.path + "/cache/snapshots/snap1")
        try FS.writeText(env.t.path + "/cache/snapshots/snap1/memory", String(repeating: "m", count: 10000))
        try FS.makeDirectories(env.t.path + "/state/disks")
        try FS.writeText(env.t.path + "/state/disks/abc-v1.ext4", "disk")
        let listed = try env.items()
        #expect(listed.count == 4, "\(listed)")
        #expect(listed.contains { $0.hasPrefix("image/") } && listed.contains { $0.hasPrefix("seccomp/") })
        #expect(listed.contains("snapshot/snap1") && listed.contains("disk/abc-v1"))
        let ls = try env.swvm(["cache", "ls"])
        #expect(ls.out.hasPrefix("KIND") && ls.out.contains("LAST USE") && ls.out.contains("just now"), "\(ls)")

        // rm by KIND/KEY, then by a unique start of a key.
        let rm = try env.swvm(["cache", "rm", "snapshot/snap1"])
        #expect(rm.status == 0 && rm.out.contains("removed snapshot/snap1"), "\(rm)")
        #expect(!FS.exists(env.t.path + "/cache/snapshots/snap1"))
        #expect(try env.swvm(["cache", "rm", "abc"]).status == 0)
        #expect(!FS.exists(env.t.path + "/state/disks/abc-v1.ext4"))
        let missing = try env.swvm(["cache", "rm", "nope"])
        #expect(missing.status == 125 && missing.err.contains("no cache item 'nope'"), "\(missing)")

        // --older-than: only the item last used long ago goes.
        let image = try #require(listed.first { $0.hasPrefix("image/") })
        let imageDir = env.t.path + "/state/images/" + image.dropFirst("image/".count)
        var old = [timespec(tv_sec: time(nil) - 3 * 86400, tv_nsec: 0), timespec(tv_sec: time(nil) - 3 * 86400, tv_nsec: 0)]
        utimensat(AT_FDCWD, imageDir, &old, 0)
        let pruned = try env.swvm(["cache", "prune", "--older-than", "2d"])
        #expect(pruned.status == 0 && pruned.out.contains("removed \(image)"), "\(pruned)")
        #expect(!FS.exists(imageDir))
        #expect(try env.items().count == 1)   // the seccomp filter, used just now
        #expect(try env.swvm(["cache", "prune", "--all"]).status == 0)
        #expect(try env.items().isEmpty)

        let bad = try env.swvm(["cache", "prune"])
        #expect(bad.status == 125 && bad.err.contains("--all or --older-than"), "\(bad)")
        let badAge = try env.swvm(["cache", "prune", "--older-than", "soon"])
        #expect(badAge.status == 125 && badAge.err.contains("--older-than"), "\(badAge)")
    }

    /// Builds of the guest kernel (and guest-init, probe): old ones are
    /// listed and go; the one `current` names stays.
    @Test func buildsKeepTheCurrentOne() throws {
        let env = Env(t: try TempDir("cache-builds"))
        defer { env.t.cleanup() }
        let dir = env.t.path + "/cache/kernel"
        for key in ["0ld0ld0ld0ld0ld0", "c0ffeec0ffeec0ff"] {
            try FS.makeDirectories(dir + "/" + key)
            try FS.writeText(dir + "/" + key + "/vmlinux", String(repeating: "k", count: 5000))
        }
        #expect(symlink("c0ffeec0ffeec0ff", dir + "/current") == 0)
        #expect(Set(try env.items()) == ["kernel/0ld0ld0ld0ld0ld0", "kernel/c0ffeec0ffeec0ff"])
        let ls = try env.swvm(["cache", "ls"])
        #expect(ls.out.split(separator: "\n").contains { $0.hasPrefix("kernel") && $0.contains("c0ffee") && $0.hasSuffix("current build") }, "\(ls)")
        let rm = try env.swvm(["cache", "rm", "kernel/c0ffeec0ffeec0ff"])
        #expect(rm.status == 125 && rm.err.contains("kernel/c0ffeec0ffeec0ff is the current build"), "\(rm)")
        let pruned = try env.swvm(["cache", "prune", "--all"])
        #expect(pruned.status == 0 && pruned.out.contains("removed kernel/0ld0ld0ld0ld0ld0"), "\(pruned)")
        #expect(!FS.exists(dir + "/0ld0ld0ld0ld0ld0") && FS.exists(dir + "/current/vmlinux"))
        #expect(try env.items() == ["kernel/c0ffeec0ffeec0ff"])
    }

    /// A running swvm holds its image: rm refuses it, prune leaves it.
    @Test func anItemInUseIsNeverRemoved() throws {
        let env = Env(t: try TempDir("cache-busy"))
        defer { env.t.cleanup() }
        let started = Locked(false)
        let runner = Locked<CommandResult?>(nil)
        let vars = env.vars
        let thread = try NativeThread {
            let r = try? Command.run([Harness.swvm, "run", Harness.exampleImage, "--", "sh", "-c", "echo up; sleep 4"],
                                     timeout: 60, environment: vars, onOutput: { out, _ in if out.contains("up") { started.with { $0 = true } } })
            runner.with { $0 = r }
        }
        for _ in 0..<400 where !started.current { usleep(50_000) }
        try #require(started.current)
        let image = try #require(try env.items().first { $0.hasPrefix("image/") })
        let rm = try env.swvm(["cache", "rm", image])
        #expect(rm.status == 125 && rm.err.contains("in use"), "\(rm)")
        let prune = try env.swvm(["cache", "prune", "--all"])
        #expect(prune.status == 0 && prune.out.contains("in use left alone"), "\(prune)")
        #expect(try env.items().contains(image))
        thread.join()
        #expect(runner.current?.status == 0, "\(String(describing: runner.current))")
        // Free once the run is over.
        #expect(try env.swvm(["cache", "rm", image]).status == 0)
        #expect(!(try env.items().contains(image)))
    }
}

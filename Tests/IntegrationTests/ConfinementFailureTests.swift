#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import SwvmBase

/// Each confinement step of the container child (confine.c) fails closed:
/// when one cannot be done the start ends with 125 and one line naming the
/// step and its path, and the command never runs.
@Suite(.serialized) struct ConfinementFailureTests {
    static let ran = "the-command-ran"

    /// A root of busybox with a regular file at /blocked, where a mount
    /// point or a working directory would have to be, built once under .build.
    static let image: String = {
        let dir = Path.join(Harness.repo, ".build/test-fixtures/confine-failure-image")
        try? FS.removeTree(dir)
        for d in ["bin", "proc", "sys", "dev", "tmp", "etc"] { try? FS.makeDirectories(Path.join(dir, d)) }
        let r = try? Subprocess.run(["cp", "/bin/busybox", Path.join(dir, "bin/busybox")])
        if r?.status != 0 { Issue.record("copying /bin/busybox: \(r?.output ?? "cp failed")") }
        for applet in ["sh", "echo"] { symlink("busybox", Path.join(dir, "bin", applet)) }
        do { try FS.writeText(Path.join(dir, "blocked"), "a file, not a directory\n") } catch { Issue.record("\(error)") }
        return dir
    }()

    func expectFailedStep(_ r: CommandResult, status: Int32 = 125, _ step: String,
                          sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(!r.timedOut && r.status == status, "\(r)", sourceLocation: sourceLocation)
        #expect(r.err.hasPrefix("swvm: ") && r.err.contains(step), "expected '\(step)': \(r)", sourceLocation: sourceLocation)
        #expect(r.err.split(separator: "\n").count == 1, "\(r)", sourceLocation: sourceLocation)
        #expect(!r.out.contains(Self.ran) && !r.err.contains(Self.ran), "the command ran: \(r)", sourceLocation: sourceLocation)
    }

    func run(_ options: [String], image: String = ConfinementFailureTests.image) throws -> CommandResult {
        try Harness.run(options, ["echo", Self.ran], image: image)
    }

    /// The fixture itself runs: each failure below is the step's, not the image's.
    @Test func theImageRuns() throws {
        let r = try run([])
        #expect(r.status == 0 && r.out == "\(Self.ran)\n", "\(r)")
    }

    @Test func aTmpfsOnAFile() throws {
        expectFailedStep(try run(["--tmpfs", "/blocked"]), "mount tmpfs on /blocked")
    }

    @Test func aTmpfsUnderAFile() throws {
        expectFailedStep(try run(["--tmpfs", "/blocked/below"]), "mount tmpfs on /blocked/below")
    }

    @Test func aVolumeOnAFile() throws {
        let t = try TempDir("confine-volume")
        defer { t.cleanup() }
        expectFailedStep(try run(["-v", "\(t.path):/blocked"]), "mount volume on /blocked")
    }

    @Test func aWorkingDirectoryThatIsAFile() throws {
        let r = try run(["-w", "/blocked"])
        // Made before the root is read-only (125), or entered last (126).
        expectFailedStep(r, status: r.status == 126 ? 126 : 125, "working directory")
        #expect(r.err.contains("/blocked"), "\(r)")
    }

    /// nofile above fs.nr_open: no process may have it, with or without
    /// CAP_SYS_RESOURCE (which these hosts lack anyway).
    @Test func anUlimitTheKernelRefuses() throws {
        let nrOpen = try #require(Int(try FS.readText("/proc/sys/fs/nr_open").split(separator: "\n").first ?? ""))
        let limit = nrOpen + 1
        expectFailedStep(try run(["--ulimit", "nofile=\(limit):\(limit)"]), "--ulimit nofile=\(limit):\(limit)")
    }

    /// Longer than the kernel's 64 bytes: refused before anything starts,
    /// never shortened.
    @Test func aHostnameTooLong() throws {
        let name = String(repeating: "h", count: 65)
        expectFailedStep(try run(["--hostname", name]), "hostname")
    }

    /// A bundle's masked path under a regular file cannot be masked: the
    /// start ends, it is not skipped as a missing path would be.
    @Test(.enabled(if: FS.exists("/usr/bin/crun"), "needs crun for `crun spec`"))
    func aMaskedPathThatCannotBeMasked() throws {
        let t = try TempDir("confine-mask")
        defer { t.cleanup() }
        #expect(try Subprocess.run(["cp", "-a", Self.image, t.path + "/rootfs"]).status == 0)
        #expect(try Subprocess.run(["sh", "-c", "cd \(t.path) && crun spec"]).status == 0)
        // The first masked path of `crun spec`'s list becomes /blocked/x.
        let sed = try Subprocess.run(["sed", "-i", "0,/\"maskedPaths\": \\[/s//\"maskedPaths\": [\"\\/blocked\\/x\",/", t.path + "/config.json"])
        let config = try FS.readText(t.path + "/config.json")
        #expect(sed.status == 0 && config.contains("\"/blocked/x\""), "\(sed.output)")
        expectFailedStep(try run([], image: t.path), "mask /blocked/x")
    }
}

#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import SwvmBase

/// Images from other tools, hostile images through the CLI, and what a
/// killed swvm leaves behind.
@Suite(.serialized) struct ImageAndCleanupTests {
    @Test func runsAnImageMadeByUmoci() throws {
        guard FS.exists("/usr/bin/umoci") else {
            Issue.record("umoci is not installed (scripts/setup.sh installs it)")
            return
        }
        let t = try TempDir("umoci")
        defer { t.cleanup() }
        // A root filesystem to add: busybox and an extra file.
        try FS.makeDirectories(t.path + "/content/bin")
        try FS.makeDirectories(t.path + "/content/etc")
        _ = try Subprocess.run(["cp", "/bin/busybox", t.path + "/content/bin/busybox"])
        try sys("symlink") { symlink("busybox", t.path + "/content/bin/sh") }
        try FS.writeText(t.path + "/content/etc/greeting", "made by umoci\n")
        let layout = t.path + "/img"
        for args in [["init", "--layout", layout], ["new", "--image", layout + ":v1"],
                     ["insert", "--image", layout + ":v1", t.path + "/content", "/"],
                     ["config", "--image", layout + ":v1", "--config.cmd", "/bin/sh", "--config.cmd", "-c",
                      "--config.cmd", "cat /etc/greeting; echo $MSG", "--config.env", "MSG=from-config"]] {
            let r = try Subprocess.run(["umoci"] + args)
            #expect(r.status == 0, "umoci \(args): \(r.output)")
        }
        let r = try Harness.run([], [], image: layout)
        #expect(r.status == 0, "\(r)")
        #expect(r.out == "made by umoci\nfrom-config\n")
        let byRef = try Command.run([Harness.swvm, "run", "--ref", "v1", layout, "--", "sh", "-c", "echo ok"])
        #expect(byRef.out == "ok\n")
        let badRef = try Command.run([Harness.swvm, "run", "--ref", "v2", layout, "--", "echo", "ok"])
        #expect(badRef.status == 125)
        #expect(badRef.err.contains("no manifest with ref 'v2'"))
    }

    @Test func hostileLayersAreRefusedByRun() throws {
        let t = try TempDir("hostile")
        defer { t.cleanup() }
        var base = TarWriter()
        base.file("bin/ok", "x")
        base.symlink("evil", to: "/tmp")
        var attack = TarWriter()
        attack.file("evil/swvm-hostile-marker", "pwned")
        var b = ImageBuilder()
        b.layers = [base.finish(), attack.finish()]
        b.cmd = ["/bin/ok"]
        b.gzip = true
        try b.write(to: t.path + "/img")
        let r = try Harness.run(["true"], image: t.path + "/img")
        #expect(r.status == 125)
        #expect(r.err.contains("layer 2"), "\(r)")
        #expect(r.err.contains("evil/swvm-hostile-marker"))
        #expect(r.err.split(separator: "\n").count == 1)
        #expect(!FS.exists("/tmp/swvm-hostile-marker"))

        var dotdot = TarWriter()
        dotdot.file("../../../../tmp/swvm-hostile-marker2", "pwned")
        var b2 = ImageBuilder()
        b2.layers = [dotdot.finish()]
        try b2.write(to: t.path + "/img2")
        let r2 = try Harness.run(["true"], image: t.path + "/img2")
        #expect(r2.status == 125 && r2.err.contains("layer 1"), "\(r2)")
        #expect(!FS.exists("/tmp/swvm-hostile-marker2"))
    }

    @Test func corruptBlobIsADigestError() throws {
        let t = try TempDir("corrupt")
        defer { t.cleanup() }
        var l = TarWriter()
        l.file("bin/x", "content")
        var b = ImageBuilder()
        b.layers = [l.finish()]
        b.cmd = ["/bin/x"]
        let manifest = try b.write(to: t.path + "/img")
        _ = manifest
        for name in try FS.listDirectory(t.path + "/img/blobs/sha256") {
            let p = t.path + "/img/blobs/sha256/" + name
            var bytes = try FS.readFile(p)
            if bytes.count > 1000 { bytes[600] ^= 0x40; try FS.writeFile(p, bytes) }
        }
        let r = try Harness.run(["true"], image: t.path + "/img")
        #expect(r.status == 125)
        #expect(r.err.contains("does not match its digest"), "\(r)")
        let broken = try TempDir("broken")
        defer { broken.cleanup() }
        try FS.writeText(broken.path + "/oci-layout", #"{"imageLayoutVersion":"1.0.0"}"#)
        try FS.writeText(broken.path + "/index.json", "{not json")
        let r2 = try Harness.run(["true"], image: broken.path)
        #expect(r2.status == 125)
        #expect(r2.err.contains("index.json: invalid JSON"), "\(r2)")
    }

    /// No cgroup, run record, mount or process survives `swvm` being
    /// SIGKILLed: the container dies with it, the next swvm cleans up.
    @Test func nothingSurvivesSIGKILL() throws {
        var swvmPID: pid_t = 0
        var marker = ""
        // Only this run's record, cgroups and mounts are checked (taken
        // while it runs: another swvm on the machine may clean them up as
        // soon as it is killed).
        var mine: [RunLeftovers.Record] = []
        let r = try Command.run([Harness.swvm, "run", "--memory", "64m", Harness.exampleImage, "--", "sh", "-c", "echo started; sleep 60"],
                                timeout: 60, onOutput: { out, pid in
                                    if swvmPID == 0 && out.contains("started") {
                                        swvmPID = pid
                                        marker = Signaller.children(of: pid).map(String.init).joined(separator: ",")
                                        mine = RunLeftovers.records(ownedBy: pid)
                                        kill(pid, SIGKILL)
                                    }
                                })
        #expect(r.status == 137)
        let containerPID = pid_t(marker) ?? 0
        #expect(containerPID > 0)
        // The container's init got SIGKILL from the parent-death signal.
        var gone = false
        for _ in 0..<100 {
            if kill(containerPID, 0) != 0 && errno == ESRCH { gone = true; break }
            usleep(20_000)
        }
        #expect(gone, "the container outlived swvm")
        #expect(mine.count == 1 && !mine.flatMap(\.cgroups).isEmpty, "the run's record and cgroups, while it ran")
        // The next run cleans up what the killed one left.
        #expect(try Harness.run(["true"]).status == 0)
        RunLeftovers.expectGone(mine)
    }

    @Test(.enabled(if: Harness.vmReady)) func aKilledVMLeavesNothing() throws {
        var killed = false
        var mine: [RunLeftovers.Record] = []
        let r = try Command.run([Harness.swvm, "run", "--isolation=vm", "--cpus", "0.5", Harness.exampleImage, "--", "sh", "-c", "echo up; sleep 60"],
                                timeout: 600, onOutput: { out, pid in
                                    if !killed && out.contains("up") {
                                        killed = true
                                        mine = RunLeftovers.records(ownedBy: pid)
                                        kill(pid, SIGKILL)
                                    }
                                })
        #expect(killed && r.status == 137, "\(r)")
        // The VM was swvm's own threads: nothing else to kill. The CPU-quota
        // cgroup and the run record go with the next run.
        #expect(mine.count == 1 && !mine.flatMap(\.cgroups).isEmpty, "the run's record and CPU cgroup, while it ran")
        #expect(try Harness.run(["true"]).status == 0)
        RunLeftovers.expectGone(mine)
    }
}

/// What a run left on the host: its record (found by the pid of the swvm
/// that wrote it) and the cgroups it lists.
enum RunLeftovers {
    struct Record { let dir: String; let cgroups: [String] }

    static func records(ownedBy pid: pid_t) -> [Record] {
        let root = Path.join(SwvmPaths.runRoot, "runs")
        return ((try? FS.listDirectory(root)) ?? []).compactMap { name in
            let dir = Path.join(root, name)
            guard let owner = try? FS.readText(Path.join(dir, "owner")),
                  owner.split(separator: " ").first.map(String.init) == String(pid) else { return nil }
            let cgroups = ((try? FS.readText(Path.join(dir, "cgroups"))) ?? "").split(separator: "\n").map(String.init)
            return Record(dir: dir, cgroups: cgroups)
        }
    }

    static func expectGone(_ records: [Record]) {
        let mounts = (try? FS.readText("/proc/self/mountinfo")) ?? ""
        for r in records {
            #expect(!FS.exists(r.dir), "run record \(r.dir) left behind")
            for c in r.cgroups { #expect(!FS.exists(c), "cgroup \(c) left behind") }
            #expect(!mounts.contains(r.dir), "a mount of \(r.dir) is visible on the host")
        }
    }
}

/// An OCI runtime bundle as `crun spec` writes it: its process settings
/// (capabilities, rlimits, hostname) apply, the command line overrides args.
@Suite struct BundleTests {
    @Test func crunSpecBundle() throws {
        guard FS.exists("/usr/bin/crun") else {
            Issue.record("crun is not installed (scripts/setup.sh installs it)")
            return
        }
        let t = try TempDir("bundle")
        defer { t.cleanup() }
        #expect(try Subprocess.run(["sh", "-c", "cd \(t.path) && crun spec"]).status == 0)
        let image = try FS.realPath(Harness.exampleImage)
        let warm = try Harness.run(["true"])   // unpack the example image into the cache
        #expect(warm.status == 0)
        let index = try JSON.parse(try FS.readFile(image + "/index.json"))
        let digest = try #require(index["manifests"]?[0]?["digest"]?.string?.split(separator: ":").last)
        let r = try Subprocess.run(["cp", "-a", Path.join(SwvmPaths.imagesDir, String(digest), "rootfs"), t.path + "/rootfs"])
        #expect(r.status == 0)
        let run = try Harness.run(["sh", "-c", "grep CapEff /proc/self/status; ulimit -n; hostname"], image: t.path)
        #expect(run.status == 0, "\(run)")
        // crun spec grants AUDIT_WRITE, KILL and NET_BIND_SERVICE only, nofile 1024, hostname "crun".
        #expect(run.out == "CapEff:\t0000000020000420\n1024\ncrun\n")
    }
}

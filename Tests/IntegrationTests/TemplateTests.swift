#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import SwvmBase
import NativeThreads

/// Image templates (issue 22): a run restores the template its fixed
/// settings made and gets its own command, environment, host name and
/// working directory; other fixed settings make another template; runs
/// restored from one template share no secret; a damaged template is
/// reported, removed and rebuilt, never restored; --no-template and
/// --cold-boot use none.
@Suite(.serialized, .enabled(if: Harness.vmReady, "needs /dev/kvm, the guest kernel and guest-init"))
struct TemplateTests {
    static func debugRun(_ options: [String], _ command: [String]) throws -> CommandResult {
        try Command.run([Harness.swvm, "run", "--isolation=vm"] + options + [Harness.exampleImage, "--"] + command,
                        timeout: 600, environment: ["SWVM_DEBUG": "1"])
    }

    /// The template directory a debug run restored from or saved.
    static func templateDirectory(_ r: CommandResult) -> String? {
        for line in r.err.split(separator: "\n") {
            for marker in ["restored from template: ", "template saved: "] {
                if let range = line.range(of: marker) { return String(line[range.upperBound...]) }
            }
        }
        return nil
    }

    static func restored(_ r: CommandResult) -> Bool { r.err.contains("restored from template: ") }

    /// A run restored from the template of `options` (the first run makes it).
    static func templateRun(_ options: [String], _ command: [String]) throws -> (CommandResult, String) {
        _ = try debugRun(options, ["true"])
        let r = try debugRun(options, command)
        #expect(restored(r), "not restored from a template: \(r)")
        return (r, templateDirectory(r) ?? "")
    }

    @Test func aSecondRunRestoresTheTemplateWithItsOwnSettings() throws {
        let dir = Path.join(FS.executableDirectory(), "template-\(getpid())")
        try FS.makeDirectories(dir)
        defer { try? FS.removeTree(dir) }
        _ = try TemplateTests.debugRun([], ["true"])
        let report = Path.join(dir, "report.json")
        let script = "echo \"$A $(hostname) $PWD $0\""
        let r = try Command.run(["/bin/sh", "-c", "exec \"$0\" run --isolation=vm --report-fd 3 -e A=one --hostname h-one -w /tmp/new \"$1\" -- sh -c \"$2\" arg0 3>\"$3\"",
                                 Harness.swvm, Harness.exampleImage, script, report], timeout: 600, environment: ["SWVM_DEBUG": "1"])
        #expect(r.status == 0, "\(r)")
        #expect(r.out == "one h-one /tmp/new arg0\n", "\(r)")
        #expect(TemplateTests.restored(r), "\(r.err)")
        let json = try JSON.parse(FS.readText(report))
        #expect(json["vmStart"]?.string == "template", "\(json.serialized())")
        // The masked paths still reach the posture report (guest-init kept them from the template point).
        #expect((json["posture"]?["maskedPaths"]?.array ?? []).contains(.string("/proc/timer_list")), "\(json.serialized())")
        let other = try TemplateTests.debugRun(["-e", "A=two", "--hostname", "h-two", "-w", "/"], ["sh", "-c", script, "x"])
        #expect(other.out == "two h-two / x\n" && TemplateTests.restored(other), "\(other)")
    }

    /// A run with `--report-fd`: (the result, the report).
    static func reportedRun(_ options: [String], _ command: [String]) throws -> (CommandResult, JSON) {
        let report = "/tmp/swvm-template-report-\(getpid()).json"
        defer { unlink(report) }
        let r = try Command.run(["/bin/sh", "-c", "exec \"$0\" \"$@\" 3>\"$REPORT\"", Harness.swvm, "run", "--isolation=vm", "--report-fd", "3"]
                                + options + [Harness.exampleImage, "--"] + command,
                                timeout: 600, environment: ["SWVM_DEBUG": "1", "REPORT": report])
        return (r, (try? JSON.parse(FS.readText(report))) ?? .null)
    }

    /// The default profile allows every step after the template point, so
    /// the template holds the workload's filter loaded (seccompInTemplate):
    /// a restored run is in seccomp mode 2 with exactly that one filter (a
    /// namespace stays refused), and its working directory and host name
    /// are its own all the same. A profile that denies a step after the
    /// point (mkdirat, for the working directory) keeps the filter until
    /// after the restore, and the run makes its working directory.
    @Test func theTemplateHoldsTheFilterWhenItAllowsTheStepsAfterThePoint() throws {
        let script = "grep -E '^Seccomp(_filters)?:' /proc/self/status | tr -d '\\t' | tr '\\n' ' '; hostname; unshare -n true 2>/dev/null || echo refused; mkdir /tmp/y 2>/dev/null || echo no-mkdir; pwd"
        _ = try TemplateTests.debugRun([], ["true"])
        let (r, report) = try TemplateTests.reportedRun(["--hostname", "h-filter", "-w", "/tmp/new"], ["sh", "-c", script])
        #expect(r.status == 0 && TemplateTests.restored(r), "\(r)")
        #expect(r.out == "Seccomp:2 Seccomp_filters:1 h-filter\nrefused\n/tmp/new\n", "\(r)")
        #expect(report["vmStart"]?.string == "template" && report["seccompInTemplate"]?.bool == true, "\(report.serialized())")

        let profile = "/tmp/swvm-template-seccomp-\(getpid()).json"
        try FS.writeText(profile, #"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#)
        defer { unlink(profile) }
        let options = ["--security-opt", "seccomp=\(profile)"]
        _ = try TemplateTests.debugRun(options, ["true"])
        let (denying, denyingReport) = try TemplateTests.reportedRun(options + ["--hostname", "h-late", "-w", "/tmp/late"], ["sh", "-c", script])
        #expect(denying.status == 0 && TemplateTests.restored(denying), "\(denying)")
        #expect(denying.out == "Seccomp:2 Seccomp_filters:1 h-late\nrefused\nno-mkdir\n/tmp/late\n", "\(denying)")
        #expect(denyingReport["seccompInTemplate"]?.bool == false, "\(denyingReport.serialized())")
    }

    /// A restored guest's clock jumps by the time since its snapshot, so a
    /// grace period open at the snapshot looks stalled: the guest kernel
    /// boots with RCU stall reports off (they cost emulated printk work).
    /// (The guest has no /sys/module: param_sysfs_init is skipped.)
    @Test func restoredGuestsReportNoRCUStalls() throws {
        let (r, _) = try TemplateTests.templateRun([], ["cat", "/proc/cmdline"])
        #expect(r.status == 0 && r.out.split(separator: " ").contains("rcupdate.rcu_cpu_stall_suppress=1"), "\(r)")
    }

    @Test func otherFixedSettingsMakeAnotherTemplate() throws {
        let (_, plain) = try TemplateTests.templateRun([], ["true"])
        let (ro, readOnly) = try TemplateTests.templateRun(["--read-only"], ["sh", "-c", "touch /x 2>/dev/null || echo refused"])
        #expect(!plain.isEmpty && !readOnly.isEmpty && plain != readOnly, "\(plain) vs \(readOnly)")
        #expect(ro.out == "refused\n", "\(ro)")
        let (caps, capDir) = try TemplateTests.templateRun(["--cap-drop", "ALL"], ["sh", "-c", "grep CapEff /proc/self/status"])
        #expect(capDir != plain && capDir != readOnly)
        #expect(caps.out.contains("0000000000000000"), "\(caps)")
    }

    @Test func restoredRunsShareNoSecrets() throws {
        let script = "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo; cat /proc/sys/kernel/random/boot_id; hostname; date +%s"
        let before = time(nil)
        let (a, dirA) = try TemplateTests.templateRun([], ["sh", "-c", script])
        let b = try TemplateTests.debugRun([], ["sh", "-c", script])
        let after = time(nil)
        #expect(a.status == 0 && b.status == 0, "\(a)\n\(b)")
        #expect(TemplateTests.restored(b) && TemplateTests.templateDirectory(b) == dirA, "both runs restore the same template")
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

    @Test func noTemplateAndColdBootUseNone() throws {
        _ = try TemplateTests.debugRun([], ["true"])
        let r = try TemplateTests.debugRun(["--no-template"], ["echo", "boot snapshot"])
        #expect(r.out == "boot snapshot\n" && r.err.contains("restored from snapshot: "), "\(r)")
        #expect(TemplateTests.templateDirectory(r) == nil && r.err.contains("no image template: --no-template"), "\(r.err)")
        let cold = try TemplateTests.debugRun(["--cold-boot"], ["echo", "cold"])
        #expect(cold.out == "cold\n" && TemplateTests.templateDirectory(cold) == nil, "\(cold)")
    }

    /// Each kind of damage is detected and reported; the run goes through
    /// the boot snapshot instead, still succeeds, and saves a good template
    /// that the next run restores.
    @Test(arguments: ["flip a state byte", "overwrite memory", "truncate memory"])
    func aDamagedTemplateIsRebuilt(_ damage: String) throws {
        let (_, dir) = try TemplateTests.templateRun([], ["true"])
        guard !dir.isEmpty else { return }
        let state = Path.join(dir, "state"), memory = Path.join(dir, "memory")
        switch damage {
        case "flip a state byte":
            var bytes = try FS.readFile(state)
            bytes[bytes.count - 100] ^= 0xff
            try FS.writeFile(state, bytes, mode: 0o600)
        case "overwrite memory":
            let fd = open(memory, O_WRONLY)
            var junk = [UInt8](repeating: 0xcc, count: 4096)
            #expect(pwrite(fd, &junk, junk.count, 0x100_0000) == junk.count)
            close(fd)
        default:
            #expect(truncate(memory, 1 << 20) == 0)
        }
        let r = try TemplateTests.debugRun([], ["echo", "rebuilt"])
        #expect(r.status == 0 && r.out == "rebuilt\n", "\(r)")
        #expect(!TemplateTests.restored(r), "a damaged template was restored: \(r.err)")
        #expect(r.err.contains("image template: snapshot \(dir)"), "the damage was not reported: \(r.err)")
        #expect(r.err.contains("template saved: \(dir)"), "not rebuilt: \(r.err)")
        let again = try TemplateTests.debugRun([], ["echo", "warm"])
        #expect(again.out == "warm\n" && again.err.contains("restored from template: \(dir)"), "\(again)")
    }

    /// The first run saves the template without reading the guest RAM the
    /// guest never wrote (copied from the boot snapshot's file instead), so
    /// swvm's peak RSS stays well below the 128 MiB of guest RAM (it was
    /// 136-166 MiB); the template's memory file is as large as guest RAM,
    /// sparse, with at most 64 MiB allocated.
    @Test func theFirstRunSavesTheTemplateWithoutMappingGuestRAM() throws {
        let (_, dir) = try TemplateTests.templateRun([], ["true"])
        guard !dir.isEmpty else { return }
        try FS.removeTree(dir)
        let (r, report) = try TemplateTests.reportedRun([], ["echo", "first"])
        #expect(r.status == 0 && r.out == "first\n" && r.err.contains("template saved: \(dir)"), "\(r)")
        let peak = report["swvmPeakRSS"]?.int ?? 0
        #expect(peak > 0 && peak < 64 << 20, "the first run's peak RSS: \(peak >> 20) MiB")
        guard let st = FS.stat(Path.join(dir, "memory")) else { Issue.record("no template memory file"); return }
        #expect(st.st_size == 128 << 20 && st.st_blocks * 512 <= 64 << 20, "size \(st.st_size), allocated \(st.st_blocks * 512)")
        let again = try TemplateTests.debugRun([], ["echo", "warm"])
        #expect(again.out == "warm\n" && again.err.contains("restored from template: \(dir)"), "\(again)")
    }

    /// Templates are cache items; beyond the size bound the least recently
    /// used go first, never the one a run holds.
    @Test func templatesAreCacheItemsEvictedBeyondTheBound() throws {
        let (_, plain) = try TemplateTests.templateRun([], ["true"])
        let (_, readOnly) = try TemplateTests.templateRun(["--read-only"], ["true"])
        let ls = try Harness.swvmCommand(["cache", "ls"])
        #expect(ls.out.split(separator: "\n").contains { $0.hasPrefix("template ") && $0.contains(Path.basename(plain)) }, "\(ls)")
        let r = try Command.run([Harness.swvm, "run", "--isolation=vm", "--read-only", Harness.exampleImage, "--", "true"],
                                timeout: 600, environment: ["SWVM_DEBUG": "1", "SWVM_TEMPLATE_CACHE_BYTES": "1"])
        #expect(r.status == 0 && r.err.contains("restored from template: \(readOnly)"), "\(r)")
        #expect(r.err.contains("image template evicted (least recently used): \(plain)"), "\(r.err)")
        #expect(!FS.exists(plain) && FS.exists(readOnly))
        let rm = try Harness.swvmCommand(["cache", "rm", "template/\(Path.basename(readOnly))"])
        #expect(rm.status == 0 && !FS.exists(readOnly), "\(rm)")
    }

    /// Two first runs at once: one writes the template, the other runs
    /// without writing, both succeed, and the template is whole.
    @Test func concurrentFirstRunsWriteOneTemplate() throws {
        let (_, dir) = try TemplateTests.templateRun([], ["true"])
        guard !dir.isEmpty else { return }
        try FS.removeTree(dir)
        let results = Locked<[CommandResult]>([])
        let threads = try (0..<2).map { i in
            try NativeThread {
                if let r = try? TemplateTests.debugRun([], ["echo", "run\(i)"]) { results.with { $0.append(r) } }
            }
        }
        for t in threads { t.join() }
        let rs = results.current
        #expect(rs.count == 2 && rs.allSatisfy { $0.status == 0 }, "\(rs)")
        #expect(rs.filter { $0.err.contains("template saved: \(dir)") }.count == 1, "\(rs.map(\.err))")
        let next = try TemplateTests.debugRun([], ["echo", "warm"])
        #expect(next.out == "warm\n" && next.err.contains("restored from template: \(dir)"), "\(next)")
    }
}

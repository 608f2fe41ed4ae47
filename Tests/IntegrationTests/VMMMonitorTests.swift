#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import SwvmBase
@testable import VMMJail

/// A foreground `swvm run --isolation=vm` is a small monitor (the C
/// keeper, exec'd) whose child is the VMM (VMMMonitor): it forwards
/// signals, relays the status, and nothing is left on the host when
/// either of the two is killed.
@Suite(.serialized, .enabled(if: Harness.vmReady, "needs /dev/kvm, the guest kernel and guest-init"))
struct VMMMonitorTests {
    /// What a run holds on the host, read while it runs: its record
    /// (owned by the monitor), the cgroups in it, its uid lease.
    struct Held {
        var record: String
        var cgroups: [String]
        var lease: String

        init?(monitor: pid_t, vmm: pid_t) {
            let root = Path.join(SwvmPaths.runRoot, "runs")
            guard let name = ((try? FS.listDirectory(root)) ?? []).first(where: {
                ((try? FS.readText(Path.join(root, $0, "owner"))) ?? "").hasPrefix("\(monitor) ")
            }), let uid = VMMJailTests.status(vmm, "Uid")?.split(separator: "\t").first else { return nil }
            record = Path.join(root, name)
            cgroups = ((try? FS.readText(Path.join(record, "cgroups"))) ?? "").split(separator: "\n").map(String.init)
            lease = Path.join(VMMIdentity.directory, String(uid))
        }

        func expectGone() {
            #expect(!FS.exists(record), "the run record \(record) is left")
            #expect(!FS.exists(lease), "the uid lease \(lease) is left")
            for c in cgroups { #expect(!FS.exists(c), "the cgroup \(c) is left") }
        }
    }

    func privateKiB(_ pid: pid_t) -> Int {
        let text = (try? FS.readText("/proc/\(pid)/smaps_rollup")) ?? ""
        return text.split(separator: "\n").filter { $0.hasPrefix("Private_Clean:") || $0.hasPrefix("Private_Dirty:") }
            .compactMap { $0.split(separator: " ").dropFirst().first.flatMap { Int($0) } }.reduce(0, +)
    }

    /// Runs a VM that prints "up" and then waits; `whenUp(monitor, vmm)`.
    func whileUp(_ options: [String] = [], _ script: String = "echo up; sleep 60",
                 _ whenUp: @escaping (pid_t, pid_t) -> Void) throws -> CommandResult {
        var done = false
        return try Command.run([Harness.swvm, "run", "--isolation=vm"] + options + [Harness.exampleImage, "--", "sh", "-c", script],
                               timeout: 300, onOutput: { out, pid in
                                   guard !done, out.contains("up") else { return }
                                   done = true
                                   guard let vmm = VMMJailTests.vmm(of: pid) else {
                                       Issue.record("no VMM under swvm run (pid \(pid))")
                                       kill(pid, SIGKILL)
                                       return
                                   }
                                   whenUp(pid, vmm)
                               })
    }

    /// SIGTERM to `swvm run` (a process's kill, not the terminal's) goes
    /// to the VMM and on to the workload, whose status is the run's; the
    /// monitor is the C keeper, root, outside the jail, in little memory.
    @Test func aSignalToSwvmRunReachesTheWorkload() throws {
        var monitorKiB = 0, monitorExe = "", monitorUid = ""
        let r = try whileUp([], "trap 'echo got-term; exit 9' TERM; echo up; while :; do sleep 1; done") { monitor, _ in
            monitorKiB = privateKiB(monitor)
            monitorExe = FS.readLink("/proc/\(monitor)/exe") ?? ""
            monitorUid = VMMJailTests.status(monitor, "Uid") ?? ""
            kill(monitor, SIGTERM)
        }
        #expect(r.status == 9 && r.out.contains("got-term"), "\(r)")
        #expect(monitorExe.hasSuffix("/swvm-vmm-keeper"), "the monitor runs \(monitorExe)")
        #expect(monitorUid.hasPrefix("0\t"), "the monitor's uids: \(monitorUid)")
        #expect(monitorKiB > 0 && monitorKiB <= 1024, "the monitor's private memory: \(monitorKiB) KiB (target: at most 1024)")
    }

    /// The VMM killed with SIGKILL: `swvm run` exits 137 saying so, and
    /// its monitor removed the record, the cgroups, the tap and the lease.
    @Test func aKilledVMMLeavesNothing() throws {
        var held: Held?
        let r = try whileUp(["--network", "bridge"]) { monitor, vmm in
            held = Held(monitor: monitor, vmm: vmm)
            kill(vmm, SIGKILL)
        }
        #expect(r.status == 137 && r.err.contains("was killed by signal 9"), "\(r)")
        let h = try #require(held, "the run's record was not found")
        #expect(!h.cgroups.isEmpty, "the run's record names no cgroup")
        h.expectGone()
    }

    /// The monitor killed with SIGKILL takes its VMM along (parent-death
    /// signal); the next run removes what the two held.
    @Test func aKilledMonitorTakesItsVMMAlong() throws {
        var held: Held?
        var vmmPID: pid_t = 0
        let r = try whileUp(["--network", "bridge"]) { monitor, vmm in
            held = Held(monitor: monitor, vmm: vmm)
            vmmPID = vmm
            kill(monitor, SIGKILL)
        }
        #expect(r.status == 137, "\(r)")
        var gone = false
        for _ in 0..<100 where !gone {
            gone = kill(vmmPID, 0) != 0 || VMMJailTests.status(vmmPID, "State")?.hasPrefix("Z") == true
            if !gone { usleep(50_000) }
        }
        #expect(gone, "the VMM (pid \(vmmPID)) outlived its monitor")
        let next = try Command.run([Harness.swvm, "run", "--isolation=vm", Harness.exampleImage, "--", "true"], timeout: 300)
        #expect(next.status == 0, "\(next)")
        try #require(held, "the run's record was not found").expectGone()
    }
}

#if canImport(Glibc)
import Glibc
#endif
import RuntimeSpec
import Testing
import TestSupport
@testable import SwvmBase

/// The confinement both levels apply is one C implementation: the same
/// posture script sees the same thing in a container and in a VM.
extension VMRunTests {
    /// Capabilities, no_new_privs and seccomp; the mount flags of the
    /// read-only paths and /sys (a path the kernel lacks, as /proc/sysrq-trigger
    /// on these hosts, is not mounted); what masked paths show (nothing:
    /// empty, or absent where the guest kernel lacks them); a write to a
    /// read-only path; loopback.
    static let postureScript = """
        grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status
        for m in /proc/sys /proc/sysrq-trigger /sys; do
          awk -v m=$m '$5 == m { o = $6 } END { print m, (o == "" ? "not mounted" : o) }' /proc/self/mountinfo
        done
        for p in /proc/kcore /proc/timer_list /proc/acpi; do
          if [ -d $p ]; then n=$(ls -A $p | wc -l); else n=$(wc -c 2>/dev/null < $p); fi
          echo "$p: ${n:-0}"
        done
        echo 1 2>&1 > /proc/sys/kernel/hostname || echo "write refused"
        echo "lo $(cat /sys/class/net/lo/operstate) $(cat /sys/class/net/lo/flags)"
        """

    @Test func postureIsTheSameAtBothLevels() throws {
        let container = try Harness.run(["sh", "-c", Self.postureScript], isolation: "container", timeout: 120)
        let vm = try Harness.run(["sh", "-c", Self.postureScript], isolation: "vm", timeout: 600)
        #expect(container.status == 0, "\(container)")
        #expect(vm.status == 0, "\(vm)")
        #expect(vm.out == container.out, "container:\n\(container.out)\nvm:\n\(vm.out)")
        #expect(vm.err == container.err)
        // What both must show, not merely agree on.
        for line in ["CapEff:\t00000000a80425fb", "CapBnd:\t00000000a80425fb", "NoNewPrivs:\t1", "Seccomp:\t2",
                     "/proc/sys ro,nosuid,nodev,noexec", "/sys ro,nosuid,nodev,noexec", "/proc/kcore: 0\n",
                     "/proc/timer_list: 0\n", "/proc/acpi: 0\n", "Read-only file system\nwrite refused", "lo unknown 0x9"] {
            #expect(container.out.contains(line), "missing \(line.debugDescription)")
        }
    }

    /// The masked and read-only paths a run reports (--report-fd) are the
    /// ones it applied: each default path is a mount point in the run's
    /// mountinfo exactly when it is reported; a reported masked path shows
    /// nothing, an unreported one does not exist; a reported read-only
    /// path is mounted ro.
    @Test func reportedMaskedPathsAreTheAppliedOnes() throws {
        let paths = (RunSpec.defaultMaskedPaths + RunSpec.defaultReadonlyPaths).joined(separator: " ")
        let script = """
            for p in \(paths); do
              o=$(awk -v m=$p '$5 == m { o = $6 } END { print (o == "" ? "-" : o) }' /proc/self/mountinfo)
              if [ -d $p ]; then n=$(ls -A $p | wc -l); elif [ -e $p ]; then n=$(wc -c < $p); else n=absent; fi
              echo "$p $o $n"
            done
            """
        let dir = Path.join(FS.executableDirectory(), "masked-\(getpid())")
        try FS.makeDirectories(dir)
        defer { try? FS.removeTree(dir) }
        for isolation in ["container", "vm"] {
            let report = Path.join(dir, "\(isolation).json")
            let r = try Command.run(["/bin/sh", "-c", "exec \"$0\" run --isolation=\(isolation) --report-fd 3 \"$1\" -- sh -c \"$2\" 3>\"$3\"",
                                     Harness.swvm, Harness.exampleImage, script, report], timeout: 600)
            #expect(r.status == 0, "\(isolation): \(r)")
            let posture = try #require(try JSON.parse(FS.readText(report))["posture"])
            let masked = Set((posture["maskedPaths"]?.array ?? []).compactMap(\.string))
            let readOnly = Set((posture["readOnlyPaths"]?.array ?? []).compactMap(\.string))
            var seen: [String: (options: String, content: String)] = [:]
            for line in r.out.split(separator: "\n") {
                let f = line.split(separator: " ").map(String.init)
                if f.count == 3 { seen[f[0]] = (f[1], f[2]) }
            }
            #expect(seen.count == RunSpec.defaultMaskedPaths.count + RunSpec.defaultReadonlyPaths.count, "\(isolation): \(r.out)")
            for p in RunSpec.defaultMaskedPaths {
                let s = try #require(seen[p], "\(isolation): \(p)")
                #expect(masked.contains(p) == (s.options != "-"), "\(isolation): \(p) mounted \(s.options), reported \(masked)")
                #expect(s.content == (masked.contains(p) ? "0" : "absent"), "\(isolation): \(p) shows \(s.content)")
            }
            for p in RunSpec.defaultReadonlyPaths {
                let s = try #require(seen[p], "\(isolation): \(p)")
                #expect(readOnly.contains(p) == (s.options != "-"), "\(isolation): \(p) mounted \(s.options), reported \(readOnly)")
                if readOnly.contains(p) { #expect(s.options.hasPrefix("ro,"), "\(isolation): \(p) mounted \(s.options)") }
            }
            // What both kernels have: a masked /proc/timer_list and a read-only /proc/sys.
            #expect(masked.contains("/proc/timer_list") && readOnly.contains("/proc/sys"), "\(isolation): \(masked) \(readOnly)")
        }
    }

    /// stdin may be a regular file or /dev/null (which epoll refuses), a pipe
    /// (the parity cases), at both levels.
    @Test func stdinFromAFileOrDevNull() throws {
        let file = Path.join(FS.executableDirectory(), "stdin-\(getpid()).txt")
        let text = (0..<3000).map { "line \($0)\n" }.joined()
        try FS.writeText(file, text)
        defer { unlink(file) }
        for isolation in ["container", "vm"] {
            let r = try Command.run(["/bin/sh", "-c", "\(Harness.swvm) run -i --isolation=\(isolation) \(Harness.exampleImage) -- wc -c < \(file)"],
                                    timeout: 600)
            #expect(!r.timedOut && r.status == 0, "\(isolation): \(r)")
            #expect(r.out.trimmingCharacters(in: " ") == String(text.utf8.count), "\(isolation): \(r)")
            let null = try Command.run(["/bin/sh", "-c", "\(Harness.swvm) run -i --isolation=\(isolation) \(Harness.exampleImage) -- wc -c < /dev/null"],
                                       timeout: 600)
            #expect(!null.timedOut && null.status == 0 && null.out.trimmingCharacters(in: " ") == "0", "\(isolation): \(null)")
        }
    }

    /// A failed poll in the VMM's main loop stops the vCPUs and ends the run
    /// with an error (it used to join vCPU threads that never stopped).
    /// (Without the jail: root cannot change a jailed VMM's rlimits here,
    /// lacking CAP_SYS_RESOURCE for another uid's process.)
    @Test func aFailedPollInTheVMMEndsTheRun() throws {
        var limited = false
        let r = try Command.run([Harness.swvm, "run", "--isolation=vm", Harness.exampleImage, "--", "sh", "-c", "echo up; sleep 60"],
                                timeout: 300, environment: ["SWVM_TEST_UNJAILED_VMM": "1"], onOutput: { out, pid in
                                    guard !limited && out.contains("up") else { return }
                                    limited = true
                                    // poll(2) fails with EINVAL for more descriptors than RLIMIT_NOFILE
                                    // (the VMM's: the child of `swvm run`, its monitor).
                                    let vmm = VMMJailTests.vmm(of: pid) ?? pid
                                    _ = try? Subprocess.run(["/usr/bin/prlimit", "--pid", String(vmm), "--nofile=1:1"])
                                })
        #expect(limited)
        #expect(!r.timedOut, "swvm hung after poll failed")
        #expect(r.status == 125, "\(r)")
        #expect(r.err.contains("poll in the VMM's main loop"), "\(r)")
        // The run record it could not remove (no descriptors left) goes with the next run.
        #expect(try Harness.run(["true"]).status == 0)
    }

    /// A PID 1 that ignores SIGTERM is killed by a second one (137), and
    /// --init makes the workload PID 2, which SIGTERM ends (143), in a VM.
    @Test func stopAndInitInTheVM() throws {
        var sent = false
        let stop = try Command.run([Harness.swvm, "run", "--isolation=vm", Harness.exampleImage, "--", "sh", "-c", "echo up; sleep 60"],
                                   timeout: 300, onOutput: { out, pid in
                                       guard !sent && out.contains("up") else { return }
                                       sent = true
                                       kill(pid, SIGTERM)
                                       Signaller.after(0.5) { kill(pid, SIGTERM) }
                                   })
        #expect(stop.status == 137, "\(stop)")
        sent = false
        let initRun = try Command.run([Harness.swvm, "run", "--isolation=vm", "--init", Harness.exampleImage, "--", "sh", "-c", "echo $$; echo up; sleep 60"],
                                      timeout: 300, onOutput: { out, pid in
                                          guard !sent && out.contains("up") else { return }
                                          sent = true
                                          kill(pid, SIGTERM)
                                      })
        #expect(initRun.status == 143, "\(initRun)")
        #expect(initRun.out == "2\nup\n")
    }
}

#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import SwvmBase

/// `swvm exec` into a detached VM (issue 19, tenth session): after the
/// first exec, guest-init forks later ones from an exec zygote that has
/// joined the workload's namespaces and loaded its seccomp filter once;
/// `swvm exec` relays the exec itself (no relay process) unless a caller
/// needs its host pid. Whatever path it takes, an exec has the workload's
/// posture, namespaces and cgroup, its own status, and a working pty.
/// Real VMs; every test removes its VM with `rm -f` on every path.
@Suite(.serialized, .enabled(if: Harness.vmReady, "needs /dev/kvm, the guest kernel and guest-init"))
struct DetachedVMExecTests {
    /// Uid, capabilities, no_new_privs, seccomp, cgroup and namespaces of
    /// the guest process P, one per line.
    static func posture(of p: String) -> String {
        "grep -E '^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp|Seccomp_filters):' /proc/\(p)/status; "
            + "cat /proc/\(p)/cgroup; for n in cgroup ipc mnt net pid uts; do readlink /proc/\(p)/ns/$n; done"
    }

    /// Several execs after the first (the zygote's): each one's posture is
    /// the workload's PID 1's (seccomp 2 with one filter, no_new_privs,
    /// capabilities, namespaces, cgroup); -u/-w/-e, exit status, 127, two
    /// at once, pids in the workload's pid namespace, and nothing else
    /// (no zygote) in it.
    @Test func execsHaveTheWorkloadsPostureAndTheirOwnStatus() throws {
        let id = try DetachedVMTests.detachedVM([], ["sleep", "3600"])
        defer { DockerVerbsTests.removeForcibly(id) }
        let first = try DetachedVMTests.swvm(["exec", id, "true"])
        #expect(first.status == 0, "\(first)")
        for _ in 0..<2 {
            let r = try DetachedVMTests.swvm(["exec", id, "sh", "-c", "\(Self.posture(of: "1")); echo ==; \(Self.posture(of: "self"))"])
            try #require(r.status == 0, "\(r)")
            let halves = r.out.components(separatedBy: "==\n")
            try #require(halves.count == 2, "\(r.out)")
            #expect(halves[0] == halves[1], "workload:\n\(halves[0])exec:\n\(halves[1])")
            #expect(halves[1].contains("Seccomp:\t2\n") && halves[1].contains("Seccomp_filters:\t1\n"), "\(halves[1])")
            #expect(halves[1].contains("NoNewPrivs:\t1\n"), "\(halves[1])")
            #expect(!halves[1].contains("CapEff:\t0000000000000000"), "\(halves[1])")
        }
        let user = try DetachedVMTests.swvm(["exec", "-u", "1000", "-w", "/tmp", "-e", "FOO=bar", id, "sh", "-c", "id -u; pwd; echo $FOO; exit 3"])
        #expect(user.status == 3 && user.out == "1000\n/tmp\nbar\n", "\(user)")
        let missing = try DetachedVMTests.swvm(["exec", id, "no-such-binary"])
        #expect(missing.status == 127, "\(missing)")
        // Two at once, each with its own status; ps shows the workload and the execs only.
        let both = try Command.run(["/bin/sh", "-c",
            "\(Harness.swvm) exec \(id) sh -c 'sleep 2; exit 4' & \(Harness.swvm) exec \(id) sh -c 'ps -o pid,comm; exit 5'; echo second=$?; wait $!; echo first=$?"],
            timeout: 120)
        #expect(both.out.contains("second=5") && both.out.contains("first=4"), "\(both)")
        let rows = both.out.split(separator: "\n").map { $0.split(separator: " ") }.filter { $0.count == 2 && Int($0[0]) != nil }
        #expect(rows.contains { $0[0] == "1" && $0[1] == "sleep" }, "\(both.out)")
        // The workload and the execs' sh, sleep and ps: no zygote (guest-init's "init") in the workload's pid
        // namespace. busybox sh runs sleep through /proc/self/exe: "exe" until that exec is done.
        #expect(rows.allSatisfy { ["sleep", "sh", "ps", "exe"].contains(String($0[1])) }, "\(both.out)")
    }

    /// `swvm exec ID cmd > file`: the VMM, which writes an exec's output,
    /// may not write a regular file (its jail's FSIZE is 0 when it starts
    /// from a warm snapshot), so swvm exec copies the output into the file
    /// itself; the file was left empty. The first VM only makes sure the
    /// second starts warm. An exec'd process is dumpable again after its
    /// execve (the zygote is not): /proc/self is its user's.
    @Test func execOutputIntoRegularFiles() throws {
        let warm = try DetachedVMTests.detachedVM([], ["sleep", "3600"])
        DockerVerbsTests.removeForcibly(warm)
        let id = try DetachedVMTests.detachedVM([], ["sleep", "3600"])
        defer { DockerVerbsTests.removeForcibly(id) }
        let piped = try DetachedVMTests.swvm(["exec", id, "cat", "/etc/passwd"])
        try #require(piped.status == 0 && !piped.out.isEmpty, "\(piped)")
        let out = "/tmp/swvm-exec-out-\(getpid())", err = out + ".err"
        defer { unlink(out); unlink(err) }
        let r = try Command.run(["/bin/sh", "-c",
            "\(Harness.swvm) exec -u 1000 \(id) sh -c 'cat /etc/passwd; echo oops >&2; stat -c %u /proc/self/status' > \(out) 2> \(err)"],
            timeout: 120)
        #expect(r.status == 0, "\(r)")
        #expect(try FS.readText(out) == piped.out + "1000\n")
        #expect(try FS.readText(err) == "oops\n")
    }

    /// exec -t into a detached VM (untested before): the exec's stdio is a
    /// pty of the caller's size, and a resize of the caller's terminal
    /// reaches it, also from a shell's background job, whose stdin is
    /// /dev/null (the relay process read the size from its stdin only).
    @Test(.enabled(if: FS.exists("/usr/bin/script"), "needs script(1) for a pty"))
    func execWithATerminalIntoADetachedVM() throws {
        let id = try DetachedVMTests.detachedVM([], ["sleep", "3600"])
        defer { DockerVerbsTests.removeForcibly(id) }
        for _ in 0..<2 {   // the first exec, then one from the zygote
            let r = try Command.run(["/usr/bin/script", "-qec",
                "stty rows 33 cols 101; \(Harness.swvm) exec -t \(id) sh -c 'test -t 0 && test -t 1 && tty; stty size; exit 6'; echo status=$?",
                "/dev/null"], timeout: 120)
            #expect(r.out.contains("/dev/pts/"), "\(r)")
            #expect(r.out.contains("33 101"), "\(r)")
            #expect(r.out.contains("status=6"), "\(r)")
        }
        let resized = try Harness.resizedWhileRunning("\(Harness.swvm) exec -t \(id) sh -c", timeout: 120)
        #expect(resized.out.contains("10 20"), "\(resized)")
    }
}

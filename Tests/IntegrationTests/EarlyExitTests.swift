#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import SwvmBase

/// guest-init reports the workload's exit from the guest kernel's
/// TASKSTATS message (guest-init/early_exit.c), sent before the workload's
/// address space is torn down, when the message leaves no doubt about the
/// status; otherwise from waitpid, as before. Either way the VM run must
/// end with the status, stdout and stderr of the same run in a container:
/// each case runs in a container, in a VM from the boot snapshot
/// (--no-template) and in a VM from the image's template.
@Suite(.serialized, .enabled(if: Harness.vmReady, "needs /dev/kvm, the guest kernel and guest-init"))
struct EarlyExitTests {
    static let cases: [ParityCase] = [
        ParityCase(name: "exit 3 right after output", options: [], command: ["sh", "-c", "echo out; echo err >&2; seq 1 3000; exit 3"], stdin: nil),
        // A child's death by SIGKILL, passed on as the shell's exit code 137.
        ParityCase(name: "a child killed by SIGKILL", options: [], command: ["sh", "-c", "sh -c 'kill -9 $$'; exit $?"], stdin: nil),
        // The workload's own death by a signal it cannot ignore as its
        // namespace's init: a stack overflow's SIGSEGV (128+11).
        ParityCase(name: "SIGSEGV", options: [], command: ["sh", "-c", "ulimit -s 64; f() { f; }; f"], stdin: nil),
        // reboot(2) in the workload's PID namespace sends it SIGKILL and
        // has it exit(0), then makes its exit code SIGINT
        // (zap_pid_ns_processes): 130, where the kernel's exit message
        // says 0. With CAP_SYS_BOOT the exit is left to waitpid.
        ParityCase(name: "poweroff in the PID namespace", options: ["--cap-add", "SYS_BOOT"], command: ["poweroff", "-f"], stdin: nil),
    ]

    @Test(arguments: cases.flatMap { c in [(c, "warm"), (c, "template")] })
    func containerAndVMAgree(_ c: ParityCase, _ start: String) throws {
        let container = try Harness.run(c.options, c.command, isolation: "container", timeout: 120)
        if start == "template" {
            // The first run of this image and confinement saves its template.
            _ = try Harness.run(c.options, c.command, isolation: "vm", timeout: 600)
        }
        let vm = try Harness.run(c.options + (start == "warm" ? ["--no-template"] : []), c.command, isolation: "vm", timeout: 600)
        #expect(!vm.timedOut)
        #expect(vm.status == container.status, "container: \(container.status), vm: \(vm.status) \(vm.err)")
        #expect(vm.out == container.out, "stdout differs: container \(container.out.debugDescription), vm \(vm.out.debugDescription)")
        #expect(vm.err == container.err, "stderr differs: container \(container.err.debugDescription), vm \(vm.err.debugDescription)")
    }

    /// A second SIGTERM to swvm kills the workload with SIGKILL from
    /// guest-init (outside its namespace): 137, early, and with
    /// CAP_SYS_BOOT (where the exit is left to waitpid) the same.
    @Test(arguments: [[], ["--cap-add", "SYS_BOOT"]])
    func killedBySIGKILLFromOutside(_ options: [String]) throws {
        var sent = false
        let r = try Command.run([Harness.swvm, "run", "--isolation=vm"] + options + [Harness.exampleImage, "--", "sh", "-c",
                                 "trap '' TERM; echo ready; while :; do sleep 0.2; done"],
                                timeout: 600, onOutput: { out, pid in
                                    if !sent && out.contains("ready") { sent = true; kill(pid, SIGTERM); usleep(200_000); kill(pid, SIGTERM) }
                                })
        #expect(r.status == 137, "\(r)")
        #expect(r.out == "ready\n")
    }

    static let python = Path.join(Harness.repo, "examples/debian-python3")

    /// A group that had threads is left to waitpid (the thread that ends
    /// the group need not carry the group's code): a thread joined before
    /// exit(5), and os._exit(7) from a thread while the main one waits.
    @Test(.enabled(if: FS.exists(EarlyExitTests.python), "needs examples/debian-python3 (scripts/build-debian-image.sh)"),
          arguments: [("import threading, sys\nt = threading.Thread(target=lambda: None)\nt.start(); t.join(); sys.exit(5)", 5),
                      ("import threading, os\nthreading.Thread(target=lambda: os._exit(7)).start()\nthreading.Event().wait()", 7)])
    func multithreadedWorkloads(_ script: String, _ status: Int32) throws {
        for options in [["--no-template"], []] {
            let r = try Harness.run(options, ["python3", "-c", script], isolation: "vm", image: Self.python, timeout: 600)
            #expect(r.status == status, "\(options): \(r)")
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import MicroVM
@testable import SwvmBase

/// `swvm boot`: the real guest kernel from kernel/build.sh, booted by
/// swvm's VMM with a small initramfs of static test programs.
@Suite(.serialized, .enabled(if: Harness.vmReady, "needs /dev/kvm, the guest kernel and guest-init"))
struct VMBootTests {
    /// Compiles the fixture programs and packs them as an initramfs.
    static let initrd: String = {
        let src = Path.join(Harness.repo, "Tests/Fixtures/boot-init")
        // Under .build (git-ignored), not /tmp: tests leave nothing behind.
        let dir = Path.join(Harness.repo, ".build/test-fixtures/boot-init")
        try? FS.makeDirectories(dir)
        var cpio = Initramfs()
        for name in ["init", "child"] {
            let out = Path.join(dir, name)
            let r = try? Subprocess.run(["gcc", "-static", "-O2", "-o", out, Path.join(src, "\(name).c")])
            if r?.status != 0 { Issue.record("compiling \(name).c: \(r?.output ?? "gcc missing")") }
            cpio.addFile(name, data: (try? FS.readFile(out)) ?? [])
        }
        let path = Path.join(dir, "initrd.cpio")
        try? FS.writeFile(path, cpio.finish())
        return path
    }()

    @Test func bootsRunsInitAndPowersOff() throws {
        let r = try Harness.swvmCommand(["boot", "--initrd", Self.initrd, "--memory", "128M"], timeout: 300)
        #expect(r.status == 0, "\(r)")
        #expect(r.out.contains("init: pid 1 on Linux 6.1"))
        #expect(r.out.contains("child: from-init pid"))
        #expect(r.out.contains("init: child exited with 7"))
        #expect(r.out.contains("SWVM-BOOT-MARKER-OK"))
        #expect(!r.timedOut)
        // kernel/swvm.config: 50 Hz (each tick is emulated work on a PVM host).
        #expect(r.out.contains("init: timer tick 50 Hz"), "\(r)")
    }

    @Test func twoVCPUsAreBothOnline() throws {
        let r = try Harness.swvmCommand(["boot", "--initrd", Self.initrd, "--cpus", "2", "--memory", "128M"], timeout: 300)
        #expect(r.status == 0, "\(r)")
        #expect(r.out.contains("init: 2 CPUs online, 2 in /proc/cpuinfo"), "\(r)")
    }

    @Test func aKernelPanicIsReported() throws {
        let r = try Harness.swvmCommand(["boot", "--initrd", Self.initrd, "--memory", "128M", "--cmdline=-- panic"], timeout: 300)
        #expect(r.status == 1, "\(r)")
        #expect(r.err.contains("guest kernel panicked: Attempted to kill init!"), "\(r)")
    }

    @Test func badKernelsAreClearErrors() throws {
        let missing = try Harness.swvmCommand(["boot", "--kernel", "/nonexistent/vmlinux"])
        #expect(missing.status == 125)
        #expect(missing.err == "swvm: kernel /nonexistent/vmlinux: no such file\n")
        let notAKernel = try Harness.swvmCommand(["boot", "--kernel", "/etc/hostname"])
        #expect(notAKernel.status == 125)
        #expect(notAKernel.err.contains("neither an ELF vmlinux nor a bzImage"))
        let tooManyCPUs = try Harness.swvmCommand(["boot", "--cpus", "999"])
        #expect(tooManyCPUs.status == 125)
    }
}

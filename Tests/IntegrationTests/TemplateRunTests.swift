#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import SwvmBase

/// Image templates for runs with -v and -t (issue 22): the volumes' share
/// and the terminal are the run's, attached after the restore, so such
/// runs restore the image's template for such runs (the boot snapshot's
/// path before) and see only their own volumes and their own pty. Volumes
/// are not in its key: one template serves runs with any volumes.
extension TemplateTests {
    /// The plain template (no volume, no terminal).
    static func plainTemplate() throws -> String {
        let r = try debugRun([], ["true"])
        #expect(r.status == 0, "\(r)")
        return templateDirectory(r) ?? ""
    }

    /// The image's template for runs with volumes or a terminal (the first
    /// such run makes it): not the plain one, whose child is already in its
    /// root and maybe under its filter at the template point.
    static func volumeTemplate() throws -> String {
        let plain = try TemplateTests.plainTemplate()
        let scratch = try TempDir("tmplvol-first")
        defer { scratch.cleanup() }
        let first = try TemplateTests.debugRun(["-v", "\(scratch.path):/scratch"], ["true"])
        let dir = TemplateTests.templateDirectory(first)
        #expect(first.status == 0 && dir != nil && dir != plain, "\(first)")
        return dir ?? ""
    }

    @Test func volumesAttachAfterTheRestore() throws {
        let template = try Self.volumeTemplate()
        let rw = try TempDir("tmplvol-rw"), ro = try TempDir("tmplvol-ro"), other = try TempDir("tmplvol-other")
        defer { rw.cleanup(); ro.cleanup(); other.cleanup() }
        try FS.writeText(rw.path + "/from-host", "host file\n")
        try FS.writeText(ro.path + "/keep", "kept\n")
        try FS.writeText(other.path + "/second", "second run\n")
        let script = """
            cat /data/from-host; echo written in the run > /data/from-run
            touch /ro/new 2>&1; cat /ro/keep
            awk '$5 == "/data" || $5 == "/ro" { print $5, $6 }' /proc/self/mountinfo
            """
        let r = try TemplateTests.debugRun(["-v", "\(rw.path):/data", "-v", "\(ro.path):/ro:ro"], ["sh", "-c", script])
        #expect(r.status == 0, "\(r)")
        #expect(TemplateTests.restored(r) && TemplateTests.templateDirectory(r) == template, "not the image's template: \(r.err)")
        #expect(r.out.hasPrefix("host file\n"), "\(r.out)")
        #expect(try FS.readText(rw.path + "/from-run") == "written in the run\n")
        #expect(r.out.contains("Read-only file system") && r.out.contains("kept\n") && !FS.exists(ro.path + "/new"), "\(r.out)")
        #expect(r.out.contains("/data rw,nosuid,nodev") && r.out.contains("/ro ro,nosuid,nodev"), "\(r.out)")
        // Another run, another volume: nothing of the first one's.
        let second = try TemplateTests.debugRun(["-v", "\(other.path):/other"], ["sh", "-c",
            "cat /other/second; ls /data /ro 2>&1 | head -2; grep -c -e ' /data ' -e ' /ro ' /proc/self/mountinfo || true"])
        #expect(second.status == 0 && TemplateTests.restored(second) && TemplateTests.templateDirectory(second) == template, "\(second)")
        #expect(second.out.hasPrefix("second run\n") && second.out.hasSuffix("\n0\n"), "\(second.out)")
        #expect(!second.out.contains("from-host") && !second.out.contains("keep"), "\(second.out)")
    }

    /// A container mounts volumes before its masked and read-only paths:
    /// a mask over a volume stays on top after a restore too (the template
    /// made it before the volume existed), and the template's own mask is
    /// undone first, so the mounts there are a container's (not one more,
    /// unreachable beneath the volume); the same for a read-only path.
    @Test func masksStayOverVolumes() throws {
        _ = try Self.volumeTemplate()
        let t = try TempDir("tmplvol-mask"), sys = try TempDir("tmplvol-sys")
        defer { t.cleanup(); sys.cleanup() }
        try FS.writeText(t.path + "/visible", "a volume's file\n")
        // /sys/firmware is masked (an empty read-only tmpfs over it), /proc/sys read-only.
        let script = ["sh", "-c", "ls -A /sys/firmware | wc -l; touch /proc/sys/x 2>&1 | grep -c Read-only; "
                      + "grep -c -e ' /sys/firmware ' -e ' /proc/sys ' /proc/self/mountinfo"]
        let volumes = ["-v", "\(t.path):/sys/firmware", "-v", "\(sys.path):/proc/sys"]
        let r = try TemplateTests.debugRun(volumes, script)
        #expect(r.status == 0 && TemplateTests.restored(r), "\(r)")
        #expect(r.out.hasPrefix("0\n1\n"), "the masked /sys/firmware shows the volume, or /proc/sys is writable: \(r.out)")
        let container = try Harness.run(volumes, script)
        #expect(container.out == r.out, "container: \(container), VM from a template: \(r.out)")
    }

    /// Stdin is the run's (CFG_INTERACTIVE comes with MSG_RUN): a -i run
    /// restores the plain template and its stdin reaches the workload; a
    /// run without -i from the same template gets /dev/null, though the
    /// template's child holds the stdin port and the host's stdin has data.
    @Test func stdinIsTheRunsNotTheTemplates() throws {
        let plain = try Self.plainTemplate()
        func run(_ options: [String], _ script: String) throws -> CommandResult {
            try Command.run([Harness.swvm, "run", "--isolation=vm"] + options + [Harness.exampleImage, "--", "sh", "-c", script],
                            stdin: Array("from the host\n".utf8), timeout: 600, environment: ["SWVM_DEBUG": "1"])
        }
        let interactive = try run(["-i"], "cat; echo end")
        #expect(interactive.status == 0 && interactive.out == "from the host\nend\n", "\(interactive)")
        #expect(Self.restored(interactive) && Self.templateDirectory(interactive) == plain, "not the plain template \(plain): \(interactive.err)")
        let closed = try run([], "readlink /proc/self/fd/0; cat; echo end")
        #expect(closed.status == 0 && closed.out == "/dev/null\nend\n", "\(closed)")
        #expect(Self.restored(closed) && Self.templateDirectory(closed) == plain, "\(closed.err)")
    }

    @Test(.enabled(if: FS.exists("/usr/bin/script"), "needs script(1) for a pty"))
    func aTerminalAfterTheRestore() throws {
        _ = try TemplateTests.volumeTemplate()
        let run = "SWVM_DEBUG=1 \(Harness.swvm) run --isolation=vm -t \(Harness.exampleImage) -- sh -c"
        let r = try Command.run(["/usr/bin/script", "-qec", "stty rows 33 cols 101; \(run) 'test -t 0 && test -t 1 && tty; stty size'",
                                 "/dev/null"], timeout: 600)
        #expect(r.out.contains("/dev/pts/0"), "\(r)")
        #expect(r.out.contains("33 101"), "\(r)")
        #expect(r.out.contains("restored from template: "), "not restored from a template: \(r.out)")
        // A resize while the workload runs reaches its pty (SIGWINCH -> MSG_RESIZE).
        let resized = try Harness.resizedWhileRunning(run, timeout: 600)
        #expect(resized.out.contains("10 20"), "\(resized)")
        #expect(resized.out.contains("restored from template: "), "\(resized.out)")
    }
}

/// A pod's network (--network ns:PATH) in a template run: eth0's MAC, MTU,
/// addresses and routes are the pod's, sent with MSG_RUN (the tap in the
/// pod's namespace attached only then), as for --network bridge.
extension PodNetworkTests {
    @Test(.enabled(if: Harness.vmReady, "needs /dev/kvm, the guest kernel and guest-init"))
    func aPodRunRestoresTheImageTemplate() throws {
        try PodNetworkTests.withNamespace(4) { ns in
            let before = try ns.state()
            let script = "ip -o link show eth0; ip -o -4 addr show eth0; ip route; ping -c 1 -W 5 \(ns.hostAddress) >/dev/null && echo reached-host"
            let first = try TemplateTests.debugRun(["--network", "ns:\(ns.path)"], ["true"])   // makes the template
            #expect(first.status == 0, "\(first)")
            let r = try TemplateTests.debugRun(["--network", "ns:\(ns.path)"], ["sh", "-c", script])
            #expect(r.status == 0 && TemplateTests.restored(r), "not restored from a template: \(r)")
            #expect(r.out.contains("mtu 1400") && r.out.contains("link/ether \(PodNamespace.mac)"), "\(r.out)")
            #expect(r.out.contains("inet \(ns.guestAddress)/24") && r.out.contains("inet \(ns.subnet).3/24"), "\(r.out)")
            #expect(r.out.contains("default via \(ns.hostAddress) dev eth0") && r.out.contains("10.232.0.0/16 via \(ns.hostAddress) dev eth0"), "\(r.out)")
            #expect(r.out.contains("reached-host"), "\(r.out)")
            #expect(try ns.state() == before)
        }
    }
}

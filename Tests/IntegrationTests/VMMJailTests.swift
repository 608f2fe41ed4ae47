#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import SwvmBase
@testable import VMMJail
import CVMMJail

/// The VMM's jail, checked from the host while a VM runs: what the kernel
/// says of every thread of the VMM (the child of the `swvm run` process,
/// its monitor), its namespaces, its root and its limits; then that its
/// monitor left nothing.
@Suite(.serialized, .enabled(if: Harness.vmReady, "needs /dev/kvm, the guest kernel and guest-init"))
struct VMMJailTests {
    /// The VMM of the run whose `swvm run` (its monitor) is `monitor`: its
    /// child running `swvm run --monitored-vmm` (the other is its reaper).
    static func vmm(of monitor: pid_t) -> pid_t? {
        let tasks = (try? FS.listDirectory("/proc/\(monitor)/task")) ?? []
        let children = tasks.flatMap { t in
            ((try? FS.readText("/proc/\(monitor)/task/\(t)/children")) ?? "").split(separator: " ").compactMap { pid_t($0) }
        }
        let vmms = children.filter { ((try? FS.readText("/proc/\($0)/cmdline")) ?? "").contains("--monitored-vmm") }
        return vmms.count == 1 ? vmms[0] : nil
    }

    /// A field of /proc/PID/status.
    static func status(_ pid: pid_t, _ field: String) -> String? {
        let text = (try? FS.readText("/proc/\(pid)/status")) ?? ""
        return text.split(separator: "\n").first { $0.hasPrefix(field + ":") }
            .map { String($0.dropFirst(field.count + 1)).trimmingCharacters(in: "\t").trimmingCharacters(in: " ") }
    }

    /// Runs `script` (which prints "up" when ready, then waits) in a VM and
    /// reads the VMM's posture once it is up; then stops it with SIGTERM to
    /// `swvm run`, which forwards it; the script's shell exits 143 at once
    /// (without a trap, the PID 1 of its namespace would ignore it until
    /// the 10 s stop timeout). Also checks the process model: the VMM is the
    /// monitor's child and PID 1 of its own pid namespace.
    func postureWhileRunning(_ options: [String], _ script: String,
                             environment: [String: String] = [:]) throws -> (JailPosture?, CommandResult, uid_t?) {
        var posture: JailPosture?
        var leased: uid_t?
        let script = "trap 'exit 143' TERM; \(script) & wait"
        let r = try Command.run([Harness.swvm, "run", "--isolation=vm"] + options + [Harness.exampleImage, "--", "sh", "-c", script],
                                timeout: 300, environment: environment, onOutput: { out, pid in
                                    guard posture == nil, out.contains("up") else { return }
                                    if let vmm = VMMJailTests.vmm(of: pid) {
                                        posture = JailPosture.read(pid: vmm)
                                        #expect(VMMJailTests.status(vmm, "PPid") == String(pid), "the VMM's parent is swvm run")
                                        #expect(VMMJailTests.status(vmm, "NSpid")?.hasSuffix("\t1") == true,
                                                "the VMM is PID 1 of its namespace: NSpid \(VMMJailTests.status(vmm, "NSpid") ?? "?")")
                                    }
                                    #expect(posture != nil, "no VMM under swvm run (pid \(pid))")
                                    leased = posture?.threads.first?.uids.first
                                    kill(pid, SIGTERM)
                                })
        return (posture, r, leased)
    }

    func expectJailed(_ p: JailPosture, fileCapabilities: Bool) {
        #expect(p.threads.count >= 3, "main, device and vCPU threads at least: \(p.threads.count)")
        // Named in the jail too (they name themselves: no /proc needed).
        #expect(p.threads.contains { $0.name == "swvm-vcpu0" }, "thread names: \(p.threads.map(\.name))")
        let uid = p.threads.first?.uids.first ?? 0
        for t in p.threads {
            #expect(uid != 0 && t.uids == [uid, uid, uid, uid], "thread \(t.tid) uids \(t.uids)")
            #expect(t.gids.allSatisfy { $0 == uid } && t.gids.count == 4, "thread \(t.tid) gids \(t.gids)")
            #expect(t.groups.isEmpty, "thread \(t.tid) groups \(t.groups)")
            #expect(t.capBnd == 0 && t.capAmb == 0 && t.capInh == 0, "thread \(t.tid) bounding \(t.capBnd)")
            #expect(t.noNewPrivs, "thread \(t.tid) no_new_privs")
            #expect(t.seccomp == 2, "thread \(t.tid) seccomp \(t.seccomp)")
        }
        let withCaps = p.threads.filter { $0.capEff != 0 || $0.capPrm != 0 }
        if fileCapabilities {
            // The 9p server's thread alone: CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER.
            #expect(withCaps.count == 1 && withCaps.first?.capEff == 0xb && withCaps.first?.capPrm == 0xb,
                    "\(withCaps.map { ($0.tid, $0.capEff, $0.capPrm) })")
        } else {
            #expect(withCaps.isEmpty, "threads with capabilities: \(withCaps.map { ($0.tid, $0.capEff, $0.capPrm) })")
        }
        #expect(p.rootIsOwn && p.rootEntries.isEmpty, "root: own \(p.rootIsOwn), holds \(p.rootEntries)")
        for ns in ["mnt", "net", "ipc", "uts", "pid"] { #expect(p.ownNamespaces.contains(ns), "\(ns) namespace: \(p.ownNamespaces)") }
        #expect(p.limits["Max core file size"] == "0 0", "\(p.limits)")
        let nproc = p.limits["Max processes"]?.split(separator: " ").first.flatMap { Int($0) } ?? Int.max
        #expect(nproc < 64, "\(p.limits)")
        let nofile = p.limits["Max open files"]?.split(separator: " ").first.flatMap { Int($0) } ?? Int.max
        #expect(nofile < (fileCapabilities ? 20000 : 1024), "\(p.limits)")
    }

    func expectReleased(_ uid: uid_t?) {
        guard let uid else { return }
        #expect(!FS.exists(Path.join(VMMIdentity.directory, String(uid))), "the uid lease \(uid) outlived the run")
    }

    /// A warm start: the run before it saves the snapshot when the cache
    /// has none (a cold boot that writes one, jailed too).
    @Test func aWarmVMMIsJailed() throws {
        let first = try Command.run([Harness.swvm, "run", "--isolation=vm", Harness.exampleImage, "--", "true"], timeout: 300)
        #expect(first.status == 0, "the run that leaves a snapshot: \(first)")
        let (posture, r, uid) = try postureWhileRunning([], "echo up; sleep 60")
        let p = try #require(posture, "\(r)")
        expectJailed(p, fileCapabilities: false)
        // Nothing to write to a file: stdout and stderr are pipes, and a
        // warm start saves no snapshot.
        #expect(p.limits["Max file size"] == "0 0", "\(p.limits)")
        #expect(r.status == 137 || r.status == 143, "stopped: \(r)")
        expectReleased(uid)
    }

    /// --cold-boot: the guest boots from the kernel, without a snapshot;
    /// the VMM is jailed before its first KVM_RUN all the same.
    @Test func aColdBootedVMMIsJailed() throws {
        let (posture, r, uid) = try postureWhileRunning(["--cold-boot"], "echo up; sleep 60")
        let p = try #require(posture, "\(r)")
        expectJailed(p, fileCapabilities: false)
        #expect(p.limits["Max file size"] == "0 0", "no snapshot to write: \(p.limits)")
        #expect(r.status == 137 || r.status == 143, "stopped: \(r)")
        expectReleased(uid)
    }

    @Test func aVMMWithANetworkIsJailed() throws {
        let (posture, r, uid) = try postureWhileRunning(["--network", "bridge"], "ip -o -4 addr show eth0 | grep -q inet && echo up; sleep 60")
        let p = try #require(posture, "\(r)")
        expectJailed(p, fileCapabilities: false)
        expectReleased(uid)
    }

    /// With -v the 9p server keeps CAP_CHOWN, CAP_DAC_OVERRIDE and
    /// CAP_FOWNER on its own thread, and still keeps the guest's owners.
    @Test func aVMMWithVolumesKeepsOnlyTheFileServersCapabilities() throws {
        let dir = try TempDir("vmm-jail-share")
        defer { dir.cleanup() }
        let (posture, r, uid) = try postureWhileRunning(["-v", "\(dir.path):/data"],
                                                        "echo x > /data/f && chown 5:6 /data/f && echo up; sleep 60")
        let p = try #require(posture, "\(r)")
        expectJailed(p, fileCapabilities: true)
        #expect(p.limits["Max file size"] == "unlimited unlimited", "\(p.limits)")
        let st = FS.stat(Path.join(dir.path, "f"))
        #expect(st?.st_uid == 5 && st?.st_gid == 6, "owner of the guest's file: \(String(describing: st?.st_uid))")
        expectReleased(uid)
    }

    /// A test-only switch makes the jailed VMM open a host path: it cannot,
    /// and the run fails with 125 before the guest runs.
    @Test func aJailedVMMCannotOpenAHostPath() throws {
        let r = try Command.run([Harness.swvm, "run", "--isolation=vm", Harness.exampleImage, "--", "echo", "ran"],
                                timeout: 300, environment: ["SWVM_TEST_JAIL_OPEN": "/etc/hostname"])
        #expect(r.status == 125 && !r.out.contains("ran"), "\(r)")
        #expect(r.err.contains("VMM jail: test fault: the jailed VMM could not open /etc/hostname"), "\(r)")
    }

    /// SWVM_PROFILE (a development aid) works from the jailed VMM: its file
    /// and the kernel's System.map are opened before the jail (an empty
    /// root), and the jail's FSIZE leaves room for the profile.
    @Test func aGuestProfileIsWrittenFromTheJail() throws {
        let profile = "/tmp/swvm-jail-profile-\(getpid()).txt"
        defer { unlink(profile) }
        let r = try Command.run([Harness.swvm, "run", "--isolation=vm", Harness.exampleImage, "--", "echo", "ran"],
                                timeout: 300, environment: ["SWVM_PROFILE": profile])
        #expect(r.status == 0 && r.out == "ran\n", "\(r)")
        let text = (try? FS.readText(profile)) ?? ""
        #expect(text.hasPrefix("=== phase ") && text.contains("samples: ") && text.contains("# self"), "\(text.prefix(300))")
        // Kernel functions by name (not 0x addresses), so System.map was read.
        let names = text.split(separator: "\n").compactMap { line -> Substring? in
            let f = line.split(separator: "\t")
            return f.count == 3 ? f[2] : nil
        }
        #expect(names.contains { !$0.hasPrefix("0x") && $0 != "[user]" }, "\(text.prefix(600))")
    }

    /// A system call outside the jail's filter (socket, made through a
    /// test-only switch) ends the VM with a message naming it, never
    /// silently.
    @Test func aSeccompViolationEndsTheRunLoudly() throws {
        let r = try Command.run([Harness.swvm, "run", "--isolation=vm", Harness.exampleImage, "--", "echo", "ran"],
                                timeout: 300, environment: ["SWVM_TEST_JAIL_SOCKET": "1"])
        #expect(r.status == 125 && !r.out.contains("ran"), "\(r)")
        #expect(r.err.contains("the VMM's seccomp filter refused system call 41 on thread"), "\(r)")
        #expect(r.err.contains("(the main thread)"), "\(r)")
    }

    /// The same on the threads that serve the guest (their own filters
    /// would only fail the call with EPERM; the jail's filter traps it).
    @Test(arguments: ["vcpu", "device"])
    func aSeccompViolationOnAGuestThreadEndsTheRunLoudly(thread: String) throws {
        let r = try Command.run([Harness.swvm, "run", "--isolation=vm", Harness.exampleImage, "--", "echo", "ran"],
                                timeout: 300, environment: ["SWVM_TEST_JAIL_SOCKET": thread])
        #expect(r.status == 125 && !r.out.contains("ran"), "\(r)")
        #expect(r.err.contains("the VMM's seccomp filter refused system call 41 on thread"), "\(r)")
        #expect(!r.err.contains("(the main thread)"), "\(r)")
    }

    /// tgkill (the VMM's own kicks between its threads) reaches only the
    /// VMM's own threads: sent to another process (this test's, through a
    /// test-only switch) from a vCPU thread, the jail's filter traps it.
    @Test func tgkillToAnotherProcessEndsTheRunLoudly() throws {
        let r = try Command.run([Harness.swvm, "run", "--isolation=vm", Harness.exampleImage, "--", "echo", "ran"],
                                timeout: 300, environment: ["SWVM_TEST_JAIL_TGKILL": "vcpu:\(getpid())"])
        #expect(r.status == 125 && !r.out.contains("ran"), "\(r)")
        #expect(r.err.contains("the VMM's seccomp filter refused system call 234 on thread"), "\(r)")
    }

    /// ioctl is allowed for the KVM, tap and terminal requests the VMM
    /// makes only: another one (TIOCSTI, which would type into the
    /// terminal) traps, naming the request.
    @Test func anUnlistedIoctlEndsTheRunLoudly() throws {
        let r = try Command.run([Harness.swvm, "run", "--isolation=vm", Harness.exampleImage, "--", "echo", "ran"],
                                timeout: 300, environment: ["SWVM_TEST_JAIL_IOCTL": "1"])
        #expect(r.status == 125 && !r.out.contains("ran"), "\(r)")
        #expect(r.err.contains("refused system call 16 (ioctl request 0x5412) on thread"), "\(r)")
    }

    /// The same VM without the jail (the bench's switch) is root in the
    /// host's namespaces: what the checks above tell apart.
    @Test func theTestSwitchRunsTheVMMUnjailed() throws {
        let (posture, r, _) = try postureWhileRunning([], "echo up; sleep 60", environment: ["SWVM_TEST_UNJAILED_VMM": "1"])
        let p = try #require(posture, "\(r)")
        // Only the pid namespace, which the VMM is started in, not its jail's.
        #expect(p.threads.first?.uids.first == 0 && !p.rootIsOwn && p.ownNamespaces == ["pid"], "\(p.summary)")
    }
}


/// The pagemap descriptor a jailed VMM holds for its template save: the
/// page flags, never the physical frame numbers (which an opener with
/// CAP_SYS_ADMIN, as the VMM is before its jail, would otherwise see on
/// every later read).
@Suite struct PageFlagsTests {
    @Test func theHeldPagemapShowsPageFlagsButNoFrameNumbers() throws {
        guard geteuid() == 0 else { return }
        let page = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 4096)
        defer { page.deallocate() }
        memset(page, 1, 4096)
        func entry(_ fd: Int32) -> UInt64 {
            var e: UInt64 = 0
            #expect(pread(fd, &e, 8, off_t(UInt(bitPattern: page) / 4096 * 8)) == 8)
            return e
        }
        let frameNumber: UInt64 = (1 << 55) - 1
        let plain = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC)
        defer { close(plain) }
        #expect(entry(plain) & frameNumber != 0, "root's own pagemap shows frame numbers (the premise)")
        let held = swvm_jail_open_page_flags()
        #expect(held >= 0)
        defer { close(held) }
        let e = entry(held)
        #expect(e >> 63 & 1 == 1 && e >> 61 & 1 == 0, "a present anonymous page: \(String(e, radix: 16))")
        #expect(e & frameNumber == 0, "the frame number shows: \(String(e, radix: 16))")
    }
}

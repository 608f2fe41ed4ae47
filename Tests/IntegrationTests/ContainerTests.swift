#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import SwvmBase
import NativeThreads

/// `swvm run --isolation=container` for real: namespaces, mounts, cgroups,
/// capabilities and seccomp on this host.
@Suite(.serialized) struct ContainerTests {
    @Test func echoAndExitStatus() throws {
        let r = try Harness.run(["echo", "hello"])
        #expect(r.status == 0)
        #expect(r.out == "hello\n")
        #expect(r.err == "")
        #expect(try Harness.run(["sh", "-c", "exit 42"]).status == 42)
    }

    @Test func stdoutAndStderrStaySeparate() throws {
        let r = try Harness.run(["sh", "-c", "echo out; echo err >&2"])
        #expect(r.out == "out\n")
        #expect(r.err == "err\n")
    }

    @Test func pid1IgnoresUnhandledSignalsAsUnderDocker() throws {
        let r = try Harness.run(["sh", "-c", "kill -TERM $$; echo alive"])
        #expect(r.out == "alive\n" && r.status == 0)
        let trapped = try Harness.run(["sh", "-c", "trap 'exit 7' TERM; kill -TERM $$; sleep 1"])
        #expect(trapped.status == 7)
    }

    @Test func environmentWorkdirUserHostname() throws {
        let r = try Harness.run(["-e", "FOO=bar", "-w", "/tmp/work", "-u", "app", "--hostname", "box1"],
                                ["sh", "-c", "echo $FOO; pwd; id -u; id -g; id -G; hostname; cat /etc/hostname; echo $HOME"])
        #expect(r.status == 0, "\(r)")
        #expect(r.out == "bar\n/tmp/work\n1000\n1000\n1000 29 44\nbox1\nbox1\n/home/app\n")
    }

    @Test func pid1AndNamespaces() throws {
        let r = try Harness.run(["sh", "-c", "echo $$; ls /proc | grep -c '^[0-9]'; for n in net mnt pid uts ipc cgroup; do readlink /proc/self/ns/$n; done"])
        #expect(r.status == 0, "\(r)")
        let lines = r.out.split(separator: "\n").map(String.init)
        #expect(lines.first == "1")
        // Every namespace differs from the host's.
        for (i, ns) in ["net", "mnt", "pid", "uts", "ipc", "cgroup"].enumerated() {
            var buf = [CChar](repeating: 0, count: 128)
            let n = readlink("/proc/self/ns/\(ns)", &buf, 127)
            let host = String(decoding: buf[0..<max(0, n)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            #expect(lines.count > 2 + i && lines[2 + i] != host, "\(ns) namespace is the host's")
        }
    }

    @Test func onlyLoopbackNetwork() throws {
        let r = try Harness.run(["sh", "-c", "ls /sys/class/net; cat /sys/class/net/lo/operstate"])
        #expect(r.out == "lo\nunknown\n", "\(r)")
    }

    @Test func defaultCapabilitiesAndNoNewPrivs() throws {
        let r = try Harness.run(["sh", "-c", "grep -E '^(CapEff|CapBnd|CapInh|NoNewPrivs|Seccomp):' /proc/self/status"])
        #expect(r.status == 0)
        // Docker's 14 default capabilities: 0x00000000a80425fb.
        #expect(r.out.contains("CapEff:\t00000000a80425fb"))
        #expect(r.out.contains("CapBnd:\t00000000a80425fb"))
        #expect(r.out.contains("CapInh:\t0000000000000000"))
        #expect(r.out.contains("NoNewPrivs:\t1"))
        #expect(r.out.contains("Seccomp:\t2"))
        let added = try Harness.run(["--cap-add", "NET_ADMIN", "--cap-drop", "CHOWN"], ["sh", "-c", "grep CapEff /proc/self/status"])
        #expect(added.out.contains("CapEff:\t00000000a80435fa"), "\(added)")
        let user = try Harness.run(["-u", "app"], ["sh", "-c", "grep CapEff /proc/self/status"])
        #expect(user.out.contains("CapEff:\t0000000000000000"))
    }

    @Test func seccompBlocksWhatTheDefaultProfileForbids() throws {
        // unshare(2) needs CAP_SYS_ADMIN in the profile; swapon is never allowed.
        let r = try Harness.run(["sh", "-c", "unshare -n true; echo $?"])
        #expect(r.err.contains("Operation not permitted"), "\(r)")
        let unconfined = try Harness.run(["--security-opt", "seccomp=unconfined", "--cap-add", "SYS_ADMIN"], ["unshare", "-n", "true"])
        #expect(unconfined.status == 0, "\(unconfined)")
        let profile = "/tmp/swvm-seccomp-\(getpid()).json"
        try FS.writeText(profile, #"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#)
        defer { unlink(profile) }
        let custom = try Harness.run(["--security-opt", "seccomp=\(profile)"], ["mkdir", "/tmp/x"])
        #expect(custom.status != 0)
        #expect(custom.err.contains("Permission denied"), "\(custom)")
    }

    @Test func readOnlyRootAndTmpfs() throws {
        let r = try Harness.run(["--read-only", "--tmpfs", "/scratch"], ["sh", "-c", "touch /x 2>&1; touch /scratch/ok && echo scratch-ok"])
        #expect(r.out.contains("Read-only file system"), "\(r)")
        #expect(r.out.contains("scratch-ok"))
        let rw = try Harness.run(["sh", "-c", "echo data > /newfile && cat /newfile"])
        #expect(rw.out == "data\n")
        // The cached image was not modified by that write.
        let again = try Harness.run(["sh", "-c", "test -e /newfile && echo leaked || echo clean"])
        #expect(again.out == "clean\n")
    }

    @Test func volumesAndMaskedPaths() throws {
        let t = try TempDir("vol")
        defer { t.cleanup() }
        try FS.writeText(t.path + "/hostfile", "from host\n")
        let r = try Harness.run(["-v", "\(t.path):/data:ro"], ["sh", "-c", "cat /data/hostfile; touch /data/new 2>&1; cat /proc/kcore | head -c 1 | wc -c; ls /sys/firmware | wc -l; touch /proc/sys/x 2>&1"])
        #expect(r.out.hasPrefix("from host\n"), "\(r)")
        #expect(r.out.contains("Read-only file system"))
        #expect(r.out.contains("0\n0\n"))   // /proc/kcore is /dev/null, /sys/firmware an empty tmpfs
    }

    /// --userns: the container runs in its own user namespace whose root
    /// is host uid/gid 100000 (auto); the image's root-owned files appear
    /// owned by the container's root (the id-mapped image root), a file the
    /// host's root owns appears as the overflow id, and what the container
    /// writes to a volume belongs, on the host, to the mapped ids.
    @Test func userNamespaceMapsIdsForTheImageAndVolumes() throws {
        let t = try TempDir("userns")
        defer { t.cleanup() }
        #expect(chown(t.path, 100_000, 100_000) == 0)
        try FS.writeText(t.path + "/fromhost", "x")
        let r = try Harness.run(["--userns", "auto", "-v", "\(t.path):/data"], ["sh", "-c", """
            cat /proc/self/uid_map /proc/self/gid_map; readlink /proc/self/ns/user; id -u
            ls -ln /etc/passwd /data/fromhost | awk '{ print $3, $4, $NF }'
            touch /data/byroot /made && chmod 777 /data && ls -ln /made | awk '{ print $3, $4, $NF }'
            """])
        #expect(r.status == 0, "\(r)")
        let lines = r.out.split(separator: "\n").map { $0.split(separator: " ").joined(separator: " ") }
        #expect(lines.count == 7, "\(r)")
        guard lines.count == 7 else { return }
        #expect(lines[0] == "0 100000 65536" && lines[1] == "0 100000 65536", "\(r.out)")
        var link = [CChar](repeating: 0, count: 64)
        let n = readlink("/proc/self/ns/user", &link, 63)
        let hostUserNS = n > 0 ? String(decoding: link[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
        #expect(lines[2].hasPrefix("user:[") && lines[2] != hostUserNS, "\(lines[2]) vs the host's \(hostUserNS)")
        #expect(lines[3] == "0")
        #expect(lines[4] == "65534 65534 /data/fromhost" && lines[5] == "0 0 /etc/passwd" && lines[6] == "0 0 /made", "\(r.out)")
        // A user of the container (uid 1000) is host uid 101000.
        let user = try Harness.run(["--userns", "auto", "-u", "1000:1000", "-v", "\(t.path):/data"], ["touch", "/data/byuser"])
        #expect(user.status == 0, "\(user)")
        var st = stat()
        #expect(stat(t.path + "/byroot", &st) == 0 && st.st_uid == 100_000 && st.st_gid == 100_000, "\(st.st_uid):\(st.st_gid)")
        #expect(stat(t.path + "/byuser", &st) == 0 && st.st_uid == 101_000 && st.st_gid == 101_000, "\(st.st_uid):\(st.st_gid)")
    }

    @Test func devicesAndMounts() throws {
        let r = try Harness.run(["sh", "-c", "ls /dev | tr '\\n' ' '; echo; mount | grep -c ' /dev/pts '; mknod /dev/sda2 b 8 2 && head -c1 /dev/sda2 2>&1 | head -1"])
        #expect(r.out.contains("null"))
        #expect(r.out.contains("urandom"))
        #expect(r.out.contains("ptmx"))
        #expect(r.out.contains("1\n"))
        // A device node made in the container cannot be opened.
        #expect(r.out.contains("Permission denied") || r.out.contains("Operation not permitted"), "\(r)")
    }

    @Test func memoryLimitKillsWith137() throws {
        let r = try Harness.run(["-m", "32m"], ["sh", "-c", "x=$(head -c 80000000 /dev/zero | tr '\\0' a); echo ${#x}"])
        #expect(r.status == 137, "\(r)")
        let ok = try Harness.run(["-m", "64m"], ["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"])
        if FS.isDirectory("/sys/fs/cgroup/memory") { #expect(ok.out == "67108864\n") }
    }

    @Test func pidsLimitStopsAForkBomb() throws {
        let r = try Harness.run(["--pids-limit", "16"], ["sh", "-c", "n=0; while [ $n -lt 64 ]; do sleep 3 & n=$((n+1)); done; echo started"], timeout: 60)
        #expect(r.err.contains("can't fork") || r.err.contains("Resource temporarily unavailable"), "\(r)")
    }

    @Test func stdinIsPassedThroughWithEOF() throws {
        let r = try Harness.run(["-i"], ["sh", "-c", "cat; echo done"], stdin: Array("line1\nline2\n".utf8))
        #expect(r.out == "line1\nline2\ndone\n")
        let closed = try Harness.run(["cat"], stdin: Array("ignored\n".utf8))
        #expect(closed.out == "")   // without -i the process reads nothing, as with docker run
    }

    @Test func ulimitsApply() throws {
        let r = try Harness.run(["--ulimit", "nofile=123:456"], ["sh", "-c", "ulimit -n; ulimit -Hn"])
        #expect(r.out == "123\n456\n", "\(r)")
    }

    @Test func errorsHaveDockersExitCodes() throws {
        let notFound = try Harness.run(["no-such-command"])
        #expect(notFound.status == 127)
        #expect(notFound.err.contains("executable file not found"))
        #expect(notFound.err.split(separator: "\n").count == 1)
        let notExec = try Harness.run(["/etc/passwd"])
        #expect(notExec.status == 126)
        let badUser = try Harness.run(["-u", "nobody-here"], ["true"])
        #expect(badUser.status == 125)
        #expect(badUser.err.contains("nobody-here"))
        let noImage = try Harness.swvmCommand(["run", "/nonexistent-image", "--", "true"])
        #expect(noImage.status == 125)
        #expect(noImage.err == "swvm: image /nonexistent-image: no such file or directory\n")
        let badFlag = try Harness.run(["--memory", "lots"], ["true"])
        #expect(badFlag.status != 0)
    }

    @Test(.enabled(if: FS.exists("/usr/bin/script"), "needs script(1) for a pty")) func terminalWithSize() throws {
        // script(1) gives swvm a pty of its own; stty inside reports the size.
        let r = try Command.run(["/usr/bin/script", "-qec", "stty rows 33 cols 101; \(Harness.swvm) run -t \(Harness.exampleImage) -- sh -c 'tty; stty size'", "/dev/null"], timeout: 60)
        #expect(r.out.contains("/dev/pts/0"), "\(r)")
        #expect(r.out.contains("33 101"), "\(r)")
    }

    @Test(arguments: [SIGTERM, SIGINT, SIGHUP])
    func signalsReachTheProcess(_ sig: Int32) throws {
        let r = try Command.run([Harness.swvm, "run", Harness.exampleImage, "--", "sh", "-c",
                                 "trap 'echo got-signal; exit 3' TERM INT HUP; echo ready; while :; do sleep 0.1; done"],
                                timeout: 30, onStart: { pid in Signaller.after(1.0) { kill(pid, sig) } })
        #expect(r.status == 3, "\(r)")
        #expect(r.out == "ready\ngot-signal\n")
    }

    /// `sleep` as PID 1 has no handler, so SIGTERM does nothing (as under
    /// Docker): a second SIGTERM, or --stop-timeout running out, kills it.
    @Test func aSecondSignalOrTheStopTimeoutKillsThePID1() throws {
        let twice = try Command.run([Harness.swvm, "run", Harness.exampleImage, "--", "sleep", "30"], timeout: 30, onStart: { pid in
            Signaller.after(1.0) { kill(pid, SIGTERM) }
            Signaller.after(1.5) { kill(pid, SIGTERM) }
        })
        #expect(twice.status == 137, "\(twice)")
        #expect(twice.seconds < 10)
        let timed = try Command.run([Harness.swvm, "run", "--stop-timeout", "1", Harness.exampleImage, "--", "sleep", "30"], timeout: 30,
                                    onStart: { pid in Signaller.after(1.0) { kill(pid, SIGTERM) } })
        #expect(timed.status == 137, "\(timed)")
        #expect(timed.seconds > 1.9 && timed.seconds < 10, "\(timed.seconds)")
        #expect(try Harness.run(["--stop-timeout", "soon"], ["true"]).status == 125)
    }

    /// --init: a minimal init is PID 1; the workload (PID 2) gets the
    /// signal's default action, and its status is swvm's.
    @Test func initForwardsSignalsToTheWorkload() throws {
        let r = try Harness.run(["--init"], ["sh", "-c", "echo $$; exit 5"])
        #expect(r.out == "2\n" && r.status == 5, "\(r)")
        let t = try Command.run([Harness.swvm, "run", "--init", Harness.exampleImage, "--", "sleep", "30"], timeout: 30,
                                onStart: { pid in Signaller.after(1.0) { kill(pid, SIGTERM) } })
        #expect(t.status == 143, "\(t)")
        #expect(t.seconds < 10)
        let missing = try Harness.run(["--init"], ["no-such-command"])
        #expect(missing.status == 127 && missing.err.contains("executable file not found"), "\(missing)")
    }

    @Test func killedBySignalGives128PlusN() throws {
        // SIGKILL the container's init from the host: swvm reports 137.
        let r = try Command.run([Harness.swvm, "run", Harness.exampleImage, "--", "sleep", "30"], timeout: 30, onStart: { pid in
            Signaller.after(1.0) {
                if let child = Signaller.children(of: pid).first { kill(child, SIGKILL) }
            }
        })
        #expect(r.status == 137, "\(r)")
    }
}

/// Sends signals from a helper thread while a command runs.
enum Signaller {
    static func after(_ seconds: Double, _ body: @escaping @Sendable () -> Void) {
        _ = try? NativeThread {
            usleep(UInt32(seconds * 1_000_000))
            body()
        }
    }

    static func children(of pid: pid_t) -> [pid_t] {
        let text = (try? FS.readText("/proc/\(pid)/task/\(pid)/children")) ?? ""
        return text.split(separator: " ").compactMap { pid_t($0) }
    }
}

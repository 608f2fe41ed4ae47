#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import SwvmBase

/// -v at both levels: a container's bind mount and a VM's virtio-9p share
/// of the same host directory give the same results, seen from the run and
/// from the host. (Large files move with dd bs=1M: with cache=mmap every
/// read(2) of the guest is one 9p round trip, about 40 ms of emulated guest
/// kernel here for a 4 KiB one, and busybox's cp and sha256sum read 4 KiB
/// at a time.)
extension VMRunTests {
    static let volumeScript = """
        set -e
        cat /data/from-host
        echo written in the run > /data/from-run
        mkdir /data/d
        echo one > /data/d/f
        mv /data/d/f /data/d/g
        ln -s g /data/d/link
        echo "link: $(readlink /data/d/link) $(cat /data/d/link)"
        chmod 640 /data/d/g
        echo "mode: $(stat -c %a /data/d/g)"
        echo 0123456789 > /data/d/t
        truncate -s 4 /data/d/t
        echo "truncated: $(cat /data/d/t)"
        rm /data/d/t
        ls /data/d | tr '\\n' ' '; echo
        dd if=/data/host-big of=/data/big bs=1M 2>/dev/null
        echo "big: $(dd if=/data/big bs=1M 2>/dev/null | sha256sum | cut -c1-64)"
        echo "size: $(stat -c %s /data/big)"
        cmp /data/etc-link/passwd /etc/passwd && echo "etc-link: the run's own /etc"
        rm /data/d/link
        """

    @Test func volumesWorkTheSameAtBothLevels() throws {
        var outputs: [String: String] = [:]
        for isolation in ["container", "vm"] {
            let t = try TempDir("volume-\(isolation)")
            defer { t.cleanup() }
            try FS.writeText(t.path + "/from-host", "written on the host\n")
            #expect(symlink("/etc", t.path + "/etc-link") == 0)
            // 10 MiB the host wrote (the guest kernel's urandom is slow when emulated).
            var x: UInt64 = 0x9e37_79b9_7f4a_7c15
            let hostBig = (0..<(10 << 20)).map { _ in x = x &* 6364136223846793005 &+ 1442695040888963407; return UInt8(x >> 56) }
            try FS.writeFile(t.path + "/host-big", hostBig)
            let r = try Harness.run(["-v", "\(t.path):/data"], ["sh", "-c", Self.volumeScript], isolation: isolation, timeout: 900)
            #expect(r.status == 0, "\(isolation): \(r)")
            #expect(r.err.isEmpty, "\(isolation): \(r)")
            // What the host sees.
            #expect(try FS.readFile(t.path + "/from-run") == Array("written in the run\n".utf8), "\(isolation)")
            #expect(try FS.readFile(t.path + "/d/g") == Array("one\n".utf8), "\(isolation)")
            #expect(FS.stat(t.path + "/d/g").map { $0.st_mode & 0o7777 } == 0o640, "\(isolation)")
            #expect(!FS.exists(t.path + "/d/f") && !FS.exists(t.path + "/d/link") && !FS.exists(t.path + "/d/t"), "\(isolation)")
            let big = try FS.readFile(t.path + "/big", limit: 20 << 20)
            #expect(big.count == 10 << 20, "\(isolation)")
            #expect(big == hostBig, "\(isolation)")
            #expect(r.out.contains("big: \(SHA256.hash(hostBig))\n"), "\(isolation): \(r.out)")
            #expect(r.out.contains("written on the host\n"))
            #expect(r.out.contains("link: g one\n"))
            #expect(r.out.contains("mode: 640\n"))
            #expect(r.out.contains("truncated: 0123\n"))
            #expect(r.out.contains("etc-link: the run's own /etc\n"), "\(isolation): \(r.out)")
            outputs[isolation] = r.out
        }
        #expect(outputs["container"] == outputs["vm"], "\(outputs)")
    }

    /// Owners map 1:1 (Docker's default); :ro refuses writes with EROFS; the
    /// mount is nosuid and nodev at both levels.
    @Test func volumeOwnersReadOnlyAndFlags() throws {
        var outputs: [String: String] = [:]
        for isolation in ["container", "vm"] {
            let rw = try TempDir("volume-rw-\(isolation)")
            let ro = try TempDir("volume-ro-\(isolation)")
            defer { rw.cleanup(); ro.cleanup() }
            chmod(rw.path, 0o777)
            try FS.writeText(ro.path + "/keep", "kept\n")
            let script = """
                id -u; echo mine > /data/mine; stat -c '%u:%g' /data/mine
                touch /ro/new 2>&1; echo x >> /ro/keep 2>&1; rm /ro/keep 2>&1; cat /ro/keep
                awk '$5 == "/data" || $5 == "/ro" { print $5, $6 }' /proc/self/mountinfo
                """
            let r = try Harness.run(["-u", "1000:1000", "-v", "\(rw.path):/data", "-v", "\(ro.path):/ro:ro"], ["sh", "-c", script],
                                    isolation: isolation, timeout: 900)
            #expect(r.status == 0, "\(isolation): \(r)")
            #expect(r.out.hasPrefix("1000\n1000:1000\n"), "\(isolation): \(r.out)")
            #expect(FS.stat(rw.path + "/mine").map { ($0.st_uid, $0.st_gid) } ?? (0, 0) == (1000, 1000), "\(isolation)")
            #expect(r.out.contains("Read-only file system"), "\(isolation): \(r.out)")
            #expect(r.out.contains("kept\n"))
            #expect(r.out.contains("/data rw,nosuid,nodev"), "\(isolation): \(r.out)")
            #expect(r.out.contains("/ro ro,nosuid,nodev"), "\(isolation): \(r.out)")
            #expect(try FS.readFile(ro.path + "/keep") == Array("kept\n".utf8))
            #expect(!FS.exists(ro.path + "/new"))
            outputs[isolation] = r.out
        }
        #expect(outputs["container"] == outputs["vm"], "\(outputs)")
    }

    /// The 9p server's thread holds no CAP_FSETID (issue 23): guest root
    /// appending to a set-user-ID file of uid 1234 in the share leaves it
    /// without set-user-ID and set-group-ID on the host, as an unprivileged
    /// writer would. (The workload keeps FSETID, so the guest kernel leaves
    /// the bits; the host used to keep them too.)
    @Test func aGuestWriteClearsSetUserIDOnTheHost() throws {
        let t = try TempDir("volume-suid")
        defer { t.cleanup() }
        let f = t.path + "/tool"
        try FS.writeFile(f, Array("#!/bin/sh\n".utf8))
        try sys("chown") { chown(f, 1234, 1234) }
        try sys("chmod") { chmod(f, 0o6755) }
        let r = try Harness.run(["-v", "\(t.path):/mnt"], ["sh", "-c", "echo echo owned >> /mnt/tool"], isolation: "vm", timeout: 600)
        #expect(r.status == 0, "\(r)")
        #expect(try FS.readFile(f) == Array("#!/bin/sh\necho owned\n".utf8))
        let st = try #require(FS.stat(f))
        #expect(st.st_mode & 0o7777 == 0o755, "mode \(String(st.st_mode & 0o7777, radix: 8))")
        #expect(st.st_uid == 1234 && st.st_gid == 1234)
    }
}

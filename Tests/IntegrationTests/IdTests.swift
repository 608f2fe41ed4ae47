#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import SwvmBase

/// uid and gid 4294967295 are (uid_t)-1, which setresuid and setresgid
/// take as "unchanged": a run asked to use them used to run `id` as root
/// (issue 23). Each source refuses them with 125 and names itself, at
/// both levels, before anything runs. The VM cases need neither /dev/kvm
/// nor the guest kernel (the refusal comes first), so they run, and must
/// pass, on a host without KVM too.
@Suite(.serialized) struct IdTests {
    static let levels = ["container", "vm"]

    func expectRefused(_ r: CommandResult, _ message: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(!r.timedOut, "\(r)", sourceLocation: sourceLocation)
        #expect(r.status == 125, "\(r)", sourceLocation: sourceLocation)
        #expect(r.err.hasPrefix("swvm: ") && r.err.contains(message), "\(r)", sourceLocation: sourceLocation)
        // `id` never ran: nothing on stdout, no "uid=" anywhere.
        #expect(r.out.isEmpty && !r.err.contains("uid="), "\(r)", sourceLocation: sourceLocation)
    }

    /// `swvm run` of a hand-made image with its own image cache.
    func run(_ options: [String], image: String, cache: String, isolation: String) throws -> CommandResult {
        try Command.run([Harness.swvm, "run", "--isolation=\(isolation)"] + options + [image, "--", "id"],
                        timeout: 240, environment: ["SWVM_ROOT": cache])
    }

    /// A copy of the example image's root (busybox, with `id`) at `dir`.
    func busyboxRoot(_ dir: String) throws {
        #expect(try Harness.run(["true"]).status == 0)   // unpack the example image into the cache
        let index = try JSON.parse(try FS.readFile(Harness.exampleImage + "/index.json"))
        let digest = try #require(index["manifests"]?[0]?["digest"]?.string?.split(separator: ":").last)
        let r = try Subprocess.run(["cp", "-a", Path.join(SwvmPaths.imagesDir, String(digest), "rootfs"), dir])
        try #require(r.status == 0, "\(r.output)")
    }

    @Test(arguments: levels)
    func minusOneWithDashU(isolation: String) throws {
        for (user, message) in [("4294967295", "-u '4294967295': uid 4294967295 is (uid_t)-1"),
                                ("4294967295:4294967295", "-u '4294967295:4294967295': uid 4294967295 is (uid_t)-1"),
                                ("0:4294967295", "-u '0:4294967295': gid 4294967295 is (gid_t)-1"),
                                ("4294967296", "-u '4294967296': uid 4294967296 is out of range")] {
            expectRefused(try Harness.run(["-u", user], ["id"], isolation: isolation), message)
        }
    }

    /// The image's User, and names its /etc/passwd and /etc/group map to -1.
    @Test(arguments: levels)
    func minusOneFromTheImage(isolation: String) throws {
        let t = try TempDir("ids-image")
        defer { t.cleanup() }
        try busyboxRoot(t.path + "/root")
        try FS.writeText(t.path + "/root/etc/passwd", "root:x:0:0:root:/root:/bin/sh\nevil:x:4294967295:0::/:/bin/sh\nbad:x:7:4294967295::/:/bin/sh\n")
        try FS.writeText(t.path + "/root/etc/group", "root:x:0:\nevil:x:4294967295:\n")
        let cache = t.path + "/cache"
        expectRefused(try run(["-u", "evil"], image: t.path + "/root", cache: cache, isolation: isolation),
                      "the image's /etc/passwd, user 'evil': uid 4294967295 is (uid_t)-1")
        expectRefused(try run(["-u", "bad"], image: t.path + "/root", cache: cache, isolation: isolation),
                      "the image's /etc/passwd, user 'bad': gid 4294967295 is (gid_t)-1")
        expectRefused(try run(["-u", "0:evil"], image: t.path + "/root", cache: cache, isolation: isolation),
                      "the image's /etc/group, group 'evil': gid 4294967295 is (gid_t)-1")

        // An OCI image whose config says User 4294967295.
        let tar = try Subprocess.run(["tar", "-C", t.path + "/root", "-cf", t.path + "/layer.tar", "."])
        try #require(tar.status == 0, "\(tar.output)")
        var b = ImageBuilder()
        b.layers = [try FS.readFile(t.path + "/layer.tar")]
        b.user = "4294967295"
        try b.write(to: t.path + "/img")
        expectRefused(try run([], image: t.path + "/img", cache: cache, isolation: isolation),
                      "the image's User '4294967295': uid 4294967295 is (uid_t)-1")
    }

    /// A bundle's process.user: -1 is refused, 4294967296 is no longer
    /// truncated to uid 0.
    @Test(arguments: levels)
    func bundleIdsAreRangeChecked(isolation: String) throws {
        let t = try TempDir("ids-bundle")
        defer { t.cleanup() }
        try busyboxRoot(t.path + "/rootfs")
        for (user, message) in [(#"{"uid": 4294967295, "gid": 0}"#, "config.json process.user.uid: uid 4294967295 is (uid_t)-1"),
                                (#"{"uid": 4294967296, "gid": 0}"#, "config.json process.user.uid: uid 4294967296 is out of range"),
                                (#"{"uid": 0, "gid": 4294967295}"#, "config.json process.user.gid: gid 4294967295 is (gid_t)-1"),
                                (#"{"uid": 0, "gid": 0, "additionalGids": [4294967295]}"#,
                                 "config.json process.user.additionalGids[0]: gid 4294967295 is (gid_t)-1")] {
            try FS.writeText(t.path + "/config.json", #"{"ociVersion": "1.0.2", "process": {"args": ["id"], "cwd": "/", "user": "# + user
                             + #"}, "root": {"path": "rootfs"}}"#)
            expectRefused(try run([], image: t.path, cache: t.path + "/cache", isolation: isolation), message)
        }
    }
}

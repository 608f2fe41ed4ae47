#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import MicroVM
import RuntimeSpec
@testable import SwvmBase

/// config.json as a VM sees it: the root and host directories as 9p
/// shares, host files copied, namespaces a guest can give; the rest refused
/// naming the field.
@Suite struct VMMOCIPlanTests {
    func spec(mounts: [OCIMount] = [], namespaces: [OCINamespace] = [OCINamespace(type: "network"), OCINamespace(type: "mount")]) -> RunSpec {
        var spec = RunSpec(id: "t", rootfs: "/srv/root", process: ProcessSpec(args: ["true"], env: [], cwd: "/", uid: 0, gid: 0,
                                                                                additionalGids: [], user: "0:0"),
                           hostname: "", capabilities: [], seccomp: nil)
        var oci = OCISettings(rootPath: "/srv/root")
        oci.mounts = mounts
        oci.namespaces = namespaces
        spec.oci = oci
        return spec
    }

    @Test func sharesAndCopies() throws {
        let dir = "/tmp/swvm-plan-\(getpid())"
        try FS.makeDirectories(dir)
        defer { try? FS.removeTree(dir) }
        try FS.writeText(Path.join(dir, "hosts"), "127.0.0.1 localhost\n")
        let plan = try VMMOCIPlan(spec(mounts: [
            OCIMount(destination: "/proc", type: "proc", source: "proc", options: []),
            OCIMount(destination: "/data", type: "bind", source: dir, options: ["rbind", "ro"]),
            OCIMount(destination: "/etc/hosts", type: "bind", source: Path.join(dir, "hosts"), options: ["bind"]),
        ]))
        #expect(plan.shares.map(\.hostPath) == ["/srv/root", dir] && plan.shares.map(\.readOnly) == [false, true])
        let mounts = plan.guestSpec.oci?.mounts ?? []
        #expect(plan.guestSpec.oci?.rootPath == "/volumes/0")
        #expect(mounts.map(\.source) == ["proc", "/volumes/1", "/.swvm-files/0"])
        #expect(plan.files.map(\.contents) == ["127.0.0.1 localhost\n"])
    }

    @Test func refusals() throws {
        func message(_ s: RunSpec) -> String {
            do { _ = try VMMOCIPlan(s); return "" } catch { return (error as? SwvmError)?.message ?? "\(error)" }
        }
        #expect(message(spec(namespaces: [OCINamespace(type: "mount")])).contains("no network namespace"))
        #expect(message(spec(namespaces: [OCINamespace(type: "network"), OCINamespace(type: "user")])).contains("linux.namespaces[1] (user)"))
        #expect(message(spec(namespaces: [OCINamespace(type: "network"), OCINamespace(type: "ipc", path: "/proc/1/ns/ipc")]))
            .contains("linux.namespaces[1] (ipc).path"))
        #expect(message(spec(mounts: [OCIMount(destination: "/x", type: "bind", source: "/no/such/dir", options: ["bind"])]))
            .contains("mounts[0].source"))
        #expect(message(spec(mounts: [OCIMount(destination: "/x", type: "bind", source: "/dev/null", options: ["bind"])]))
            .contains("not devices"))
        // A network namespace by path (a pod's) is the VMM's to join: the
        // workload stays in guest-init's, where eth0 is the pod's, so no new one.
        let pod = try VMMOCIPlan(spec(namespaces: [OCINamespace(type: "network", path: "/run/netns/x"), OCINamespace(type: "mount")]))
        #expect(pod.newNamespaces & 0x4000_0000 == 0)
        let own = try VMMOCIPlan(spec(namespaces: [OCINamespace(type: "network"), OCINamespace(type: "mount")]))
        #expect(own.newNamespaces & 0x4000_0000 != 0)
    }
}

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
        #expect(message(spec(namespaces: [OCINamespace(type: "network"), OCINamespace(type: "pid", path: "/proc/1/ns/pid")]))
            .contains("linux.namespaces[1] (pid).path"))
        // A pod on the node's network: its containers join the host's.
        #expect(message(spec(namespaces: [OCINamespace(type: "network", path: "/proc/self/ns/net")]))
            .contains("linux.namespaces[0] (network).path \"/proc/self/ns/net\": the host's network namespace"))
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

    /// A CRI engine has a pod's containers join the sandbox's uts and ipc
    /// namespaces by path: in a VM they are the guest's own, the hostname
    /// copied from the pod's (read in its namespace) when config.json
    /// gives none.
    @Test func aPodsUTSAndIPCNamespacesBecomeTheGuestsOwn() throws {
        var u = utsname()
        uname(&u)
        let host = withUnsafeBytes(of: u.nodename) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let plan = try VMMOCIPlan(spec(namespaces: [OCINamespace(type: "network"), OCINamespace(type: "uts", path: "/proc/self/ns/uts"),
                                                    OCINamespace(type: "ipc", path: "/proc/self/ns/ipc")]))
        #expect(plan.guestSpec.hostname == host && !host.isEmpty)
        #expect(plan.newNamespaces & 0x0400_0000 != 0 && plan.newNamespaces & 0x0800_0000 != 0, "new uts and ipc namespaces in the guest")
        var named = spec(namespaces: [OCINamespace(type: "network"), OCINamespace(type: "uts", path: "/proc/self/ns/uts")])
        named.hostname = "given"
        #expect(try VMMOCIPlan(named).guestSpec.hostname == "given")
        #expect(throws: SwvmError.self) { try VMMOCIPlan(spec(namespaces: [OCINamespace(type: "network"), OCINamespace(type: "uts", path: "/no/such/ns")])) }
    }
}

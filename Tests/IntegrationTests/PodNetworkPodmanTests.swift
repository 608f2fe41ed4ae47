#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import SwvmBase

/// podman at the VM level on its own network: netavark makes the pod's
/// namespace and veth, config.json names the namespace by path, and the
/// VMM joins it to the guest's eth0 (PodNetwork), so `-p` reaches a server
/// in the VM as it reaches one in a container.
@Suite(.serialized, .enabled(if: EngineRuntime.podmanReady && Harness.vmReady && !EngineRuntime.isRunc,
                             "needs podman, conmon, skopeo, netavark, /dev/kvm, the guest kernel and guest-init"))
struct PodNetworkPodmanTests {
    /// The swvm-vm runtime: PodmanVMTests' link, or with SWVM_CACHE set (a
    /// private cache, which podman does not pass on to its runtime) a
    /// script that sets it and runs the binary under the name swvm-vm.
    static func vmRuntime(in dir: String) throws -> String {
        guard let cache = FS.environment("SWVM_CACHE"), !cache.isEmpty else { return try PodmanVMTests.vmLink(in: dir) }
        let bin = Path.join(dir, "bin")
        try FS.makeDirectories(bin)
        let script = Path.join(bin, "swvm-vm")
        try FS.writeText(script, "#!/bin/bash\nexport SWVM_CACHE='\(cache)'\nexec -a swvm-vm '\(Harness.swvm)' \"$@\"\n")
        chmod(script, 0o755)
        return script
    }

    @Test func publishedPortReachesAServerInTheVM() throws {
        try Podman.with { podman in
            let port = PodmanTests.port(1)
            let runtime = ["--runtime", try Self.vmRuntime(in: podman.dir)]
            let server = "echo served-by-vm > /tmp/index.html; httpd -p 80 -h /tmp; uname -r; echo listening; " +
                "trap 'exit 0' TERM; while true; do sleep 0.2; done"
            let started = try podman(runtime + ["run", "-d", "--name", "web", "-p", "\(port):80", podman.image, "sh", "-c", server],
                                     timeout: 300)
            #expect(started.status == 0, "\(started)")
            let log = try podman.waitForLog("web", "listening", seconds: 120)
            #expect(log.contains(PodmanVMTests.guestRelease), "a VM, not a container: \(log)")
            #expect(try NetworkTests.httpGet("127.0.0.1", port).hasSuffix("served-by-vm\n"))
            let address = try podman.inspect("web", "{{.NetworkSettings.IPAddress}}")
            #expect(try NetworkTests.httpGet(address, 80).hasSuffix("served-by-vm\n"))
            let mac = try podman.inspect("web", "{{.NetworkSettings.MacAddress}}")
            let exec = try podman(["exec", "web", "cat", "/sys/class/net/eth0/address"])
            #expect(exec.status != 0 || exec.out.trimmingWhitespace == mac, "eth0 is the pod's veth: \(exec) vs \(mac)")
            #expect(try podman(runtime + ["stop", "-t", "5", "web"], timeout: 120).status == 0)
            #expect(try podman(runtime + ["rm", "web"]).status == 0)
        }
    }
}

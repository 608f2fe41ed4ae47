#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import SwvmBase

/// Finds what the integration tests run: the swvm binary built beside the
/// tests, the example image, the guest kernel and guest-init.
enum Harness {
    /// Under script(1) on a 33x101 pty, `shCommand` (ending in `sh -c`)
    /// runs a script that waits until its terminal is no longer 33x101 and
    /// prints its size, started as a background job while the caller's
    /// terminal is resized to 10x20 (and SIGWINCH sent) every second.
    static func resizedWhileRunning(_ shCommand: String, timeout: Double) throws -> CommandResult {
        let wait = "i=0; while [ \"$(stty size)\" = \"33 101\" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; stty size"
        return try Command.run(["/usr/bin/script", "-qec",
            "stty rows 33 cols 101; \(shCommand) '\(wait)' & for i in 1 2 3 4 5 6 7 8 9 10; do sleep 1; stty rows 10 cols 20; kill -WINCH $! 2>/dev/null; done; wait",
            "/dev/null"], timeout: timeout)
    }

    static let repo = TestPaths.repo
    static let swvm = TestPaths.swvm

    static let exampleImage: String = {
        let p = Path.join(repo, "examples/busybox")
        if !FS.exists(Path.join(p, "index.json")) {
            // Every integration test needs it: a failed build ends the run
            // loudly rather than failing each test for an unclear reason.
            let built: Subprocess.Result
            do { built = try Subprocess.run([Path.join(repo, "scripts/build-example-image.sh")]) } catch {
                fatalError("scripts/build-example-image.sh failed: \(error)")
            }
            guard built.status == 0 else { fatalError("scripts/build-example-image.sh exited \(built.status): \(built.output)") }
            guard FS.exists(Path.join(p, "index.json")) else { fatalError("scripts/build-example-image.sh made no \(p)/index.json") }
        }
        return p
    }()

    static var kernelAvailable: Bool { FS.exists(Path.join(SwvmPaths.cacheRoot, "kernel/current/vmlinux")) }
    static var guestInitAvailable: Bool { FS.exists(Path.join(SwvmPaths.cacheRoot, "guest-init/current/init")) }
    static var kvmAvailable: Bool { access("/dev/kvm", R_OK | W_OK) == 0 }
    static var vmReady: Bool { kernelAvailable && guestInitAvailable && kvmAvailable }

    /// `swvm run --isolation=... [options] IMAGE -- command...`
    static func run(_ options: [String], _ command: [String], isolation: String = "container", image: String? = nil,
                    stdin: [UInt8]? = nil, timeout: Double = 240) throws -> CommandResult {
        try Command.run([swvm, "run", "--isolation=\(isolation)"] + options + [image ?? exampleImage, "--"] + command,
                        stdin: stdin, timeout: timeout)
    }

    static func run(_ command: [String], isolation: String = "container", image: String? = nil,
                    stdin: [UInt8]? = nil, timeout: Double = 240) throws -> CommandResult {
        try run([], command, isolation: isolation, image: image, stdin: stdin, timeout: timeout)
    }

    static func swvmCommand(_ args: [String], stdin: [UInt8]? = nil, timeout: Double = 240) throws -> CommandResult {
        try Command.run([swvm] + args, stdin: stdin, timeout: timeout)
    }
}

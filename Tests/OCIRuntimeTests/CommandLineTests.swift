#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import OCIRuntime
@testable import SwvmBase

/// The built swvm binary (beside the tests), as podman and containerd run it.
enum Binary {
    static let repo = TestPaths.repo
    static let swvm = TestPaths.swvm

    /// Until swvm exits: `create` leaves the container's init holding its
    /// stdout and stderr (as runc's does), which would otherwise keep the
    /// run going until the timeout.
    static func run(_ args: [String], stdin: [UInt8]? = nil, timeout: Double = 60) throws -> CommandResult {
        try Command.run([swvm] + args, stdin: stdin, timeout: timeout, untilExit: true)
    }
}

@Suite struct CommandLineTests {
    @Test func versionNamesTheSpec() throws {
        let r = try Binary.run(["--version"])
        #expect(r.status == 0 && r.out.contains("spec: 1.1.0"), "\(r)")
    }

    /// runc's convention: exit 1, the message on stderr, and in --log as a
    /// logrus JSON line (podman shows that line's msg to its user).
    @Test func anErrorIsExit1OnStderrAndInTheLog() throws {
        let root = try ScratchRoot()
        let log = Path.join(root.path, "log.json")
        let r = try Binary.run(["--root", root.path, "--log", log, "--log-format", "json", "state", "nothere"])
        #expect(r.status == 1, "\(r)")
        #expect(r.err.contains("container nothere does not exist"), "\(r)")
        let line = try JSON.parse(try FS.readText(log).split(separator: "\n").last.map(String.init) ?? "")
        #expect(line["level"]?.string == "error")
        #expect(line["msg"]?.string == "container nothere does not exist")
        #expect(line["time"]?.string?.hasSuffix("Z") == true)
        // A usage error too.
        let u = try Binary.run(["--root", root.path, "--log", log, "--log-format", "json", "kill"])
        #expect(u.status == 1, "\(u)")
        #expect(try FS.readText(log).split(separator: "\n").count == 2)
    }

    @Test func refusedInputs() throws {
        let root = try ScratchRoot()
        for (args, message) in [
            (["--systemd-cgroup", "list"], "--systemd-cgroup"),
            (["--root", root.path, "create", "--bundle", root.path, "a/b"], "invalid container id"),
            (["--root", root.path, "create", "--bundle", root.path, String(repeating: "x", count: 1025)], "1025 bytes"),
            (["--root", root.path, "kill", "c1", "SIGNOPE"], "unknown signal \"SIGNOPE\""),
            (["--root", root.path, "--log-format", "xml", "list"], "--log-format xml"),
            (["--root", root.path, "create", "--bundle", "/nonexistent-bundle", "c1"], "/nonexistent-bundle"),
        ] {
            let r = try Binary.run(args)
            #expect(r.status == 1 && r.err.contains(message), "\(args): \(r)")
        }
        #expect(try FS.listDirectory(root.path).isEmpty)
    }

    /// `swvm run IMAGE` stays Docker's (exit 125 for swvm's own failure);
    /// with --bundle or a runc flag first it is runc's (exit 1).
    @Test func runIsDockersUnlessItNamesABundle() throws {
        let docker = try Binary.run(["run", "/nonexistent-image", "true"])
        #expect(docker.status == 125, "\(docker)")
        let root = try ScratchRoot()
        let runc = try Binary.run(["run", "--bundle", "/nonexistent-bundle", "c1"])
        #expect(runc.status == 1 && runc.err.contains("/nonexistent-bundle"), "\(runc)")
        let global = try Binary.run(["--root", root.path, "run", "c1"])
        #expect(global.status == 1, "\(global)")
    }

    @Test func featuresAndEmptyLists() throws {
        let root = try ScratchRoot()
        let f = try Binary.run(["features"])
        let json = try JSON.parse(f.out)
        #expect(json["ociVersionMax"]?.string == "1.1.0" && json["hooks"]?.array?.count == 6, "\(f)")
        #expect(json["linux"]?["capabilities"]?.array?.contains("CAP_SYS_ADMIN") == true)
        let list = try Binary.run(["--root", root.path, "list", "--format", "json"])
        #expect(list.status == 0 && list.out == "[]\n", "\(list)")
        let quiet = try Binary.run(["--root", root.path, "list", "-q"])
        #expect(quiet.status == 0 && quiet.out.isEmpty, "\(quiet)")
        // --root that does not exist yet is an empty list (podman's first call).
        let fresh = try Binary.run(["--root", Path.join(root.path, "not-yet"), "list", "-q"])
        #expect(fresh.status == 0, "\(fresh)")
        // delete --force of what does not exist is not an error (as runc).
        let d = try Binary.run(["--root", root.path, "delete", "--force", "nothere"])
        #expect(d.status == 0, "\(d)")
    }
}

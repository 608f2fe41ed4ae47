#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import SwvmBase

/// Every usage error: exit 125 and one line on stderr naming the option
/// (or the file) and the problem, as Docker does. None of these reaches a
/// container or a VM.
@Suite struct UsageErrorTests {
    static let cases: [(args: [String], naming: [String])] = [
        (["--isolation=foo"], ["--isolation", "foo"]),
        (["--memory", "-5"], ["--memory", "-5"]),
        (["--tmpfs", ""], ["--tmpfs"]),
        (["--security-opt", ""], ["--security-opt"]),
        (["--security-opt", "seccomp="], ["--security-opt", "seccomp"]),
        (["--cpus", "1e-9"], ["--cpus", "1e-9"]),
        (["--cpus", "nan"], ["--cpus"]),
        (["--pids-limit", "99999999999"], ["--pids-limit", "99999999999"]),
        (["--pids-limit", "-7"], ["--pids-limit"]),
        (["--pids-limit", "abc"], ["--pids-limit", "abc"]),
        (["--env-file", "/tmp"], ["--env-file", "/tmp", "directory"]),
        (["--cap-add", ""], ["--cap-add"]),
        (["--no-such-option"], ["--no-such-option"]),
        (["--cpus", "1000"], ["--cpus", "online CPU"]),
        (["--cpu-profile", "fast"], ["--cpu-profile", "fast"]),
    ]

    @Test(arguments: cases.indices)
    func usageErrorIsOneLineAndExit125(_ i: Int) throws {
        let c = Self.cases[i]
        let r = try Command.run([Harness.swvm, "run"] + c.args + [Harness.exampleImage, "--", "true"], timeout: 30)
        #expect(r.status == 125, "\(c.args): \(r)")
        #expect(r.err.split(separator: "\n").count == 1, "\(c.args): \(r)")
        for word in c.naming { #expect(r.err.contains(word), "\(c.args): \(r)") }
    }

    @Test func cpusAboveTheHostReportsItsFigure() throws {
        let host = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        let r = try Command.run([Harness.swvm, "run", "--cpus", String(host + 1), Harness.exampleImage, "--", "true"], timeout: 30)
        #expect(r.status == 125 && r.err.contains("the host has \(host) online CPU"), "\(r)")
        // The host's own count is fine.
        let ok = try Command.run([Harness.swvm, "run", "--cpus", String(host), Harness.exampleImage, "--", "true"], timeout: 60)
        #expect(ok.status == 0, "\(ok)")
    }

    /// Fails before boot: no VM is made.
    @Test func vmMemoryAboveMemTotalReportsItsFigure() throws {
        let total = try #require(HostResources.memTotal)
        let r = try Command.run([Harness.swvm, "run", "--isolation=vm", "--memory", "\((total >> 30) + 2)g", Harness.exampleImage, "--", "true"],
                                timeout: 30)
        #expect(r.status == 125, "\(r)")
        #expect(r.err.contains("--memory") && r.err.contains("MemTotal") && r.err.contains(ByteSize.format(total)), "\(r)")
        #expect(r.seconds < 10)
    }

    @Test func emptyDirectoryIsNotAnImage() throws {
        let t = try TempDir("empty-image")
        defer { t.cleanup() }
        let r = try Command.run([Harness.swvm, "run", t.path, "--", "echo", "hi"], timeout: 30)
        #expect(r.status == 125, "\(r)")
        #expect(r.err.contains(t.path) && r.err.contains("empty directory is not an image"), "\(r)")
        #expect(r.err.split(separator: "\n").count == 1)
    }

    /// compare's and boot's options with a fixed set of values are enums:
    /// a bad value is a usage error before anything runs.
    @Test func enumOptionsOfCompareAndBoot() throws {
        for args in [["compare", "--format", "xml", Harness.exampleImage], ["boot", "--cpu-profile", "fast"]] {
            let r = try Command.run([Harness.swvm] + args, timeout: 30)
            #expect(r.status == 125 && r.err.split(separator: "\n").count == 1, "\(args): \(r)")
            #expect(r.err.contains(args[1]) && r.err.contains(args[2]), "\(args): \(r)")
        }
    }

    /// Help and --version are not errors.
    @Test func helpAndVersionStillWork() throws {
        let h = try Command.run([Harness.swvm, "run", "--help"], timeout: 30)
        #expect(h.status == 0 && h.out.contains("--isolation"), "\(h)")
        let v = try Command.run([Harness.swvm, "--version"], timeout: 30)
        #expect(v.status == 0 && !v.out.isEmpty, "\(v)")
    }
}

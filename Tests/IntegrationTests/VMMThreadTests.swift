#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import SwvmBase

/// The VMM's threads, under their seccomp filters (VMMSeccompTests tries
/// each refusal), still do their work: what a filter too tight broke, end
/// to end.
@Suite(.serialized, .enabled(if: Harness.vmReady, "needs /dev/kvm, the guest kernel and guest-init"))
struct VMMThreadTests {
    /// After a cold boot the device thread sends the settings and wires
    /// stdin, checking with an epoll of its own whether stdin can be
    /// polled. Its filter used to refuse that epoll, so a regular file as
    /// stdin was taken for pollable, never read, and the run hung.
    @Test func coldBootReadsStdinFromAFile() throws {
        let dir = try TempDir("vmm-stdin")
        defer { dir.cleanup() }
        let input = Path.join(dir.path, "input")
        try FS.writeFile(input, Array("from a file\n".utf8))
        let r = try Command.run(["/bin/sh", "-c", "exec \"$0\" run --isolation=vm --cold-boot -i \"$1\" -- cat < \"$2\"",
                                 Harness.swvm, Harness.exampleImage, input], timeout: 300)
        #expect(r.status == 0 && r.out == "from a file\n", "\(r)")
    }
}

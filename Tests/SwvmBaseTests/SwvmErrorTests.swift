#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import SwvmBase

/// SwvmError carries a failed system call's parts, and builds its message
/// from them.
@Suite struct SwvmErrorTests {
    @Test func aSystemErrorKeepsItsPartsAndBuildsItsMessage() {
        let e = SwvmError.system(step: "open", path: "/no/such", errno: ENOENT)
        #expect(e.code == .systemCall && e.step == "open" && e.path == "/no/such" && e.errnoValue == ENOENT)
        #expect(e.message == "open /no/such: \(errnoText(ENOENT))")
        let plain = SwvmError(.invalidArgument, "bad flag")
        #expect(plain.step == nil && plain.path == nil && plain.errnoValue == nil && plain.message == "bad flag")
    }

    /// A read that fails names what it read, not just "read".
    @Test func aFailedReadNamesItsFile() throws {
        let fd = try FileDescriptor.open("/", O_RDONLY | O_DIRECTORY)
        do {
            _ = try fd.readAll()
            Issue.record("reading a directory succeeded")
        } catch let e as SwvmError {
            #expect(e.path == "/" && e.errnoValue == EISDIR)
            #expect(e.message == "read /: \(errnoText(EISDIR))")
        }
        let anonymous = FileDescriptor(dup(fd.raw))
        #expect(throws: SwvmError.self) { _ = try anonymous.read(upTo: 4) }
        do { _ = try anonymous.read(upTo: 4) } catch let e as SwvmError {
            #expect(e.message.hasPrefix("read file descriptor \(anonymous.raw): "))
        }
    }
}

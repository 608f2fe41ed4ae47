#if canImport(Glibc)
import Glibc
#endif
import CConfinement
import Testing
@testable import ContainerRuntime
@testable import SwvmBase

/// The container child's reports go through the one frame reader with the
/// guest -> host limit (swvm_run_settings.h): a longer one is an error, not
/// skipped.
@Suite struct ChildReportLimitTests {
    @Test func aReportOverTheLimitIsAnError() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        let read = FileDescriptor(fds[0])
        // A header claiming 2 MiB, then end of stream.
        #expect(swvm_frame_write(fds[1], MSG_CONFINED.rawValue, nil, 2 << 20) == 0)
        close(fds[1])
        #expect(throws: SwvmError.self) { _ = try Container.readChildReport(read) }
    }
}

#if canImport(Glibc)
import Glibc
#endif
import CConfinement
import Testing
@testable import SwvmBase

/// The container child's report and the formatter it may use
/// (swvm_format.h, swvm_error_write): C on one side, Swift on the other.
@Suite struct ChildReportTests {
    func format(_ size: Int, _ fmt: String, _ args: [CVarArg]) -> (text: String, length: Int) {
        var buf = [CChar](repeating: 0x55, count: max(size, 1))
        let n = withVaList(args) { swvm_vformat(&buf, size, fmt, $0) }
        return (size == 0 ? "" : String(cString: buf), n)
    }

    @Test func formatsItsSubsetAsPrintfDoes() {
        "path".withCString { s in
            "abcdef".withCString { t in
                #expect(format(64, "%s/lower %d %u %x %%", [s, Int32(-42), UInt32(7), UInt32(255)]).text == "path/lower -42 7 ff %")
                #expect(format(64, "%.*s|%c", [Int32(3), t, Int32(65)]).text == "abc|A")
                #expect(format(64, "%llu %lld %lu", [UInt64.max, Int64.min, UInt(12)]).text == "18446744073709551615 -9223372036854775808 12")
            }
        }
    }

    @Test func reportsTheFullLengthAndNeverWritesPastTheBuffer() {
        "0123456789".withCString { s in
            let cut = format(5, "%s", [s])
            #expect(cut.text == "0123" && cut.length == 10)
            #expect(format(0, "%s", [s]).length == 10)
        }
    }

    @Test func anErrorReportCrossesFromCToSwift() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        let text = Array("mount proc on /proc".utf8)
        #expect(text.withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { swvm_error_write(fds[1], SWVM_ERR_SYSTEM_CALL.rawValue, ENOENT, $0.baseAddress, UInt32($0.count)) }
        } == 0)
        close(fds[1])
        var type: UInt32 = 0, length: UInt32 = 0
        let frame = try #require(swvm_frame_read_alloc(fds[0], &type, &length, 4096))
        defer { free(frame) }
        #expect(type == MSG_ERROR.rawValue)
        let e = try #require(SwvmError.decode(Array(UnsafeBufferPointer(start: frame, count: Int(length)))))
        #expect(e.code == .systemCall)
        #expect(e.message == "mount proc on /proc: No such file or directory")
        #expect(e.exitStatus == 125)
    }

    @Test func exitStatusesFollowDocker() {
        #expect(SwvmError(.commandNotFound, "").exitStatus == 127)
        #expect(SwvmError(.commandNotExecutable, "").exitStatus == 126)
        #expect(SwvmError(.invalidImage, "").exitStatus == 125)
    }

    @Test func aMalformedReportIsNotAnError() {
        #expect(SwvmError.decode([]) == nil)
        #expect(SwvmError.decode([1, 0, 0]) == nil)
        #expect(SwvmError.decode(le32(99) + le32(0) + Array("x".utf8)) == nil)
    }
}

import Testing
@testable import SwvmBase

@Suite struct PathTests {
    @Test func normalizesInsideARoot() {
        #expect(Path.normalizeInRoot("a/./b/../c").path == "/a/c")
        #expect(Path.normalizeInRoot("a/./b/../c").escaped == false)
        #expect(Path.normalizeInRoot("../../etc/passwd") == ("/etc/passwd", true))
        #expect(Path.normalizeInRoot("/a/../../b").escaped)
    }

    @Test func dirnameAndBasename() {
        #expect(Path.dirname("/a/b/c") == "/a/b")
        #expect(Path.dirname("/a") == "/")
        #expect(Path.dirname("a") == ".")
        #expect(Path.basename("/a/b/") == "b")
        #expect(Path.join("/a", "b", "/c") == "/a/b/c")
    }
}

@Suite struct ByteSizeTests {
    @Test(arguments: [("512m", UInt64(512) << 20), ("1g", UInt64(1) << 30), ("64k", UInt64(65536)), ("1024", UInt64(1024)),
                      ("2GiB", UInt64(2) << 30), ("1.5m", UInt64(1572864)), ("256M", UInt64(256) << 20)])
    func parsesDockerSizes(_ text: String, _ bytes: UInt64) throws {
        #expect(try ByteSize.parse(text) == bytes)
    }

    @Test(arguments: ["", "m", "12q", "-1", "1..2m"])
    func rejectsBadSizes(_ text: String) {
        #expect(throws: SwvmError.self) { try ByteSize.parse(text) }
    }

    @Test func formats() {
        #expect(ByteSize.format(256 << 20) == "256 MiB")
        #expect(ByteSize.format(1536 << 10) == "1.5 MiB")
        #expect(formatFixed(3.14159, 2) == "3.14")
    }
}

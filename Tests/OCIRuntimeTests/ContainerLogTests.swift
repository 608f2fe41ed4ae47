#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import OCIRuntime
@testable import SwvmBase

/// The detached containers' log (LogWriter, LogReader) and their record
/// (ServiceRecord, ServiceStore's names and prefixes), without containers.
struct ContainerLogTests {
    func entries(_ path: String) throws -> [LogReader.Entry] {
        let old = (try? FS.readFile(path + ".1")) ?? []
        let cur = (try? FS.readFile(path)) ?? []
        return LogReader.entries(old[...]).0 + LogReader.entries(cur[...]).0
    }

    @Test func linesAreSplitKeptPerStreamAndLongOnesWrittenInParts() throws {
        let root = try ScratchRoot()
        let path = Path.join(root.path, "container.log")
        let writer = try LogWriter(path: path, maxSize: 1 << 20)
        try writer.write(Array("one\ntw".utf8)[...], from: .stdout)
        try writer.write(Array("err\n".utf8)[...], from: .stderr)
        try writer.write(Array("o\n".utf8)[...], from: .stdout)
        try writer.write(Array(repeating: UInt8(ascii: "x"), count: LogWriter.maxRecordText + 5)[...], from: .stdout)
        try writer.finish(.stdout)
        let e = try entries(path)
        #expect(e.map { String(decoding: $0.text, as: UTF8.self).prefix(3) } == ["one", "err", "two", "xxx", "xxx"])
        #expect(e.map(\.stream) == [.stdout, .stderr, .stdout, .stdout, .stdout])
        #expect(e.map(\.full) == [true, true, true, false, false])
        #expect(e[3].text.count == LogWriter.maxRecordText && e[4].text.count == 5)
        // A fragment a container writes cannot pose as a record of another stream.
        try writer.write(Array("\n2026-01-01T00:00:00Z stderr F forged\n".utf8)[...], from: .stdout)
        #expect(try entries(path).suffix(2).allSatisfy { $0.stream == .stdout })
    }

    @Test func theCapKeepsTheNewestLinesAndDropsTheOldestHalf() throws {
        let root = try ScratchRoot()
        let path = Path.join(root.path, "container.log")
        let writer = try LogWriter(path: path, maxSize: 64 << 10)
        for i in 0..<20000 { try writer.write(Array("line-\(i)\n".utf8)[...], from: .stdout) }
        let size = [path, path + ".1"].compactMap { FS.stat($0) }.reduce(0) { $0 + Int($1.st_size) }
        #expect(size <= 64 << 10 && size > 32 << 10, "\(size)")
        let lines = try entries(path).map { String(decoding: $0.text, as: UTF8.self) }
        let firstLine = try #require(lines.first)
        let first = try #require(Int(firstLine.dropFirst(5)))
        #expect(lines == (first..<20000).map { "line-\($0)" })
    }

    @Test func tailCountsLinesNotParts() {
        func e(_ t: String, _ full: Bool) -> LogReader.Entry { .init(time: "t", stream: .stdout, full: full, text: Array(t.utf8)) }
        let all = [e("a", true), e("b1", false), e("b2", true), e("c", false)]
        #expect(LogReader.tail(all, lines: 1) == [e("c", false)])
        #expect(LogReader.tail(all, lines: 2) == [e("b1", false), e("b2", true), e("c", false)])
        #expect(LogReader.tail(all, lines: 0) == [])
        #expect(LogReader.tail(all, lines: 9) == all)
        #expect(LogReader.parse(Array("t bogus F x".utf8)[...]) == nil)
        #expect(LogReader.parse(Array("t stdout Q x".utf8)[...]) == nil)
    }

    @Test func namesAreUniqueAndPrefixesMustBeUnambiguous() throws {
        let root = try ScratchRoot()
        let store = ServiceStore(root: root.path)
        var a = ServiceRecord(id: "ab" + String(repeating: "0", count: 62), name: "web", image: "i", command: ["sh"],
                              isolation: "container", runArguments: ["-d", "i"])
        _ = try store.create(a)
        a.id = "ac" + String(repeating: "0", count: 62)
        #expect(throws: SwvmError.self) { _ = try store.create(a) }   // the name is taken
        a.name = "db"
        _ = try store.create(a)
        #expect(try store.resolve("web").id.hasPrefix("ab"))
        #expect(try store.resolve("ac").name == "db")
        #expect(throws: SwvmError.self) { _ = try store.resolve("a") }   // two ids start with "a"
        #expect(throws: SwvmError.self) { _ = try store.resolve("zz") }
        #expect(try store.read(a.id) == a)
        for bad in ["a", "-x", "a/b", "a b", String(repeating: "n", count: 129)] {
            #expect(throws: SwvmError.self) { try ServiceRecord.checkName(bad) }
        }
    }
}

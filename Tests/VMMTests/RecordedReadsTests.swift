import Testing
@testable import MicroVM
@testable import Virtio

/// The files a template's first run read (issue 22), as kept beside the
/// templates: only a complete list of absolute paths inside the image,
/// within its bounds, is used.
struct RecordedReadsTests {
    @Test func aCompleteListOfGoodPathsIsRead() {
        let files = ["/usr/lib/python3.11/os.py", "/etc/ld.so.cache", "/a b/c"]
        #expect(RecordedReads.parse(RecordedReads.format(files)) == files)
        #expect(RecordedReads.parse(RecordedReads.format([])) == [])
    }

    @Test func pathsThatCouldLeaveTheImageOrBreakTheListAreRefused() {
        for bad in ["usr/lib/x", "/usr/../../etc/shadow", "/..", "/usr/./x", "//etc/passwd", "/etc/", "/",
                    "/a\u{1}b", "/" + String(repeating: "a", count: RecordedReads.pathBound)] {
            #expect(!RecordedReads.isGoodPath(bad), "\(bad)")
            #expect(RecordedReads.parse(RecordedReads.format(["/ok", bad])) == nil, "\(bad)")
        }
        #expect(RecordedReads.isGoodPath("/" + String(repeating: "a", count: RecordedReads.pathBound - 1)))
    }

    @Test func aListOverItsBoundsOrCutShortIsRefused() {
        let many = (0...RecordedReads.countBound).map { "/f\($0)" }
        #expect(RecordedReads.parse(RecordedReads.format(Array(many.dropLast()))) != nil)
        #expect(RecordedReads.parse(RecordedReads.format(many)) == nil)
        let text = RecordedReads.format(["/a", "/b"])
        #expect(RecordedReads.parse(String(text.dropLast(4))) == nil)   // no "end": a write cut short
        #expect(RecordedReads.parse("swvm recorded reads 2\n/a\nend\n") == nil)
        #expect(RecordedReads.parseBlocks(RecordedReads.header + "\n1\n2\nend\n") == [1, 2])
        #expect(RecordedReads.parseBlocks(RecordedReads.header + "\n1\nx\nend\n") == nil)
        #expect(RecordedReads.parseBlocks(RecordedReads.header + "\n1\n2\n") == nil)
        let tooMany = (0...UInt64(BlockDevice.readLogBound)).map { String($0) }.joined(separator: "\n")
        #expect(RecordedReads.parseBlocks(RecordedReads.header + "\n" + tooMany + "\nend\n") == nil)
    }
}

#if canImport(Glibc)
import Glibc
#endif
import SwvmBase

/// A detached container's output, one record per line in podman's
/// k8s-file format: "TIME STREAM F|P TEXT\n" (F: a whole line, P: part of
/// a longer one or the last bytes without a newline). The monitor writes
/// it; `swvm logs` reads it.
///
/// The size is capped: when the current file would pass half of the cap,
/// it becomes FILE.1 (the previous FILE.1, the oldest half, is dropped) and
/// a new file starts, as Docker's json-file with max-file=2. So at most
/// `maxSize` bytes are kept, and the newest half of them at least.
public final class LogWriter: @unchecked Sendable {
    public enum Stream: String, Sendable { case stdout, stderr }

    /// A line longer than this is written in parts.
    static let maxRecordText = 16 << 10
    /// The smallest cap --log-opt max-size takes: a record fits in half.
    public static let minMaxSize: UInt64 = 64 << 10

    let path: String
    let half: UInt64
    private var fd: Int32
    private var size: UInt64
    private var pending: [Stream: [UInt8]] = [:]

    public init(path: String, maxSize: UInt64) throws {
        self.path = path
        half = max(maxSize, LogWriter.minMaxSize) / 2
        fd = try LogWriter.open(path)
        size = UInt64(FS.stat(path)?.st_size ?? 0)
    }

    deinit { close(fd) }

    static func open(_ path: String) throws -> Int32 {
        try sys("open \(path)") { Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o600) }
    }

    /// Output read from one stream: whole lines are written, the rest waits
    /// for its newline (or is written in parts once long).
    public func write(_ bytes: ArraySlice<UInt8>, from stream: Stream) throws {
        var buffer = pending[stream, default: []] + bytes
        var start = 0
        while let nl = buffer[start...].firstIndex(of: 10) {
            try record(stream, full: true, buffer[start..<nl])
            start = nl + 1
        }
        buffer.removeFirst(start)
        while buffer.count >= LogWriter.maxRecordText {
            try record(stream, full: false, buffer.prefix(LogWriter.maxRecordText))
            buffer.removeFirst(LogWriter.maxRecordText)
        }
        pending[stream] = buffer
    }

    /// The stream ended: what is left without a newline.
    public func finish(_ stream: Stream) throws {
        if let rest = pending[stream], !rest.isEmpty { try record(stream, full: false, rest[...]) }
        pending[stream] = nil
    }

    func record(_ stream: Stream, full: Bool, _ text: ArraySlice<UInt8>) throws {
        let line = Array("\(Timestamp.rfc3339(fraction: true)) \(stream.rawValue) \(full ? "F" : "P") ".utf8) + text + [10]
        if size + UInt64(line.count) > half { try rotate() }
        try line.withUnsafeBytes { try FileDescriptor.writeAll(fd, $0) }
        size += UInt64(line.count)
    }

    /// The current file becomes FILE.1 (dropping the older half).
    func rotate() throws {
        try sys("rename \(path)") { rename(path, path + ".1") }
        close(fd)
        fd = try LogWriter.open(path)
        size = 0
    }
}

/// `swvm logs`: the records of FILE.1 and FILE, printed as the container
/// wrote them (stdout to stdout, stderr to stderr).
public enum LogReader {
    public struct Entry: Equatable, Sendable {
        public var time: String
        public var stream: LogWriter.Stream
        public var full: Bool
        public var text: [UInt8]
    }

    /// One record; nil for a line that is not one (never written by the
    /// monitor, so skipped rather than trusted).
    public static func parse(_ line: ArraySlice<UInt8>) -> Entry? {
        let fields = line.split(separator: 32, maxSplits: 3, omittingEmptySubsequences: false)
        guard fields.count >= 3, let stream = LogWriter.Stream(rawValue: String(decoding: fields[1], as: UTF8.self)) else { return nil }
        let flag = String(decoding: fields[2], as: UTF8.self)
        guard flag == "F" || flag == "P" else { return nil }
        return Entry(time: String(decoding: fields[0], as: UTF8.self), stream: stream, full: flag == "F",
                     text: fields.count == 4 ? Array(fields[3]) : [])
    }

    /// The whole records in `bytes`, and how many bytes they took (a last
    /// line still being written is left for later).
    public static func entries(_ bytes: ArraySlice<UInt8>) -> ([Entry], Int) {
        var out: [Entry] = []
        var start = bytes.startIndex
        while let nl = bytes[start...].firstIndex(of: 10) {
            if let e = parse(bytes[start..<nl]) { out.append(e) }
            start = nl + 1
        }
        return (out, start - bytes.startIndex)
    }

    /// Writes entries as the container wrote them; with `timestamps`, each
    /// line starts with its time, as `docker logs -t`.
    public static func emit(_ entries: [Entry], timestamps: Bool, atLineStart: inout Bool) {
        for e in entries {
            var out: [UInt8] = []
            if timestamps && atLineStart { out += Array((e.time + " ").utf8) }
            out += e.text
            if e.full { out.append(10) }
            atLineStart = e.full
            out.withUnsafeBytes { _ = try? FileDescriptor.writeAll(e.stream == .stdout ? 1 : 2, $0) }
        }
    }

    /// The last `lines` lines of entries (a line may span several parts).
    public static func tail(_ entries: [Entry], lines: Int) -> [Entry] {
        var count = 0
        var i = entries.count
        while i > 0 {
            if entries[i - 1].full || i == entries.count {
                if count == lines { break }
                count += 1
            }
            i -= 1
        }
        return Array(entries[i...])
    }
}

extension LogReader {
    /// `swvm logs`: FILE.1 and FILE (the last `tail` lines of them); with
    /// `follow`, then what is appended (across a rotation) until `running`
    /// says the container has stopped and nothing more came.
    public static func show(_ path: String, tail: Int?, timestamps: Bool, follow: Bool, running: () -> Bool) throws {
        let old = (try? FS.readFile(path + ".1", limit: 1 << 30)) ?? []
        var file = try? LogFile(path)
        let current = file?.readNew() ?? []
        let (oldEntries, _) = entries(old[...])
        let (newEntries, used) = entries(current[...])
        file?.unread(current.count - used)
        var all = oldEntries + newEntries
        if let n = tail { all = LogReader.tail(all, lines: n) }
        var atLineStart = true
        emit(all, timestamps: timestamps, atLineStart: &atLineStart)
        guard follow else { return }
        var pending: [UInt8] = []
        while true {
            let stillRunning = running()
            if file == nil { file = try? LogFile(path) }
            var got = file?.readNew() ?? []
            if got.isEmpty, let f = file, f.wasRotated(path) {
                // The rest of the old file is read from its descriptor.
                file = try? LogFile(path)
                got = file?.readNew() ?? []
            }
            pending += got
            let (es, n) = entries(pending[...])
            pending.removeFirst(n)
            emit(es, timestamps: timestamps, atLineStart: &atLineStart)
            if got.isEmpty {
                if !stillRunning { return }
                usleep(100_000)
            }
        }
    }
}

/// A log file read as it grows, by its descriptor (it stays readable
/// after a rotation renamed it).
final class LogFile {
    let fd: Int32
    var offset: off_t = 0

    init(_ path: String) throws {
        fd = try sys("open \(path)") { open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) }
    }

    deinit { close(fd) }

    func readNew() -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = pread(fd, &buf, buf.count, offset)
            if n <= 0 { return out }
            out += buf[0..<n]
            offset += off_t(n)
        }
    }

    /// Gives back the last `count` bytes read (a line not yet whole).
    func unread(_ count: Int) { offset -= off_t(count) }

    /// Whether `path` is now another file than this one.
    func wasRotated(_ path: String) -> Bool {
        var mine = stat()
        guard fstat(fd, &mine) == 0, let now = FS.stat(path) else { return false }
        return mine.st_ino != now.st_ino || mine.st_dev != now.st_dev
    }
}

#if canImport(Glibc)
import Glibc
#endif
import SwvmBase

/// runc's --log, --log-format and --debug: errors and warnings go to
/// stderr and, with --log, to FILE too, where engines read them (podman
/// shows the last error line of its oci-log to its user). JSON lines are
/// logrus's: {"level":"error","msg":"...","time":"..."}; text lines are
/// logrus's text form: time="..." level=error msg="...".
public final class RuntimeLog: @unchecked Sendable {
    public enum Format: String, Sendable, CaseIterable { case text, json }

    /// The one log of this process, set from the global flags.
    nonisolated(unsafe) public static var current = RuntimeLog(path: nil, format: .text, debug: false)

    public let format: Format
    public let debugEnabled: Bool
    private let fd: Int32

    /// `path`: the file to append to (nil: stderr only); "-" is stderr.
    public init(path: String?, format: Format, debug: Bool) {
        self.format = format
        self.debugEnabled = debug
        if let path, path != "-" {
            // Not fatal when it cannot be opened: the error still reaches stderr.
            fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
            if fd < 0 { Log.warning("--log \(path): \(errnoText(errno))") }
        } else {
            fd = -1
        }
    }

    deinit { if fd >= 0 { close(fd) } }

    public func error(_ message: String) {
        Log.error(message)
        write("error", message)
    }

    public func warning(_ message: String) {
        Log.warning(message)
        write("warning", message)
    }

    public func debug(_ message: @autoclosure () -> String) {
        guard debugEnabled || Log.debugEnabled else { return }
        let text = message()
        if debugEnabled { write("debug", text) }
        Log.debug(text)
    }

    /// One line in the log file, written with a single write(2) (O_APPEND:
    /// lines of concurrent swvm processes do not interleave).
    func write(_ level: String, _ message: String) {
        guard fd >= 0 else { return }
        let line = RuntimeLog.line(format: format, level: level, message: message, time: Timestamp.rfc3339())
        var bytes = Array(line.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
    }

    public static func line(format: Format, level: String, message: String, time: String) -> String {
        switch format {
        case .json:
            return JSON.object([("level", .string(level)), ("msg", .string(message)), ("time", .string(time))]).serialized() + "\n"
        case .text:
            return "time=\"\(time)\" level=\(level) msg=\(JSON.string(message).serialized())\n"
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
import CSyscalls

/// Diagnostics on stderr. Errors are one line, "swvm: <message>", as users
/// of crun and Docker expect; debug lines appear with SWVM_DEBUG=1.
public enum Log {
    public static let debugEnabled: Bool = {
        if let v = getenv("SWVM_DEBUG") { return String(cString: v) != "0" }
        return false
    }()

    public static func error(_ message: String) { emit("swvm: \(message)\n") }
    public static func warning(_ message: String) { emit("swvm: warning: \(message)\n") }

    public static func debug(_ message: @autoclosure () -> String) {
        if debugEnabled { emit("swvm: debug: \(message())\n") }
    }

    /// Writes straight to fd 2 (unbuffered, safe after fork).
    public static func emit(_ text: String) {
        var t = text
        t.withUTF8 { buf in
            var off = 0
            while off < buf.count {
                let n = write(2, buf.baseAddress! + off, buf.count - off)
                if n <= 0 { if n < 0 && errno == EINTR { continue }; return }
                off += n
            }
        }
    }

    /// Writes to stdout, unbuffered.
    public static func out(_ text: String) {
        var t = text
        t.withUTF8 { buf in
            var off = 0
            while off < buf.count {
                let n = write(1, buf.baseAddress! + off, buf.count - off)
                if n <= 0 { if n < 0 && errno == EINTR { continue }; return }
                off += n
            }
        }
    }
}

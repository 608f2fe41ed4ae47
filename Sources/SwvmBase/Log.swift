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

/// Warnings a guest can cause over and over (a hostile driver breaking a
/// queue or malforming requests in a loop): the first few are logged, the
/// last of them saying so, and the rest are dropped, so a guest cannot
/// flood the user's terminal.
public struct WarningBudget {
    private var left: Int

    public init(_ count: Int = 3) { left = count }

    public mutating func warn(_ message: @autoclosure () -> String) {
        guard left > 0 else { return }
        left -= 1
        Log.warning(message() + (left == 0 ? " (further ones are not logged)" : ""))
    }
}

#if canImport(Glibc)
import Glibc
#endif
import SwvmBase

/// Signal names and numbers as `runc kill` takes them: "KILL", "SIGKILL",
/// "9"; real-time ones as "RTMIN+3" or their number.
public enum SignalName {
    static let names: [(String, Int32)] = [
        ("HUP", SIGHUP), ("INT", SIGINT), ("QUIT", SIGQUIT), ("ILL", SIGILL), ("TRAP", SIGTRAP), ("ABRT", SIGABRT),
        ("IOT", SIGABRT), ("BUS", SIGBUS), ("FPE", SIGFPE), ("KILL", SIGKILL), ("USR1", SIGUSR1), ("SEGV", SIGSEGV),
        ("USR2", SIGUSR2), ("PIPE", SIGPIPE), ("ALRM", SIGALRM), ("TERM", SIGTERM), ("STKFLT", SIGSTKFLT),
        ("CHLD", SIGCHLD), ("CONT", SIGCONT), ("STOP", SIGSTOP), ("TSTP", SIGTSTP), ("TTIN", SIGTTIN), ("TTOU", SIGTTOU),
        ("URG", SIGURG), ("XCPU", SIGXCPU), ("XFSZ", SIGXFSZ), ("VTALRM", SIGVTALRM), ("PROF", SIGPROF),
        ("WINCH", SIGWINCH), ("IO", SIGIO), ("POLL", SIGIO), ("PWR", SIGPWR), ("SYS", SIGSYS),
    ]
    static let rtMin: Int32 = 34, rtMax: Int32 = 64

    public static func parse(_ text: String) throws -> Int32 {
        if let n = Int32(text) {
            guard n >= 1 && n <= rtMax else { throw unknown(text) }
            return n
        }
        var name = text.uppercased()
        if name.hasPrefix("SIG") { name.removeFirst(3) }
        if let (_, n) = names.first(where: { $0.0 == name }) { return n }
        if name.hasPrefix("RTMIN+"), let k = Int32(name.dropFirst(6)), k >= 0, rtMin + k <= rtMax { return rtMin + k }
        if name.hasPrefix("RTMAX-"), let k = Int32(name.dropFirst(6)), k >= 0, rtMax - k >= rtMin { return rtMax - k }
        if name == "RTMIN" { return rtMin }
        if name == "RTMAX" { return rtMax }
        throw unknown(text)
    }

    static func unknown(_ text: String) -> SwvmError {
        SwvmError(.invalidArgument, "unknown signal \"\(UntrustedText.escaped(text))\"")
    }
}

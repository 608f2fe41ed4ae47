#if canImport(Glibc)
import Glibc
#endif
import CSyscalls

/// Runs a system call, retrying on EINTR; throws SwvmError on failure.
@discardableResult
public func sys<T: BinaryInteger>(_ what: @autoclosure () -> String, _ call: () -> T) throws -> T {
    while true {
        let r = call()
        if r >= 0 { return r }
        let e = errno
        if e == EINTR { continue }
        throw SwvmError.errno(what(), e)
    }
}

/// The exit status a shell reports for a wait(2) status: the code, or
/// 128+N when the process was killed by signal N.
public func shellStatus(fromWaitStatus status: Int32) -> Int32 {
    let sig = status & 0x7f
    if sig == 0 { return (status >> 8) & 0xff }
    if sig != 0x7f { return 128 + sig }
    return 128 + ((status >> 8) & 0xff)  // stopped; not expected for our waits
}

/// waitpid that retries on EINTR.
public func waitForExit(_ pid: pid_t, options: Int32 = 0) -> (pid: pid_t, status: Int32) {
    var status: Int32 = 0
    while true {
        let r = waitpid(pid, &status, options)
        if r < 0 && errno == EINTR { continue }
        return (r, status)
    }
}

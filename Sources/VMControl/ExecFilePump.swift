#if canImport(Glibc)
import Glibc
#endif
import NativeThreads
import SwvmBase

/// An exec's stdout or stderr that is a regular file (`swvm exec ID cmd >
/// file`): the VMM, which writes the exec's output, cannot write a regular
/// file (its jail's RLIMIT_FSIZE is 0 unless it saves a snapshot), so it
/// gets a pipe and this process's thread copies the pipe into the file
/// until the VMM closes its end (the exec's end).
final class ExecFilePump: Sendable {
    /// The pipe's write end, for the VMM (closed here once sent).
    let vmmEnd: FileDescriptor
    private let thread: NativeThread
    /// Why the copy stopped short (nil: everything went into the file).
    private let failure: Locked<String?>

    /// `stream`: "stdout" or "stderr", for the message of a failed write.
    init(file: Int32, stream: String) throws {
        // Past RLIMIT_FSIZE (a caller's `ulimit -f`) a write then fails
        // with EFBIG, said like any other failure, instead of SIGXFSZ
        // killing this process with the exec's output half copied.
        signal(SIGXFSZ, SIG_IGN)
        let pipe = try makePipe()
        let readEnd = pipe.read.release()
        let target = Target(fd: file, stream: stream, path: FS.readLink("/proc/self/fd/\(file)"))
        let failure = Locked<String?>(nil)
        self.failure = failure
        vmmEnd = pipe.write
        do {
            // The thread closes the read end at its end.
            thread = try NativeThread(name: "exec-output") {
                let lost = ExecFilePump.copy(from: readEnd, to: target)
                failure.replace(lost)
            }
        } catch {
            close(readEnd)
            throw error
        }
    }

    /// Waits until everything the exec wrote is in the file, or was read
    /// and dropped after a write failed: then what failed and where.
    func finish() -> String? {
        thread.join()
        return failure.current
    }

    /// Where the copy goes, for the message of a failed write.
    struct Target: Sendable {
        let fd: Int32, stream: String, path: String?
    }

    /// Copies until the VMM's end closes; nil, or why the file misses
    /// output. After a failed write (a full disk, EFBIG, EIO) the rest is
    /// still read and dropped: the VMM, and through it the exec's process
    /// in the guest, must not block on a full pipe.
    private static func copy(from source: Int32, to target: Target) -> String? {
        var buffer = [UInt8](repeating: 0, count: 65536)
        var written = 0, dropped = 0
        var failedErrno: Int32?
        while true {
            let n = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            if failedErrno != nil { dropped += n; continue }
            let (done, err) = buffer.withUnsafeBytes { writePart(target.fd, UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            written += done
            if let err { failedErrno = err; dropped += n - done }
        }
        close(source)
        guard let err = failedErrno else { return nil }
        let place = target.path.map { "\($0) (fd \(target.fd))" } ?? "fd \(target.fd)"
        return "exec: writing the process's \(target.stream) to \(place) failed: \(errnoText(err)); "
            + "\(written) bytes were written, the remaining \(dropped) bytes of its \(target.stream) were discarded"
    }

    /// Writes all of `bytes`: how many went, and errno when a write failed.
    private static func writePart(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> (Int, Int32?) {
        var offset = 0
        while offset < bytes.count {
            let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            if n <= 0 { return (offset, n < 0 ? errno : EIO) }
            offset += n
        }
        return (offset, nil)
    }

    /// Pumps for the regular files among `stdio`'s outputs, with the
    /// descriptors the VMM gets instead.
    static func forFiles(_ stdio: ExecStdio) throws -> (pumps: [ExecFilePump], sent: ExecStdio) {
        var sent = stdio, pumps: [ExecFilePump] = []
        for (stream, name) in [(\ExecStdio.output, "stdout"), (\ExecStdio.error, "stderr")] where isRegularFile(stdio[keyPath: stream]) {
            let p = try ExecFilePump(file: stdio[keyPath: stream], stream: name)
            pumps.append(p)
            sent[keyPath: stream] = p.vmmEnd.raw
        }
        return (pumps, sent)
    }

    static func isRegularFile(_ fd: Int32) -> Bool {
        var st = stat()
        return fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }
}

/// The exec ran to its end, but some of its output is not where the
/// caller sent it (ExecFilePump): `swvm exec` must not pass that off as
/// the command's own result. Its status is then 125, swvm's for a failure
/// of its own (swvm_error_exit_status, as Docker's 125 for an error of the
/// daemon rather than of the command): 1 would read as the command's own
/// failure, and runc's 255 means the process could not be run at all.
public struct ExecOutputLost: Error, CustomStringConvertible {
    /// The command's own exit status (it ran to its end).
    public let status: Int32
    /// What failed and where, one line per stream.
    public let failures: [String]

    public static let exitStatus: Int32 = 125

    public var description: String {
        (failures + ["the process itself exited with status \(status)"]).joined(separator: "; ")
    }
}

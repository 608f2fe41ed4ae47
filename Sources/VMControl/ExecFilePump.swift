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

    init(file: Int32) throws {
        let pipe = try makePipe()
        let readEnd = pipe.read.release()
        vmmEnd = pipe.write
        do {
            // The thread closes the read end at its end.
            thread = try NativeThread(name: "exec-output") { ExecFilePump.copy(from: readEnd, to: file) }
        } catch {
            close(readEnd)
            throw error
        }
    }

    /// Waits until everything the exec wrote is in the file.
    func finish() { thread.join() }

    private static func copy(from source: Int32, to file: Int32) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        var failed = false
        while true {
            let n = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            // After a failed write (a full disk) the rest is read and dropped:
            // the VMM must not block on a full pipe.
            if !failed {
                failed = (try? buffer.withUnsafeBytes { try FileDescriptor.writeAll(file, UnsafeRawBufferPointer(rebasing: $0[0..<n])) }) == nil
            }
        }
        close(source)
    }

    /// Pumps for the regular files among `stdio`'s outputs, with the
    /// descriptors the VMM gets instead.
    static func forFiles(_ stdio: ExecStdio) throws -> (pumps: [ExecFilePump], sent: ExecStdio) {
        var sent = stdio, pumps: [ExecFilePump] = []
        for stream in [\ExecStdio.output, \ExecStdio.error] where isRegularFile(stdio[keyPath: stream]) {
            let p = try ExecFilePump(file: stdio[keyPath: stream])
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

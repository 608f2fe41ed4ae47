#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import Synchronization

/// An owned file descriptor, closed when the last reference goes away.
/// Sendable: threads share descriptors (a VM's eventfds), and the number
/// is atomic, so one `close` or `release` takes it and the others see -1.
public final class FileDescriptor: Sendable {
    private let number: Atomic<Int32>
    /// What the descriptor is open on (a path), for its errors.
    public let name: String?

    public init(_ raw: Int32, name: String? = nil) {
        number = Atomic(raw)
        self.name = name
    }

    /// The descriptor, or -1 once closed or released.
    public var raw: Int32 { number.load(ordering: .acquiring) }

    /// The subject of an error on this descriptor.
    var subject: String { name ?? "file descriptor \(raw)" }

    deinit { close() }

    /// Gives up ownership; the caller closes the descriptor.
    public func release() -> Int32 {
        number.exchange(-1, ordering: .acquiringAndReleasing)
    }

    public func close() {
        let r = number.exchange(-1, ordering: .acquiringAndReleasing)
        if r >= 0 { Glibc.close(r) }
    }

    public static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644) throws -> FileDescriptor {
        let fd = try sys("open \(path)") { Glibc.open(path, flags | O_CLOEXEC, mode) }
        return FileDescriptor(fd, name: path)
    }

    /// Writes all of `bytes`, retrying short writes and EINTR.
    public func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        try FileDescriptor.writeAll(raw, bytes, name: subject)
    }

    public func writeAll(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try writeAll($0) }
    }

    public func writeAll(_ string: String) throws {
        try writeAll(Array(string.utf8))
    }

    /// `name`: what `fd` is open on, for the error.
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, name: String? = nil) throws {
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw SwvmError.system(step: "write", path: name ?? "file descriptor \(fd)")
            }
            offset += n
        }
    }

    /// Reads until EOF.
    public func readAll(limit: Int = Int.max) throws -> [UInt8] {
        var out: [UInt8] = []
        // Not zero-filled: most reads here are a few bytes of /proc.
        try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 65536) { buf in
            while out.count < limit {
                let n = Glibc.read(raw, buf.baseAddress, buf.count)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw SwvmError.system(step: "read", path: subject)
                }
                if n == 0 { break }
                out.append(contentsOf: buf[0..<n])
            }
        }
        if out.count > limit { throw SwvmError(.invalidArgument, "input larger than \(limit) bytes") }
        return out
    }

    /// Reads exactly `count` bytes, or fewer at EOF. The buffer is not
    /// zero-filled first: a generous bound (4 MiB for an image's JSON)
    /// costs only the pages the data fills, not a memset of all of it.
    public func read(upTo count: Int) throws -> [UInt8] {
        var failure: Int32 = 0
        let out = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            initialized = 0
            while initialized < count {
                let n = Glibc.read(raw, buffer.baseAddress! + initialized, count - initialized)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    return
                }
                if n == 0 { break }
                initialized += n
            }
        }
        if failure != 0 {
            throw SwvmError.system(step: "read", path: subject, errno: failure)
        }
        return out
    }
}

/// A pipe pair with close-on-exec set on both ends.
public func makePipe() throws -> (read: FileDescriptor, write: FileDescriptor) {
    var fds: [Int32] = [0, 0]
    try sys("pipe2") { sys_pipe2(&fds, O_CLOEXEC) }
    return (FileDescriptor(fds[0]), FileDescriptor(fds[1]))
}

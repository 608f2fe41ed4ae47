#if canImport(Glibc)
import Glibc
#endif
import SwvmBase

/// The containers under --root: one directory per container holding
/// state.json (replaced atomically, so a reader never sees half of it)
/// and, between create and start, the exec FIFO; `lock` is the
/// container's lock (ContainerLock), which every command that changes the
/// container holds while it does.
public struct StateStore: Sendable {
    public static let defaultRoot = "/run/swvm/oci"
    public static let stateFileName = "state.json"
    public static let fifoName = "exec.fifo"
    /// A state.json is a few KiB; anything far larger is not one.
    static let stateFileLimit = 4 << 20

    public let root: String

    public init(root: String = StateStore.defaultRoot) {
        self.root = root
    }

    public func directory(_ id: String) -> String { Path.join(root, id) }
    public func stateFile(_ id: String) -> String { Path.join(root, id, StateStore.stateFileName) }
    public func execFIFO(_ id: String) -> String { Path.join(root, id, StateStore.fifoName) }

    /// The ids of every container directory, sorted.
    public func ids() throws -> [String] {
        guard FS.isDirectory(root) else { return [] }
        return try FS.listDirectory(root).filter { (try? ContainerID.validate($0)) != nil && FS.isDirectory(directory($0)) }
    }

    /// Makes a new container's directory, locked. runc's message when the
    /// id is taken.
    public func makeContainer(_ id: String) throws -> ContainerLock {
        try ContainerID.validate(id)
        try FS.makeDirectories(root, mode: 0o700)
        let dir = directory(id)
        guard mkdir(dir, 0o711) == 0 else {
            if errno == EEXIST { throw SwvmError(.invalidArgument, "container with id \(id) already exists") }
            throw SwvmError.errno("mkdir \(dir)")
        }
        guard let lock = try ContainerLock.acquire(dir) else {
            throw SwvmError(.internalError, "container \(id) was removed while it was being created")
        }
        return lock
    }

    /// Locks an existing container (waits while another swvm holds it).
    public func lock(_ id: String) throws -> ContainerLock {
        try ContainerID.validate(id)
        guard let lock = try ContainerLock.acquire(directory(id)) else { throw StateStore.notFound(id) }
        return lock
    }

    public static func notFound(_ id: String) -> SwvmError {
        SwvmError(.notFound, "container \(id) does not exist")
    }

    /// The container's record; nil when its directory has no state.json
    /// (a create killed before it wrote one).
    public func read(_ id: String) throws -> ContainerRecord? {
        let file = stateFile(id)
        let bytes: [UInt8]
        do {
            bytes = try FS.readFile(file, limit: StateStore.stateFileLimit)
        } catch let e as SwvmError where e.code == .notFound {
            return nil
        }
        let record = try ContainerRecord.decode(bytes, file: file)
        guard record.id == id else { throw SwvmError(.internalError, "\(file) is corrupt: it names container \(record.id)") }
        return record
    }

    /// Replaces state.json (the caller holds the container's lock).
    public func write(_ record: ContainerRecord, _ lock: ContainerLock) throws {
        try FS.writeFile(stateFile(record.id), record.encoded(), mode: 0o600)
    }

    /// Removes the container's directory (the caller holds its lock; a
    /// swvm waiting for the lock then finds the container gone).
    public func remove(_ id: String, _ lock: ContainerLock) throws {
        try FS.removeTree(directory(id))
    }
}

/// An exclusive lock on a container: a POSIX record lock (fcntl) on
/// DIR/lock, held until released or the process dies. Not flock(2): the
/// container's init is cloned from `swvm create` while it holds the lock,
/// and a flock would be shared with the init through the inherited open
/// file (held for as long as the init waits on its FIFO, and forever if
/// `swvm create` was killed); record locks are never inherited.
public final class ContainerLock {
    static let fileName = "lock"
    private let fd: Int32

    private init(fd: Int32) { self.fd = fd }

    deinit { close(fd) }

    /// nil when the directory does not exist, or was removed (or
    /// replaced) while waiting for the lock.
    static func acquire(_ dir: String) throws -> ContainerLock? {
        let path = Path.join(dir, fileName)
        guard FS.isDirectory(dir) else { return nil }
        let fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw SwvmError.errno("open \(path)")
        }
        let lock = ContainerLock(fd: fd)
        var request = flock(l_type: Int16(F_WRLCK), l_whence: Int16(SEEK_SET), l_start: 0, l_len: 0, l_pid: 0)
        while fcntl(fd, F_SETLKW, &request) != 0 {
            if errno == EINTR { continue }
            throw SwvmError.errno("lock \(path)")
        }
        // Still the container's lock: not removed (delete) while waiting.
        var held = stat(), current = stat()
        guard fstat(fd, &held) == 0, held.st_nlink > 0, lstat(path, &current) == 0,
              held.st_dev == current.st_dev, held.st_ino == current.st_ino else { return nil }
        return lock
    }

    /// Whether another process holds the lock on `dir` now.
    static func isHeld(_ dir: String) -> Bool {
        let fd = open(Path.join(dir, fileName), O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var request = flock(l_type: Int16(F_WRLCK), l_whence: Int16(SEEK_SET), l_start: 0, l_len: 0, l_pid: 0)
        return fcntl(fd, F_GETLK, &request) == 0 && request.l_type != Int16(F_UNLCK)
    }
}

#if canImport(Glibc)
import Glibc
#endif
import SwvmBase

/// The containers of Docker's verbs (`swvm run -d`, ps, logs, stop...):
/// an OCI StateStore under its own root (so runc's `swvm list` of another
/// root is not mixed with them), each container's directory holding
/// state.json (the lifecycle's ContainerRecord), service.json
/// (ServiceRecord) and its log.
public struct ServiceStore: Sendable {
    public static let recordFileName = "service.json"
    public static let logFileName = "container.log"
    static let recordLimit = 4 << 20

    public let state: StateStore

    public init(root: String = Path.join(SwvmPaths.runRoot, "containers")) {
        state = StateStore(root: root)
    }

    public var lifecycle: Lifecycle { Lifecycle(store: state, engine: ContainerEngine()) }

    public func recordFile(_ id: String) -> String { Path.join(state.directory(id), ServiceStore.recordFileName) }
    public func logFile(_ id: String) -> String { Path.join(state.directory(id), ServiceStore.logFileName) }

    /// Makes the container's directory and records it, refusing a name in
    /// use (checked and taken under one store-wide lock, so two runs
    /// cannot both take a name).
    public func create(_ record: ServiceRecord) throws -> ContainerLock {
        try FS.makeDirectories(state.root, mode: 0o711)
        let names = try FileLock(path: Path.join(state.root, ".names.lock"))
        if let other = try all().first(where: { $0.name == record.name }) {
            throw SwvmError(.invalidArgument, "the container name \"\(record.name)\" is already in use by container \(other.id); "
                            + "remove it (swvm rm) or choose another name")
        }
        let lock = try state.makeContainer(record.id)
        try write(record, lock)
        withExtendedLifetime(names) {}
        return lock
    }

    public func write(_ record: ServiceRecord, _ lock: ContainerLock) throws {
        try FS.writeText(recordFile(record.id), record.json.serialized(), mode: 0o600)
    }

    public func read(_ id: String) throws -> ServiceRecord {
        let file = recordFile(id)
        do {
            return try ServiceRecord.decode(JSON.parse(FS.readFile(file, limit: ServiceStore.recordLimit)), file: file)
        } catch let e as SwvmError where e.code == .notFound {
            throw StateStore.notFound(id)
        } catch let e as JSON.ParseError {
            throw SwvmError(.internalError, "\(file) is corrupt: \(e.description)")
        }
    }

    /// Changes service.json under the container's lock.
    public func update(_ id: String, _ change: (inout ServiceRecord) -> Void) throws {
        let lock = try state.lock(id)
        var record = try read(id)
        change(&record)
        try write(record, lock)
    }

    /// Every container with a readable service.json, oldest first.
    public func all() throws -> [ServiceRecord] {
        try state.ids().compactMap { try? read($0) }.sorted { $0.created < $1.created }
    }

    /// The container a user means, as Docker finds it: its full id, its
    /// name, or a prefix of one id only.
    public func resolve(_ reference: String) throws -> ServiceRecord {
        let records = try all()
        if let r = records.first(where: { $0.id == reference || $0.name == reference }) { return r }
        let matches = reference.isEmpty ? [] : records.filter { $0.id.hasPrefix(reference) }
        guard matches.count == 1 else {
            let text = UntrustedText.escaped(reference)
            if matches.isEmpty { throw SwvmError(.notFound, "no such container: \(text)") }
            throw SwvmError(.invalidArgument, "\"\(text)\" is a prefix of \(matches.count) container ids; give more of it")
        }
        return matches[0]
    }

    /// The lifecycle's view of the container: running, paused, stopped.
    public func status(_ id: String) -> ContainerStatus {
        (try? lifecycle.state(id).status) ?? .stopped
    }
}

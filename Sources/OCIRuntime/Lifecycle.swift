#if canImport(Glibc)
import Glibc
#endif
import RuntimeSpec
import SwvmBase

/// `create`'s options (runc create's flags).
public struct CreateOptions: Sendable {
    public var bundle: String
    public var pidFile: String?
    public var consoleSocket: String?
    public var preserveFDs: Int = 0
    /// Accepted, as runc's callers pass them; swvm always pivots into the
    /// root (a root on a ramdisk is not supported) and makes no keyring.
    public var noPivot = false
    public var noNewKeyring = false

    public init(bundle: String) { self.bundle = bundle }
}

/// The OCI lifecycle (runtime.md, "Lifecycle") over the state store and an
/// isolation level. Each operation that changes a container holds its
/// lock; status checks use ContainerState's view of what is true now.
public struct Lifecycle {
    public let store: StateStore
    /// The container level's engine.
    public let engine: IsolationEngine
    /// The VM level's (VMEngine), for containers created at that level.
    public var vmEngine: IsolationEngine = VMEngine()
    /// The level when config.json does not choose (IsolationLevel).
    public var defaultLevel: IsolationLevel = .container
    /// config.json's reader (a test gives its own).
    public var loadConfig: (_ bundle: String, _ id: String) throws -> BundleConfig = BundleConfig.load

    /// A copy of config.json, taken at create, for exec.
    static let configCopy = "config.json"

    public init(store: StateStore, engine: IsolationEngine) {
        self.store = store
        self.engine = engine
    }

    public func state(_ id: String) throws -> ContainerState {
        try ContainerState.load(id, store: store) { engine(for: IsolationLevel.of($0)) }
    }

    /// Builds the container and leaves its init waiting for `start`.
    public func create(_ id: String, _ options: CreateOptions) throws {
        let bundle = try FS.realPath(options.bundle)
        let lock = try store.makeContainer(id)
        var record = ContainerRecord(id: id, bundle: bundle, rootfs: "", creator: .current(), created: Timestamp.rfc3339())
        do {
            let config = try loadConfig(bundle, id)
            let spec = config.spec
            record.rootfs = spec.oci?.rootPath ?? spec.rootfs
            record.annotations = spec.oci?.annotations ?? []
            let level = try IsolationLevel.choose(record.annotations, fallback: defaultLevel)
            if !record.annotations.contains(where: { $0.key == IsolationLevel.annotation }) {
                record.annotations.append(OCIAnnotation(key: IsolationLevel.annotation, value: level.rawValue))
            }
            record.cgroupsPath = spec.oci?.cgroupsPath
            record.poststart = spec.oci?.hooks.poststart ?? []
            record.poststop = spec.oci?.hooks.poststop ?? []
            try store.write(record, lock)
            try FS.writeText(Path.join(store.directory(id), Lifecycle.configCopy), config.json.serialized(), mode: 0o600)
            let fifo = store.execFIFO(id)
            try Lifecycle.makeExecFIFO(fifo, spec)
            let hooks = ContainerHooks(spec.oci?.hooks ?? OCIHooks(), record: record) { [record] initProcess in
                var r = record
                r.initProcess = initProcess
                try store.write(r, lock)
            }
            let created = try withIO(options.consoleSocket, preserveFDs: options.preserveFDs) { io in
                var io = io
                io.hooks = hooks
                return try engine(for: level).create(spec, io: io, stateDir: store.directory(id), execFIFO: fifo)
            }
            record.initProcess = created.process
            record.cgroupPaths = created.cgroupPaths
            let added = Set(created.annotations.map(\.key))
            record.annotations = record.annotations.filter { !added.contains($0.key) } + created.annotations
            try store.write(record, lock)
            if !hooks.ran { try runCreateHooks(spec.oci?.hooks ?? OCIHooks(), record) }
            record.createFinished = true
            try store.write(record, lock)
            if let file = options.pidFile { try writePidFile(file, created.process.pid) }
            RuntimeLog.current.debug("created container \(id): init pid \(created.process.pid)")
        } catch {
            teardown(id, record: record, lock: lock)
            throw error
        }
    }

    /// An engine that did not stop before pivot_root (ContainerHooks): the
    /// hooks run in swvm's namespaces once the container exists.
    func runCreateHooks(_ hooks: OCIHooks, _ record: ContainerRecord) throws {
        let state = ContainerState(id: record.id, record: record, status: .creating).specJSON
        try HookRunner.run(hooks.prestart, kind: "prestart", state: state)
        try HookRunner.run(hooks.createRuntime, kind: "createRuntime", state: state)
        try HookRunner.run(hooks.createContainer, kind: "createContainer", state: state)
    }

    /// The descriptors for a new process: ours, a connected console socket.
    func withIO<T>(_ consoleSocket: String?, preserveFDs: Int, _ body: (ProcessIO) throws -> T) throws -> T {
        var io = ProcessIO()
        io.preserveFDs = preserveFDs
        let socket = try consoleSocket.map { try ConsoleSocket.connect($0) }
        io.consoleSocket = socket?.raw
        return try withExtendedLifetime(socket) { try body(io) }
    }

    func writePidFile(_ path: String, _ pid: pid_t) throws {
        try FS.writeText(path, "\(pid)", mode: 0o644)
    }

    /// Releases the init: it was blocked opening the FIFO for writing.
    public func start(_ id: String) throws {
        let lock = try store.lock(id)
        let state = try self.state(id)
        switch state.status {
        case .created: break
        case .stopped: throw SwvmError(.invalidArgument, "cannot start a container that has stopped")
        case .running, .paused: throw SwvmError(.invalidArgument, "cannot start an already running container")
        case .creating: throw SwvmError(.invalidArgument, "cannot start a container that is being created")
        }
        guard let record = state.record, let initProcess = record.initProcess else { throw StateStore.notFound(id) }
        try ExecFIFO.release(store.execFIFO(id), init: initProcess)
        withExtendedLifetime(lock) {}
        HookRunner.runWarning(record.poststart, kind: "poststart",
                              state: ContainerState(id: id, record: record, status: .running).specJSON)
        RuntimeLog.current.debug("started container \(id)")
    }

    /// Kills what is left of a container and removes its directory.
    func teardown(_ id: String, record: ContainerRecord?, lock: ContainerLock) {
        let initProcess = record?.initProcess
        if let p = initProcess, p.isAlive { Glibc.kill(p.pid, SIGKILL) }
        engine(for: IsolationLevel.of(record)).destroy(cgroupPaths: record?.cgroupPaths ?? [], cgroupsPath: record?.cgroupsPath, id: id)
        if let p = initProcess { ExecFIFO.awaitExit(p, seconds: 5) }
        do {
            try store.remove(id, lock)
        } catch {
            RuntimeLog.current.warning("cannot remove the state of container \(id): \(error)")
        }
    }
}

extension Lifecycle {
    public func engine(for level: IsolationLevel) -> IsolationEngine {
        level == .vm ? vmEngine : engine
    }

    /// The exec FIFO as runc makes it: mode 0622 whatever the umask, owned
    /// by the container's root, so an init that has already switched to
    /// config.json's user can still open it for writing.
    static func makeExecFIFO(_ path: String, _ spec: RunSpec) throws {
        try sys("mkfifo \(path)") { mkfifo(path, 0o622) }
        try sys("chmod \(path)") { chmod(path, 0o622) }
        let uid = spec.oci?.uidMappings.first { $0.containerID == 0 }?.hostID ?? 0
        let gid = spec.oci?.gidMappings.first { $0.containerID == 0 }?.hostID ?? 0
        try sys("chown \(path)") { chown(path, uid, gid) }
    }
}

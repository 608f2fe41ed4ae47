#if canImport(Glibc)
import Glibc
#endif
import Cgroups
import CSyscalls
import NativeThreads
import RunRecords
import SwvmBase

/// The privileged half of a VM run. The VMM jails itself and can then no
/// longer clean up after itself (its cgroup, its network, its run record,
/// its uid) or publish the snapshot it saved, or read its own posture (it
/// has no /proc). So before the jail it starts a keeper: swvm itself,
/// exec'd (`swvm vmm-keeper`, no Swift runs between fork and exec), outside
/// the jail, in a process group of its own and deaf to the terminal's
/// signals. The two talk over a socketpair (SOCK_SEQPACKET, fd 3 in the
/// keeper); the keeper trusts no path from the VMM once it is jailed:
///
///     snapshot TMP FINAL LOCK   before the jail: where a snapshot may go
///                               (at most two: a boot snapshot and an image
///                               template); the reply is "ok INDEX"
///     publish INDEX             move that TMP to FINAL (checked); once each
///     posture                   the VMM's JailPosture, read from /proc
///     (end of file)             the VMM is done or dead: clean up, exit
///
/// The VMM waits for the keeper at its end, so what the run held on the
/// host is gone when `swvm run` exits; a VMM killed with SIGKILL is
/// cleaned up by its keeper just the same.
public final class VMMKeeper: Sendable {
    let fd: Int32
    public let pid: pid_t
    private let finished = Locked(false)

    /// Starts the keeper of this process's run, recorded in `record`.
    public static func spawn(record: String, identity: VMMIdentity) throws -> VMMKeeper {
        var pair: [Int32] = [-1, -1]
        try sys("socketpair (the VMM's keeper)") { socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) }
        defer { close(pair[1]) }
        let exe = FS.executablePath()
        let args = ["swvm", "vmm-keeper", "--vmm", String(getpid()), "--record", record, "--lease", identity.leasePath]
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pair[1], 3)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK))
        posix_spawnattr_setpgroup(&attr, 0)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attr, &none)
        var cargs = args.map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, exe, &actions, &attr, &cargs, environ)
        guard rc == 0 else {
            close(pair[0])
            throw SwvmError.errno("spawn the VMM's keeper (\(exe))", rc)
        }
        return VMMKeeper(fd: pair[0], pid: child)
    }

    init(fd: Int32, pid: pid_t) {
        self.fd = fd
        self.pid = pid
    }

    deinit { finish() }

    /// Sends one request and returns the keeper's reply.
    func request(_ message: String) throws -> String {
        let bytes = Array(message.utf8)
        guard bytes.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == bytes.count else {
            throw SwvmError.errno("the VMM's keeper: send \(message.prefix(16))")
        }
        var buf = [UInt8](repeating: 0, count: 1 << 18)
        let n = recv(fd, &buf, buf.count, 0)
        guard n > 0 else { throw SwvmError(.internalError, "the VMM's keeper ended before it answered \(message.prefix(16))") }
        return String(decoding: buf[0..<n], as: UTF8.self)
    }

    /// Before the jail: a snapshot this run may publish; its index.
    public func announceSnapshot(temporary: String, final: String, lock: String) throws -> Int {
        let reply = try request("snapshot\t\(temporary)\t\(final)\t\(lock)")
        guard reply.hasPrefix("ok "), let index = Int(reply.dropFirst(3)) else {
            throw SwvmError(.internalError, "the VMM's keeper: \(reply)")
        }
        return index
    }

    /// Moves the announced snapshot `index` into place.
    public func publishSnapshot(_ index: Int) throws {
        let reply = try request("publish\t\(index)")
        guard reply == "ok" else { throw SwvmError(.systemCall, "publish the snapshot: \(reply)") }
    }

    /// The VMM's posture as the keeper read it from /proc: the summary and the JSON.
    public func posture() -> (summary: String, json: JSON, peakRSS: UInt64, keeperPeakRSS: UInt64)? {
        guard let reply = try? request("posture"), let json = try? JSON.parse(reply),
              let summary = json["summary"]?.string, let jail = json["jail"] else { return nil }
        return (summary, jail, UInt64(json["peakRSS"]?.int64 ?? 0), UInt64(json["keeperPeakRSS"]?.int64 ?? 0))
    }

    /// The VMM is done: the keeper cleans up, and this waits until it has.
    public func finish() {
        guard finished.with({ done in defer { done = true }; return !done }) else { return }
        close(fd)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }
}

// MARK: the keeper's side

extension VMMKeeper {
    /// The keeper process: serves the VMM on fd 3 until it ends, then
    /// cleans up the run. Returns the exit status.
    public static func serve(vmm: pid_t, record: String, lease: String) -> Int32 {
        for s in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU] { signal(s, SIG_IGN) }
        var state = KeeperState(vmm: vmm)
        // It waits for the whole run: keep only the code and heap it uses.
        ProcessMemory.mapOnlyWhatIsUsed()
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = recv(3, &buf, buf.count, 0)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            let reply = state.handle(String(decoding: buf[0..<n], as: UTF8.self))
            let bytes = Array(reply.utf8)
            _ = bytes.withUnsafeBytes { send(3, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
        state.cleanUp(record: record, lease: lease)
        return 0
    }

    struct KeeperState {
        let vmm: pid_t
        var snapshots: [(temporary: String, final: String, lock: String)] = []
        var published: Set<Int> = []
        var jailed = false

        init(vmm: pid_t) { self.vmm = vmm }

        mutating func handle(_ message: String) -> String {
            let f = message.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            switch f.first {
            case "snapshot" where f.count == 4 && snapshots.count < 2 && !isJailed():
                snapshots.append((f[1], f[2], f[3]))
                return "ok \(snapshots.count - 1)"
            case "publish" where f.count == 2:
                return publish(Int(f[1]) ?? -1)
            case "posture":
                return postureReply()
            default:
                return "refused: \(message.prefix(32))"
            }
        }

        /// Once the VMM is in its own mount namespace it names no path.
        func isJailed() -> Bool {
            FS.readLink("/proc/\(vmm)/ns/mnt") != FS.readLink("/proc/self/ns/mnt")
        }

        mutating func publish(_ index: Int) -> String {
            guard snapshots.indices.contains(index), !published.contains(index) else { return "no snapshot \(index) to publish" }
            let s = snapshots[index]
            published.insert(index)
            defer { unlink(s.lock) }
            // Exactly the two files the VMM wrote through the descriptors it
            // was given, regular and owned by root (the jailed VMM can create
            // nothing there).
            let entries = ((try? FS.listDirectory(s.temporary)) ?? []).sorted()
            guard entries == ["memory", "state"], entries.allSatisfy({ name in
                guard let st = FS.lstat(Path.join(s.temporary, name)) else { return false }
                return (st.st_mode & S_IFMT) == S_IFREG && st.st_uid == 0 && st.st_nlink == 1
            }) else {
                try? FS.removeTree(s.temporary)
                return "the snapshot's directory holds \(entries) instead of its two files"
            }
            // Another run may have published one meanwhile: keep theirs.
            if rename(s.temporary, s.final) != 0 { try? FS.removeTree(s.temporary) }
            return "ok"
        }

        func postureReply() -> String {
            guard let p = JailPosture.read(pid: vmm) else { return "{}" }
            let mine = JailPosture.read(pid: getpid())?.peakRSS ?? 0
            return JSON.object([("summary", .string(p.summary)), ("jail", p.json),
                                ("peakRSS", .integer(Int64(p.peakRSS))), ("keeperPeakRSS", .integer(Int64(mine)))]).serialized()
        }

        func cleanUp(record: String, lease: String) {
            // Out of its cgroup first: removing the cgroup kills what is in it.
            ProcessCgroupScope.moveToCgroupsOf(getpid(), pid: vmm)
            for (i, s) in snapshots.enumerated() where !published.contains(i) { try? FS.removeTree(s.temporary) }
            RunRecord.cleanup(record)
            VMMIdentity.release(lease)
        }
    }
}

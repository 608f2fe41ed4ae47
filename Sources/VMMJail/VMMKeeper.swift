#if canImport(Glibc)
import Glibc
#endif
import Cgroups
import CSyscalls
import CVMMJail
import NativeThreads
import RunRecords
import SwvmBase

/// The privileged half of a VM run. The VMM jails itself and can then no
/// longer clean up after itself (its cgroup, its network, its run record,
/// its uid) or publish the snapshot it saved, or read its own posture (it
/// has no /proc). That is a keeper's: swvm-vmm-keeper, a small C program
/// next to swvm (it waits for the whole run, so it holds no Swift runtime:
/// Sources/swvm-vmm-keeper). A foreground run's keeper is the VMM's parent,
/// its monitor (VMMMonitor); an OCI container's VMM, whose `swvm create`
/// does not stay, starts its own before the jail (`spawn`), in a process
/// group of its own and deaf to the terminal's signals. The two talk over a socketpair (SOCK_SEQPACKET, fd 3
/// in the keeper) in swvm_keeper.h's requests; the keeper trusts no path
/// from the VMM once it is jailed. When the VMM is done or dead (end of
/// file) the keeper execs `swvm vmm-keeper`, which runs `cleanUp`: the
/// clean-up steps stay swvm's own.
///
/// The VMM waits for the keeper at its end, so what the run held on the
/// host is gone when `swvm run` exits. A foreground VMM killed with
/// SIGKILL is cleaned up by its keeper just the same (the monitor, outside
/// the VMM's pid namespace); an OCI or detached VMM's own keeper is inside
/// that namespace and dies with it, so `delete`, the detached monitor's
/// end, or the next VM start's stale-run sweep cleans up instead.
public final class VMMKeeper: Sendable {
    let fd: Int32
    public let pid: pid_t
    private let finished = Locked(false)

    /// Starts the keeper of this process's run, recorded in `record`.
    public static func spawn(record: String, identity: VMMIdentity) throws -> VMMKeeper {
        let exe = FS.executablePath()
        let keeperPath = try executable()
        var pair: [Int32] = [-1, -1]
        try sys("socketpair (the VMM's keeper)") { socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) }
        defer { close(pair[1]) }
        let args = [keeperPath, String(hostPID), record, identity.leasePath, exe]
        let child: pid_t
        do {
            child = try Spawn.start(keeperPath, argv: args, actions: [.dup(pair[1], to: SWVM_KEEPER_SOCKET_FD)],
                                    newProcessGroup: true)
        } catch {
            close(pair[0])
            throw SwvmError.errno("spawn the VMM's keeper (\(keeperPath))", error.errno)
        }
        return VMMKeeper(fd: pair[0], pid: child)
    }

    /// swvm-vmm-keeper, next to swvm.
    static func executable() throws -> String {
        let keeperPath = Path.join(Path.dirname(FS.executablePath()), SWVM_KEEPER_EXECUTABLE)
        guard access(keeperPath, X_OK) == 0 else {
            throw SwvmError(.notFound, "the VMM's keeper \(keeperPath) is missing (built with swvm: swift build)")
        }
        return keeperPath
    }

    /// `pid` 0: the keeper is the VMM's parent, its monitor (VMMMonitor).
    init(fd: Int32, pid: pid_t) {
        self.fd = fd
        self.pid = pid
    }

    deinit { finish() }

    /// Sends one request and returns the keeper's reply.
    func request(_ message: String) throws -> [UInt8] {
        let bytes = Array(message.utf8)
        guard bytes.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == bytes.count else {
            throw SwvmError.errno("the VMM's keeper: send \(message.prefix(16))")
        }
        var buf = [UInt8](repeating: 0, count: Int(SWVM_KEEPER_MESSAGE_MAX))
        let n = recv(fd, &buf, buf.count, 0)
        guard n >= 0 else { throw SwvmError.errno("the VMM's keeper: receive the reply to \(message.prefix(16))") }
        guard n > 0 || message == SWVM_KEEPER_POSTURE else {
            throw SwvmError(.internalError, "the VMM's keeper ended before it answered \(message.prefix(16))")
        }
        return Array(buf[0..<n])
    }

    func textRequest(_ message: String) throws -> String {
        String(decoding: try request(message), as: UTF8.self)
    }

    /// Before the jail: a snapshot this run may publish (at most two: a
    /// boot snapshot and an image template); its index.
    public func announceSnapshot(temporary: String, final: String, lock: String) throws -> Int {
        let reply = try textRequest([SWVM_KEEPER_SNAPSHOT, temporary, final, lock].joined(separator: "\t"))
        guard reply.hasPrefix(SWVM_KEEPER_OK + " "), let index = Int(reply.dropFirst(SWVM_KEEPER_OK.count + 1)) else {
            throw SwvmError(.internalError, "the VMM's keeper: \(reply)")
        }
        return index
    }

    /// Moves the announced snapshot `index` into place.
    public func publishSnapshot(_ index: Int) throws {
        let reply = try textRequest("\(SWVM_KEEPER_PUBLISH)\t\(index)")
        guard reply == SWVM_KEEPER_OK else { throw SwvmError(.systemCall, "publish the snapshot: \(reply)") }
    }

    /// The VMM's posture as the keeper read it from /proc: the summary,
    /// the JSON, the VMM's and the keeper's peak RSS.
    public func posture() -> (summary: String, json: JSON, peakRSS: UInt64, keeperPeakRSS: UInt64)? {
        guard let reply = try? request(SWVM_KEEPER_POSTURE), let p = JailPosture.parse(records: reply) else { return nil }
        return (p.posture.summary, p.posture.json, p.posture.peakRSS, p.readerPeakRSS)
    }

    /// The VMM is done: the keeper cleans up, and this waits until it has.
    public func finish() {
        guard finished.with({ done in defer { done = true }; return !done }) else { return }
        close(fd)
        var status: Int32 = 0
        while pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }
}

// MARK: the clean-up (`swvm vmm-keeper`, exec'd by the keeper at the end)

extension VMMKeeper {
    /// What the run held on the host, once the VMM `vmm` is done or dead:
    /// its cgroups (the VMM moved out of them first: removing a cgroup
    /// kills what is in it, and the VMM waits for this), network, record,
    /// uid lease, and `discard`, the directories of unpublished snapshots.
    public static func cleanUp(vmm: pid_t, record: String, lease: String, discard: [String]) {
        for s in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU] { signal(s, SIG_IGN) }
        if vmm > 0 { ProcessCgroupScope.moveToCgroupsOf(hostPID, pid: vmm) }
        for d in discard { try? FS.removeTree(d) }
        RunRecord.cleanup(record)
        VMMIdentity.release(lease)
    }
}

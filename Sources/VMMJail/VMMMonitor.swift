#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import CVMMJail
import RunRecords
import SwvmBase

/// A foreground `swvm run --isolation=vm` as issue 20's process model has
/// it: a small privileged monitor whose child is the VMM that jails
/// itself. The swvm process checks the run (image, options), takes the
/// run's record and its uid lease, starts the VMM (swvm exec'd again as
/// `swvm run --monitored-vmm ID:UID:FD ...`, Spawn.vmm: PID 1 of a pid
/// namespace of its own, dying with this process), and then execs the C
/// keeper in its monitor mode (Sources/swvm-vmm-keeper): the same pid,
/// without the Swift runtime, serves the VMM's requests (snapshots,
/// posture), forwards the signals sent to `swvm run`, reaps the VMM, and
/// at the end execs `swvm vmm-keeper`, which cleans up and exits with the
/// VMM's status. The VMM inherits stdio (-t, -i) and --report-fd.
///
/// A monitor killed with SIGKILL takes its VMM along (parent-death
/// signal); what the run held on the host is then removed by the next
/// swvm (RunRecord.removeStale, VMMIdentity.removeStale), as for a killed
/// container run.
public enum VMMMonitor {
    /// The hidden option that makes `swvm run` the monitored VMM.
    public static let option = "--monitored-vmm"

    /// What the VMM is told by its monitor: the run's id (its record),
    /// the uid leased for it, and its end of the keeper's socket.
    public struct Link {
        public let id: String
        public let identity: VMMIdentity
        public let keeper: VMMKeeper
        /// Its socket to the monitor (the jail's JailPlan.monitorSocket).
        public var socket: Int32 { keeper.fd }

        /// "ID:UID:FD", as `run` writes it.
        public init(parsing text: String) throws {
            let f = text.split(separator: ":", omittingEmptySubsequences: false)
            guard f.count == 3, !f[0].isEmpty, f[0].allSatisfy({ $0.isHexDigit }), let uid = UInt32(f[1]), uid > 0,
                  let fd = Int32(f[2]), fd > 2 else {
                throw SwvmError(.invalidArgument, "\(VMMMonitor.option) \(text): expected ID:UID:FD (swvm run sets it for its VMM)")
            }
            // Its own, not its subprocesses' (nft, ip).
            guard fcntl(fd, F_SETFD, FD_CLOEXEC) == 0 else { throw SwvmError.errno("\(VMMMonitor.option): descriptor \(fd)") }
            guard FS.isDirectory(RunRecord.directory(for: String(f[0]))) else {
                throw SwvmError(.notFound, "\(VMMMonitor.option): no run record for \(f[0])")
            }
            id = String(f[0])
            identity = VMMIdentity(leased: uid)
            keeper = VMMKeeper(fd: fd, pid: 0)
        }
    }

    /// Becomes the monitor of the run `id`, whose VMM runs `swvm run`
    /// with `runArguments` (the words after "run"). Returns only by
    /// throwing, when the VMM could not be started.
    public static func run(id: String, runArguments: [String]) throws -> Never {
        RunRecord.removeStale()
        VMMIdentity.removeStale()
        let keeperPath = try VMMKeeper.executable()
        let record = RunRecord.directory(for: id)
        try RunRecord.create(record)
        let identity: VMMIdentity
        do { identity = try VMMIdentity.lease() } catch { RunRecord.cleanup(record); throw error }
        let exe = FS.executablePath()
        let vmm: pid_t, socket: Int32
        do {
            (vmm, socket) = try spawnVMM(exe, id: id, uid: identity.uid, runArguments: runArguments)
        } catch {
            VMMKeeper.cleanUp(vmm: 0, record: record, lease: identity.leasePath, discard: [])
            throw error
        }
        // The keeper's socket on fd 3 (its command line's contract): this
        // process's copy only, the VMM has its own.
        let placed = socket == SWVM_KEEPER_SOCKET_FD ? fcntl(socket, F_SETFD, 0) : dup2(socket, SWVM_KEEPER_SOCKET_FD)
        var err = errno
        if placed >= 0 {
            let words = [keeperPath, "--monitor", String(vmm), record, identity.leasePath, exe]
            let args: [UnsafeMutablePointer<CChar>?] = words.map { w in w.withCString { strdup($0) } } + [nil]
            execv(keeperPath, args)
            err = errno
        }
        // The VMM must not run without its monitor.
        kill(vmm, SIGKILL)
        var status: Int32 = 0
        while waitpid(vmm, &status, 0) < 0 && errno == EINTR {}
        VMMKeeper.cleanUp(vmm: vmm, record: record, lease: identity.leasePath, discard: [])
        throw SwvmError.errno("become the VM's monitor (exec \(keeperPath))", err)
    }

    /// The VMM and this process's end of their socket.
    static func spawnVMM(_ exe: String, id: String, uid: UInt32, runArguments: [String]) throws -> (pid_t, Int32) {
        var pair: [Int32] = [-1, -1]
        try sys("socketpair (the VMM's keeper)") { socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) }
        defer { close(pair[1]) }
        let argv = ["swvm", "run", option, "\(id):\(uid):\(pair[1])"] + runArguments
        do {
            // From this (the main) thread, which execs and stays: the
            // parent-death signal follows the thread that cloned.
            return (try Spawn.vmm(exe, argv: argv, dups: [(pair[1], pair[1])], dieWithCaller: true), pair[0])
        } catch {
            close(pair[0])
            throw SwvmError.errno("spawn the VMM (\(exe))", error.errno)
        }
    }
}

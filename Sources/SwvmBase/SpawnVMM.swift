#if canImport(Glibc)
import Glibc
#endif
import CConfinement

/// This process's pid as the host sees it (in /proc's pid namespace). A
/// VMM is PID 1 of a pid namespace of its own, where getpid() says 1:
/// what others read by pid (a run record's owner, a uid lease, /proc/PID)
/// names it by this one. (A pid written to a cgroup's cgroup.procs is
/// read in the writer's namespace: that stays getpid().) A VMM reads it
/// before its jail takes /proc away (VMMJail.apply).
public let hostPID: pid_t = resolveHostPID(procSelf: FS.readLink("/proc/self"), pid: getpid())

/// /proc/self's name, or without /proc getpid(), said on stderr: it is the
/// host's pid only outside a pid namespace of this process's own. PID 1
/// (of such a namespace: the host's init never runs swvm) would name
/// another process in records and leases, and ends with 125.
func resolveHostPID(procSelf: String?, pid: pid_t) -> pid_t {
    if let own = procSelf.flatMap({ pid_t($0) }) { return own }
    if pid == 1 {
        Log.error("cannot tell this process's pid on the host: /proc is not mounted and it is PID 1 of a pid namespace")
        exit(125)
    }
    Log.warning("/proc is not mounted: taking getpid() (\(pid)) as this process's pid on the host, "
                + "which is wrong inside a pid namespace of its own")
    return pid
}

extension Spawn {
    /// Starts the VMM, swvm exec'd again (`swvm vmm ...`, `swvm run`'s
    /// VMM), through swvm_spawn_vmm: PID 1 of a pid namespace of its own,
    /// no Swift between clone and execve. `dups`: (from, to) in order
    /// (equal: kept open across execve). `newSession`: setsid.
    /// `dieWithCaller`: SIGKILL when this process ends (a foreground
    /// run's VMM; call it from the thread that stays: the parent-death
    /// signal follows the thread). `hold`: a pipe's ends; the VMM waits
    /// for one byte on its read end before execve (see `release`), and
    /// exits 125 at EOF. Returns its pid as the host sees it.
    public static func vmm(_ path: String, argv: [String], dups: [(Int32, Int32)] = [], newSession: Bool = false,
                           dieWithCaller: Bool = false, hold: (read: Int32, write: Int32)? = nil) throws(Failure) -> pid_t {
        let cargs = argv.map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        let from = dups.map { $0.0 }, to = dups.map { $0.1 }
        let pid = path.withCString { cpath in
            cargs.withUnsafeBufferPointer { argv in
                from.withUnsafeBufferPointer { f in
                    to.withUnsafeBufferPointer { t in
                        var s = swvm_vmm_spawn(path: cpath, argv: argv.baseAddress, envp: nil, dup_from: f.baseAddress,
                                               dup_to: t.baseAddress, ndup: Int32(dups.count), new_session: newSession ? 1 : 0,
                                               parent_death_signal: dieWithCaller ? SIGKILL : 0, hold_fd: hold?.read ?? -1,
                                               hold_write_fd: hold?.write ?? -1)
                        return swvm_spawn_vmm(&s)
                    }
                }
            }
        }
        guard pid > 0 else { throw Failure(errno: errno) }
        return pid
    }

    /// Lets a VMM started with `hold` go on to its execve.
    public static func release(_ hold: Int32) -> Bool {
        var go: UInt8 = 1
        return write(hold, &go, 1) == 1
    }
}

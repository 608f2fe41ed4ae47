#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import RuntimeSpec
import Seccomp
import SwvmBase

/// The last steps in the container before execve, in crun's order:
/// hostname, rlimits, the working directory, the capability bounding set,
/// the user and groups, capabilities, no_new_privs, seccomp, exec.
enum ProcessSetup {
    static let prCapbsetDrop: Int32 = 24, prSetKeepcaps: Int32 = 8, prSetNoNewPrivs: Int32 = 38
    static let prSetPdeathsig: Int32 = 1

    static func setHostname(_ name: String) throws {
        try sys("sethostname") { sethostname(name, name.utf8.count) }
    }

    static func applyRlimits(_ limits: [Rlimit]) throws {
        for l in limits {
            var r = rlimit(rlim_cur: rlim_t(l.soft), rlim_max: rlim_t(l.hard))
            guard setrlimit(__rlimit_resource_t(UInt32(l.resource)), &r) == 0 else {
                throw SwvmError(.invalidArgument, "--ulimit \(l.name)=\(l.soft):\(l.hard): \(errnoText(errno))")
            }
        }
    }

    /// mkdir -p of the working directory (Docker creates a missing one).
    static func ensureWorkdir(_ path: String) {
        var current = ""
        for c in Path.components(path) {
            current += "/" + c
            mkdir(current, 0o755)
        }
    }

    static func dropBoundingSet(keeping caps: Set<String>) throws {
        for n in 0...Capabilities.lastCapability where !caps.contains(Capabilities.names[n]) {
            if sys_prctl(prCapbsetDrop, UInt(n), 0, 0, 0) != 0 && errno != EINVAL {
                throw SwvmError.errno("drop capability \(Capabilities.names[n])")
            }
        }
    }

    static func switchUser(uid: UInt32, gid: UInt32, groups: [UInt32]) throws {
        try sys("prctl(PR_SET_KEEPCAPS)") { sys_prctl(prSetKeepcaps, 1, 0, 0, 0) }
        try groups.withUnsafeBufferPointer { g in
            try sys("setgroups") { sys_setgroups(g.count, g.baseAddress) }
        }
        try sys("setresgid \(gid)") { sys_setresgid(gid, gid, gid) }
        try sys("setresuid \(uid)") { sys_setresuid(uid, uid, uid) }
        try sys("prctl(PR_SET_KEEPCAPS, 0)") { sys_prctl(prSetKeepcaps, 0, 0, 0, 0) }
        // Changing credentials clears the parent-death signal; set it again.
        _ = sys_prctl(prSetPdeathsig, UInt(SIGKILL), 0, 0, 0)
    }

    /// Effective and permitted = the granted set; inheritable empty (as
    /// Docker since CVE-2022-24769). A non-root user keeps none across exec.
    static func setCapabilities(_ caps: Set<String>) throws {
        let mask = Capabilities.mask(caps)
        try sys("capset") { sys_capset(mask, mask, 0) }
    }

    static func setNoNewPrivileges() throws {
        try sys("prctl(PR_SET_NO_NEW_PRIVS)") { sys_prctl(prSetNoNewPrivs, 1, 0, 0, 0) }
    }

    static func loadSeccomp(_ filter: SeccompFilter) throws {
        try filter.program.withUnsafeBytes { p in
            try sys("seccomp") { sys_seccomp_set_filter(p.baseAddress, UInt16(filter.instructionCount), 0) }
        }
    }

    /// Resolves the command through PATH the way execvp does, in the
    /// container's filesystem; throws the 126/127 errors Docker reports.
    static func resolveExecutable(_ name: String, path: String?) throws -> String {
        if name.contains("/") {
            try checkExecutable(name, display: name)
            return name
        }
        let dirs = (path ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin").split(separator: ":", omittingEmptySubsequences: false)
        var sawDenied = false
        for d in dirs {
            let candidate = (d.isEmpty ? "." : String(d)) + "/" + name
            var st = stat()
            guard stat(candidate, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
            if access(candidate, X_OK) == 0 { return candidate }
            sawDenied = true
        }
        if sawDenied {
            throw SwvmError(.commandNotExecutable, "exec: \"\(name)\": permission denied")
        }
        throw SwvmError(.commandNotFound, "exec: \"\(name)\": executable file not found in $PATH")
    }

    static func checkExecutable(_ path: String, display: String) throws {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw SwvmError(.commandNotFound, "exec: \"\(display)\": stat \(path): no such file or directory")
        }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            throw SwvmError(.commandNotExecutable, "exec: \"\(display)\": is a directory")
        }
        if access(path, X_OK) != 0 {
            throw SwvmError(.commandNotExecutable, "exec: \"\(display)\": permission denied")
        }
    }

    /// execve, or the Docker-style error for why it failed.
    static func exec(_ path: String, args: [String], env: [String]) -> SwvmError {
        var cargs = args.map { strdup($0) } + [nil]
        var cenv = env.map { strdup($0) } + [nil]
        execve(path, &cargs, &cenv)
        let e = errno
        switch e {
        case ENOENT:
            return SwvmError(.commandNotFound, "exec: \"\(args[0])\": \(path): no such file or directory (or its interpreter is missing)")
        case EACCES, EPERM:
            return SwvmError(.commandNotExecutable, "exec: \"\(args[0])\": permission denied")
        case ENOEXEC:
            return SwvmError(.commandNotExecutable, "exec: \"\(args[0])\": exec format error")
        default:
            return SwvmError(.commandNotExecutable, "exec: \"\(args[0])\": \(errnoText(e))")
        }
    }

    /// Default dispositions and an empty mask for the new program.
    static func resetSignals() {
        for s in 1..<32 where s != SIGKILL && s != SIGSTOP { _ = sys_set_signal_handler(Int32(s), nil) }
        var empty = sigset_t()
        sigemptyset(&empty)
        sigprocmask(SIG_SETMASK, &empty, nil)
    }
}

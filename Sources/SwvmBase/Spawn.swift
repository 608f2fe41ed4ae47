#if canImport(Glibc)
import Glibc
#endif

/// posix_spawn, the one way swvm starts another program. Every child
/// starts with an empty signal mask and default dispositions: swvm blocks
/// signals for its own signal handling, and a helper, hook or keeper that
/// inherited that mask would ignore SIGTERM and SIGINT.
public enum Spawn {
    /// What posix_spawn does to the child's descriptors, in order.
    public enum Action: Sendable {
        case dup(Int32, to: Int32)
        case open(Int32, path: String, flags: Int32)
    }

    /// posix_spawn's error number.
    public struct Failure: Error, Sendable {
        public let errno: Int32
    }

    /// Starts `path` with `argv` (argv[0] included) and `environment`
    /// (nil: swvm's own). `searchPath`: look `path` up in PATH as execvp
    /// does. `newProcessGroup`: the child leads a group of its own, so a
    /// terminal's signals for swvm do not reach it. `newSession`: setsid,
    /// as a daemon (swvm's monitor), with no controlling terminal.
    public static func start(_ path: String, argv: [String], environment: [String]? = nil, actions: [Action] = [],
                             searchPath: Bool = false, newProcessGroup: Bool = false,
                             newSession: Bool = false) throws(Failure) -> pid_t {
        var fileActions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fileActions)
        defer { posix_spawn_file_actions_destroy(&fileActions) }
        for action in actions {
            switch action {
            case let .dup(fd, to): posix_spawn_file_actions_adddup2(&fileActions, fd, to)
            case let .open(fd, path, flags): posix_spawn_file_actions_addopen(&fileActions, fd, path, flags, 0)
            }
        }
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setsigdefault(&attr, &all)
        var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        if newProcessGroup {
            flags |= POSIX_SPAWN_SETPGROUP
            posix_spawnattr_setpgroup(&attr, 0)
        }
        if newSession { flags |= 0x80 }   // POSIX_SPAWN_SETSID (glibc 2.26), not imported into Swift
        posix_spawnattr_setflags(&attr, Int16(flags))
        let cargs = argv.map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        let cenv = environment.map { $0.map { strdup($0) } + [nil] }
        defer { for p in cenv ?? [] { free(p) } }
        var pid: pid_t = 0
        let r = cenv.map { env in
            searchPath ? posix_spawnp(&pid, path, &fileActions, &attr, cargs, env)
                       : posix_spawn(&pid, path, &fileActions, &attr, cargs, env)
        } ?? (searchPath ? posix_spawnp(&pid, path, &fileActions, &attr, cargs, environ)
                         : posix_spawn(&pid, path, &fileActions, &attr, cargs, environ))
        guard r == 0 else { throw Failure(errno: r) }
        return pid
    }
}

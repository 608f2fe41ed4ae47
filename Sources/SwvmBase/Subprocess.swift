#if canImport(Glibc)
import Glibc
#endif
import CSyscalls

/// Runs a helper program (mkfs.ext4, ...) to completion with posix_spawn,
/// capturing its output.
public enum Subprocess {
    public struct Result {
        public let status: Int32
        public let output: String
    }

    /// `input` is the program's stdin, at most a pipe's buffer (64 KiB): it
    /// is written before the program starts, so a program that exits early
    /// cannot raise SIGPIPE here.
    public static func run(_ argv: [String], environment: [String]? = nil, input: String? = nil) throws -> Result {
        let out = try makePipe()
        let inPipe = input == nil ? nil : try makePipe()
        if let p = inPipe, let text = input {
            guard text.utf8.count <= 65536 else { throw SwvmError(.internalError, "input for \(argv[0]) is over 64 KiB") }
            try p.write.writeAll(Array(text.utf8))
            p.write.close()
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let p = inPipe {
            posix_spawn_file_actions_adddup2(&actions, p.read.raw, 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, out.write.raw, 1)
        posix_spawn_file_actions_adddup2(&actions, out.write.raw, 2)
        var pid: pid_t = 0
        let cargs = argv.map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        let env = environment ?? ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"]
        let cenv = env.map { strdup($0) } + [nil]
        defer { for p in cenv { free(p) } }
        let r = posix_spawnp(&pid, argv[0], &actions, nil, cargs, cenv)
        guard r == 0 else {
            if r == ENOENT { throw SwvmError(.notFound, "\(argv[0]) is not installed") }
            throw SwvmError.errno("spawn \(argv[0])", r)
        }
        out.write.close()
        inPipe?.read.close()
        let output = (try? out.read.readAll(limit: 1 << 20)) ?? []
        let (_, status) = waitForExit(pid)
        return Result(status: shellStatus(fromWaitStatus: status), output: String(decoding: output, as: UTF8.self))
    }
}

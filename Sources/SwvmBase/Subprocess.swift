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
        let stdin: Spawn.Action = inPipe.map { .dup($0.read.raw, to: 0) } ?? .open(0, path: "/dev/null", flags: O_RDONLY)
        let env = environment ?? [DefaultSearchPath.environment, "LC_ALL=C"]
        let pid: pid_t
        do {
            pid = try Spawn.start(argv[0], argv: argv, environment: env,
                                  actions: [stdin, .dup(out.write.raw, to: 1), .dup(out.write.raw, to: 2)], searchPath: true)
        } catch {
            if error.errno == ENOENT { throw SwvmError(.notFound, "\(argv[0]) is not installed") }
            throw SwvmError.errno("spawn \(argv[0])", error.errno)
        }
        out.write.close()
        inPipe?.read.close()
        let output = (try? out.read.readAll(limit: 1 << 20)) ?? []
        let (_, status) = waitForExit(pid)
        return Result(status: shellStatus(fromWaitStatus: status), output: String(decoding: output, as: UTF8.self))
    }
}

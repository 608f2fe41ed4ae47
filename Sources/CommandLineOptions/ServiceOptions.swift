import ArgumentParser
import SwvmBase

/// `swvm run`'s options for a container that outlives the command (Docker's
/// -d, --name, --rm, --log-opt). The other options are RunOptions, the same
/// for a detached run and a foreground one.
public struct ServiceOptions: ParsableArguments {
    @Flag(name: [.short, .long], help: "Run in the background, kept by a monitor process (its log, its exit status); print its id.")
    public var detach = false

    @Option(help: ArgumentHelp("A unique name for the container (with -d).", valueName: "name"))
    public var name: String?

    @Flag(name: .customLong("rm"), help: "Remove the container once it exits (a foreground run always leaves nothing).")
    public var remove = false

    @Option(name: .customLong("log-opt"), help: ArgumentHelp("max-size=BYTES: the most output kept for `swvm logs` (default 8m, at least 64k; the older half is dropped first).", valueName: "key=value"))
    public var logOpt: [String] = []

    public init() {}

    /// --log-opt max-size, in bytes (nil: the default).
    public func logMaxSize() throws -> UInt64? {
        var size: UInt64?
        for opt in logOpt {
            let kv = opt.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2, kv[0] == "max-size" else {
                throw SwvmError(.invalidArgument, "--log-opt '\(opt)': swvm knows max-size=BYTES")
            }
            let bytes: UInt64
            do { bytes = try ByteSize.parse(kv[1]) } catch let e as SwvmError { throw SwvmError(e.code, "--log-opt max-size: \(e.message)") }
            guard bytes >= 64 << 10 else { throw SwvmError(.invalidArgument, "--log-opt max-size=\(kv[1]): the minimum is 64k") }
            size = bytes
        }
        return size
    }

    /// What a foreground run cannot do.
    public func checkForeground() throws {
        if name != nil { throw SwvmError(.unsupported, "--name: only a detached run (-d) is kept under a name") }
        if !logOpt.isEmpty { throw SwvmError(.unsupported, "--log-opt: only a detached run (-d) keeps a log") }
    }
}

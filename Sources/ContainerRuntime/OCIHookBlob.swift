import CConfinement
import RuntimeSpec
import SwvmBase

/// The hooks a container's init runs itself (createContainer, then
/// startContainer), with the state each gets on stdin, as the blob
/// swvm_oci_hooks.h lays out: swvm create's answer to the init's MSG_HOOKS.
public struct OCIHookBlob: Equatable, Sendable {
    public var createContainer: [OCIHook]
    public var startContainer: [OCIHook]
    public var createState: String
    public var startState: String

    public init(createContainer: [OCIHook], startContainer: [OCIHook], createState: String, startState: String) {
        self.createContainer = createContainer
        self.startContainer = startContainer
        self.createState = createState
        self.startState = startState
    }

    /// The bytes for the sync pipe, their length first. A string with a NUL
    /// (the wire's terminator), a timeout over UInt32 or a blob over the
    /// limit is an error naming the hook.
    public func encoded() throws -> [UInt8] {
        var body: [UInt8] = []
        try Self.put(createState, "the container's state", into: &body)
        try Self.put(startState, "the container's state", into: &body)
        body += le32(UInt32(createContainer.count)) + le32(UInt32(startContainer.count))
        for (kind, hooks) in [("createContainer", createContainer), ("startContainer", startContainer)] {
            for (i, hook) in hooks.enumerated() {
                let what = "config.json hooks.\(kind)[\(i)]"
                guard let timeout = UInt32(exactly: max(hook.timeout ?? 0, 0)) else {
                    throw SwvmError(.invalidArgument, "\(what).timeout: \(hook.timeout ?? 0) is out of range")
                }
                guard hook.args.count + hook.env.count <= Int(SWVM_HOOKS_MAX_STRINGS) - 1 else {
                    throw SwvmError(.invalidArgument, "\(what): over \(SWVM_HOOKS_MAX_STRINGS - 1) args and env entries")
                }
                body += le32(timeout) + le32(UInt32(hook.args.count)) + le32(UInt32(hook.env.count))
                for s in [hook.path] + hook.args + hook.env { try Self.put(s, what, into: &body) }
            }
        }
        guard body.count <= Int(SWVM_HOOKS_MAX_BLOB) else {
            throw SwvmError(.invalidArgument, "config.json hooks: \(body.count) bytes for the init, over \(SWVM_HOOKS_MAX_BLOB)")
        }
        return le32(UInt32(body.count)) + body
    }

    static func put(_ s: String, _ what: String, into body: inout [UInt8]) throws {
        let bytes = Array(s.utf8)
        guard !bytes.contains(0) else { throw SwvmError(.invalidArgument, "\(what): a string holds a NUL byte") }
        body += bytes + [0]
    }
}

import SwvmBase

/// A container id as the runc command line takes it: it names a directory
/// under --root, so anything that could leave that directory (a '/', "..",
/// a NUL) or that no file system takes (empty, over 1,024 bytes) is refused.
public enum ContainerID {
    public static let maxBytes = 1024

    public static func validate(_ id: String) throws {
        let bytes = id.utf8
        guard !bytes.isEmpty else { throw SwvmError(.invalidArgument, "container id cannot be empty") }
        guard bytes.count <= maxBytes else {
            throw SwvmError(.invalidArgument, "invalid container id: \(bytes.count) bytes, over the \(maxBytes)-byte limit")
        }
        guard !bytes.contains(0) else { throw SwvmError(.invalidArgument, "invalid container id: it contains a NUL byte") }
        guard !bytes.contains(UInt8(ascii: "/")) else {
            throw SwvmError(.invalidArgument, "invalid container id '\(UntrustedText.escaped(id))': it contains '/'")
        }
        guard id != ".", !id.contains("..") else {
            throw SwvmError(.invalidArgument, "invalid container id '\(UntrustedText.escaped(id))': it contains '..' or is '.'")
        }
    }
}

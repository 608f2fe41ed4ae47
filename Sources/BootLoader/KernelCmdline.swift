import SwvmBase

/// A kernel command line being assembled: parameters in order, each
/// checked, and the total checked against the boot protocol's limit.
/// Arguments for init (after "--") are kept apart so that parameters added
/// later still land before them.
public struct KernelCmdline: CustomStringConvertible {
    public private(set) var parameters: [String] = []
    public private(set) var initArguments: [String] = []
    public let capacity: Int

    public init(capacity: Int = X86Layout.cmdlineMaxSize) {
        self.capacity = capacity
    }

    /// Appends parameters as a user would type them (`key`, `key=value`,
    /// several separated by spaces; words after "--" go to init).
    public mutating func append(_ text: String) throws {
        var toInit = false
        for word in text.split(separator: " ", omittingEmptySubsequences: true) {
            guard !word.contains("\0"), !word.contains("\n") else {
                throw SwvmError(.invalidArgument, "kernel command line: invalid character in '\(word)'")
            }
            if word == "--" && !toInit { toInit = true; continue }
            if toInit { initArguments.append(String(word)) } else { parameters.append(String(word)) }
        }
        let length = description.utf8.count + 1
        guard length <= capacity else {
            throw SwvmError(.invalidArgument,
                            "kernel command line is \(length) bytes, more than the \(capacity) the kernel accepts")
        }
    }

    /// Whether a parameter with this key (before '=') is present.
    public func contains(key: String) -> Bool {
        parameters.contains { $0 == key || $0.hasPrefix(key + "=") }
    }

    public var description: String {
        let params = parameters.joined(separator: " ")
        if initArguments.isEmpty { return params }
        return params + " -- " + initArguments.joined(separator: " ")
    }

    /// NUL-terminated bytes as the kernel reads them.
    public var bytes: [UInt8] { Array(description.utf8) + [0] }
}

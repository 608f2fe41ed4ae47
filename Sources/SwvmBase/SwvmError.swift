#if canImport(Glibc)
import Glibc
#endif
import CSyscalls

/// The one error type of swvm: a code that says what kind of failure it is
/// (and so which exit status the command ends with), and a message for the
/// user that names what was wrong and where.
public struct SwvmError: Error, CustomStringConvertible, Equatable {
    public enum Code: String, Sendable {
        case invalidArgument        // bad flag value or combination
        case notFound               // a file, image, ref or kernel that is not there
        case invalidImage           // malformed image layout, manifest, config or bundle
        case digestMismatch         // a blob whose content does not match its digest
        case unsafeLayer            // a layer entry that would escape the root
        case unknownUser            // -u names a user or group the image does not have
        case commandNotFound        // the process's executable is missing (127)
        case commandNotExecutable   // the process's executable cannot be run (126)
        case kvmUnavailable         // /dev/kvm missing, inaccessible or lacking features
        case vmFailed               // the VM ended abnormally (exit reason, guest crash)
        case guestError             // guest-init reported a failure
        case systemCall             // a system call failed unexpectedly
        case unsupported            // a feature this host or isolation level cannot give
        case noSpace                // the file system of swvm's state would fill up
        case internalError
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    /// The exit status of the command when it fails with this error:
    /// Docker's convention (125 for the tool's own errors, 126 and 127 for
    /// a command that cannot be run or found).
    public var exitStatus: Int32 {
        switch code {
        case .commandNotFound: return 127
        case .commandNotExecutable: return 126
        default: return 125
        }
    }

    /// "code\nmessage": how an error crosses from the container's init or
    /// from guest-init (init.c's send_error) to swvm.
    public var encoded: [UInt8] { Array("\(code.rawValue)\n\(message)".utf8) }

    /// Reads `encoded` back; nil when the bytes are not in that form. The
    /// message is escaped (UntrustedText): it can carry an image's names,
    /// and from guest-init it is the guest's to write.
    public static func decode(_ bytes: [UInt8]) -> SwvmError? {
        let parts = String(decoding: bytes, as: UTF8.self).split(separator: "\n", maxSplits: 1).map(String.init)
        guard parts.count == 2, let code = Code(rawValue: parts[0]) else { return nil }
        return SwvmError(code, UntrustedText.escaped(parts[1]))
    }

    /// An error for a failed system call, with errno's text.
    public static func errno(_ what: String, _ err: Int32 = Glibc.errno) -> SwvmError {
        SwvmError(.systemCall, "\(what): \(errnoText(err))")
    }
}

/// strerror(3) as a String.
public func errnoText(_ err: Int32) -> String {
    String(cString: strerror(err))
}

#if canImport(Glibc)
import Glibc
#endif
import CConfinement
import CSyscalls

/// The one error type of swvm: a code that says what kind of failure it is
/// (and so which exit status the command ends with), and a message for the
/// user that names what was wrong and where. A failed system call carries
/// its parts (the step, the path or object it acted on, errno) and its
/// message is built from them.
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
    /// What swvm was doing ("open", "KVM_CREATE_VM"), when it was a system call.
    public let step: String?
    /// The path or object the step acted on, when it names one.
    public let path: String?
    /// errno of the failed system call (nil: not a system call's failure).
    public let errnoValue: Int32?
    /// The text for the user, built from the parts above when they are set.
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.step = nil
        self.path = nil
        self.errnoValue = nil
        self.message = message
    }

    public init(_ code: Code, step: String, path: String?, errno err: Int32?) {
        self.code = code
        self.step = step
        self.path = path
        self.errnoValue = err
        let subject = path.map { "\(step) \($0)" } ?? step
        self.message = err.map { "\(subject): \(errnoText($0))" } ?? subject
    }

    public var description: String { message }

    /// The exit status of the command when it fails with this error:
    /// Docker's convention, written once in C (swvm_error_exit_status).
    public var exitStatus: Int32 { swvm_error_exit_status(childCode.rawValue) }

    /// The code as the C side (the container child, guest-init) names it.
    public var childCode: swvm_error_code {
        switch code {
        case .commandNotFound: return SWVM_ERR_COMMAND_NOT_FOUND
        case .commandNotExecutable: return SWVM_ERR_COMMAND_NOT_EXECUTABLE
        case .notFound: return SWVM_ERR_NOT_FOUND
        case .invalidArgument: return SWVM_ERR_INVALID_ARGUMENT
        case .systemCall: return SWVM_ERR_SYSTEM_CALL
        default: return SWVM_ERR_INTERNAL
        }
    }

    /// Reads a MSG_ERROR payload from the container child or guest-init
    /// (swvm_error_write: u32 code, i32 errno, the message); nil when the
    /// bytes are not one. errno's text is added here, as the child may not
    /// call strerror. The message is escaped (UntrustedText): it can carry
    /// an image's names, and from guest-init it is the guest's to write.
    public static func decode(_ bytes: [UInt8]) -> SwvmError? {
        guard bytes.count >= 8 else { return nil }
        let code: Code
        switch swvm_error_code(rawValue: le32(bytes, 0)) {
        case SWVM_ERR_INTERNAL: code = .internalError
        case SWVM_ERR_SYSTEM_CALL: code = .systemCall
        case SWVM_ERR_NOT_FOUND: code = .notFound
        case SWVM_ERR_INVALID_ARGUMENT: code = .invalidArgument
        case SWVM_ERR_COMMAND_NOT_FOUND: code = .commandNotFound
        case SWVM_ERR_COMMAND_NOT_EXECUTABLE: code = .commandNotExecutable
        default: return nil
        }
        let err = Int32(bitPattern: le32(bytes, 4))
        let text = String(decoding: bytes[8...], as: UTF8.self)
        return SwvmError(code, UntrustedText.escaped(err == 0 ? text : "\(text): \(errnoText(err))"))
    }

    /// A failed system call: `step` on `path` (a file, or the object it
    /// acted on), with errno's text.
    public static func system(step: String, path: String?, errno err: Int32 = Glibc.errno) -> SwvmError {
        SwvmError(.systemCall, step: step, path: path, errno: err)
    }

    /// A failed system call whose `what` names both the step and its
    /// subject ("open /etc/passwd"), with errno's text.
    public static func errno(_ what: String, _ err: Int32 = Glibc.errno) -> SwvmError {
        SwvmError(.systemCall, step: what, path: nil, errno: err)
    }
}

/// strerror(3) as a String.
public func errnoText(_ err: Int32) -> String {
    String(cString: strerror(err))
}

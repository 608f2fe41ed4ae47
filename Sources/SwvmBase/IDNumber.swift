/// A uid or gid taken from the user, an image or a bundle, checked once.
///
/// 4294967295 is (uid_t)-1, which setresuid, setresgid and chown read as
/// "leave unchanged": a process asked to run as it would stay root. It is
/// refused like any number too large for a uid_t, never truncated.
public enum IDNumber {
    /// The largest id a process or file may be given.
    public static let max: UInt32 = 4_294_967_294

    /// `value` as an id, or an error naming where it came from:
    /// "SOURCE: uid 4294967295 is (uid_t)-1, ...".
    public static func checked<T: BinaryInteger>(_ value: T, _ kind: String, source: String,
                                                 code: SwvmError.Code = .invalidArgument) throws -> UInt32 {
        if let v = UInt32(exactly: value), v <= max { return v }
        if UInt64(exactly: value) == 4_294_967_295 {
            throw SwvmError(code, "\(source): \(kind) 4294967295 is (\(kind)_t)-1, which setres\(kind) and chown take as \"unchanged\": the process would stay root")
        }
        throw SwvmError(code, "\(source): \(kind) \(value) is out of range (0 to \(max))")
    }

    /// Decimal text as an id: nil when `text` is not all digits (a name),
    /// an error when it is a number out of range.
    public static func parse<S: StringProtocol>(_ text: S, _ kind: String, source: String,
                                                code: SwvmError.Code = .invalidArgument) throws -> UInt32? {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
        guard let v = UInt64(text) else { throw SwvmError(code, "\(source): \(kind) \(text) is out of range (0 to \(max))") }
        return try checked(v, kind, source: source, code: code)
    }
}

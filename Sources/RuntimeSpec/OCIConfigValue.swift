import SwvmBase

/// A value of config.json (or process.json) with its JSON path, so each
/// error names where it is: "config.json process.user.uid: ...". Absent and
/// null members read as absent; a member of the wrong type, a number out of
/// range or a fraction is an error, never skipped, rounded or truncated.
struct OCIConfigValue {
    let json: JSON
    /// "process.user.uid", "mounts[2].destination"; "" for the document.
    let path: String
    /// "config.json", "process.json".
    let file: String

    init(_ json: JSON, path: String = "", file: String = "config.json") {
        self.json = json
        self.path = path
        self.file = file
    }

    func error(_ what: String) -> SwvmError {
        SwvmError(.invalidImage, path.isEmpty ? "\(file): \(what)" : "\(file) \(path): \(what)")
    }

    /// The member `key`, or nil when it is absent or null; an error when
    /// this value is not an object.
    func member(_ key: String) throws -> OCIConfigValue? {
        guard json.object != nil else { throw error("expected an object, found \(json.kindName)") }
        guard let v = json[key], !v.isNull else { return nil }
        return OCIConfigValue(v, path: path.isEmpty ? key : "\(path).\(key)", file: file)
    }

    /// The member `key`, which must be there.
    func required(_ key: String) throws -> OCIConfigValue {
        guard let v = try member(key) else { throw child(key).error("missing (it is required)") }
        return v
    }

    func child(_ key: String) -> OCIConfigValue {
        OCIConfigValue(.null, path: path.isEmpty ? key : "\(path).\(key)", file: file)
    }

    // MARK: this value as a type

    func string() throws -> String {
        guard let s = json.string else { throw error("expected a string, found \(json.kindName)") }
        // Every string here reaches a system call as a C string.
        guard !s.utf8.contains(0) else { throw error("\(json.serialized()) contains a NUL byte") }
        return s
    }

    func bool() throws -> Bool {
        guard let b = json.bool else { throw error("expected true or false, found \(json.kindName)") }
        return b
    }

    func items() throws -> [OCIConfigValue] {
        guard let a = json.array else { throw error("expected an array, found \(json.kindName)") }
        return a.enumerated().map { OCIConfigValue($0.element, path: "\(path)[\($0.offset)]", file: file) }
    }

    func strings() throws -> [String] { try items().map { try $0.string() } }

    /// An object of strings (annotations, sysctl), in the document's order;
    /// a key given twice keeps its last value, at its first place.
    func stringMap(allowNUL: Bool = false) throws -> [(String, String)] {
        guard let members = json.object else { throw error("expected an object, found \(json.kindName)") }
        var out: [(String, String)] = []
        for (key, value) in members {
            let v = OCIConfigValue(value, path: "\(path).\(key)", file: file)
            let text = allowNUL ? try v.anyString() : try v.string()
            if let i = out.firstIndex(where: { $0.0 == key }) { out[i].1 = text } else { out.append((key, text)) }
        }
        return out
    }

    private func anyString() throws -> String {
        guard let s = json.string else { throw error("expected a string, found \(json.kindName)") }
        return s
    }

    /// An integer literal that fits `T` (and `range`, when given). A whole
    /// number written as 1e3 or 2.0 is taken when exact; a fraction is not.
    func integer<T: FixedWidthInteger>(_: T.Type, in range: ClosedRange<T>? = nil, what: String? = nil) throws -> T {
        let value: T?
        switch json {
        case .integer(let i): value = T(exactly: i)
        case .unsigned(let u): value = T(exactly: u)
        case .number(let d):
            guard d.rounded() == d else { throw error("\(json.serialized()) is not a whole number") }
            // Past 2^53 a double no longer holds every integer: out of any range here.
            value = abs(d) < 9.007_199_254_740_992e15 ? T(exactly: Int64(d)) : nil
        default: throw error("expected a number, found \(json.kindName)")
        }
        let bounds = range ?? (T.min...T.max)
        guard let v = value, bounds.contains(v) else {
            let kind = what.map { " for \($0)" } ?? ""
            throw error("\(json.serialized()) is out of range\(kind) (\(bounds.lowerBound) to \(bounds.upperBound))")
        }
        return v
    }

    /// A uid or gid: IDNumber's checks (never (uid_t)-1, never truncated).
    func id(_ kind: String) throws -> UInt32 {
        let source = "\(file) \(path)"
        switch json {
        case .integer(let i): return try IDNumber.checked(i, kind, source: source, code: .invalidImage)
        case .unsigned(let u): return try IDNumber.checked(u, kind, source: source, code: .invalidImage)
        case .number(let d) where d.rounded() == d && abs(d) < 9.007_199_254_740_992e15:
            return try IDNumber.checked(Int64(d), kind, source: source, code: .invalidImage)
        case .number(let d) where d.rounded() == d:
            throw SwvmError(.invalidImage, "\(source): \(kind) \(json.serialized()) is out of range (0 to \(IDNumber.max))")
        case .number: throw SwvmError(.invalidImage, "\(source): \(kind) \(json.serialized()) is not a whole number")
        default: throw error("expected a \(kind) (a number), found \(json.kindName)")
        }
    }

    /// An absolute path (a mount destination, a hook, a masked path).
    func absolutePath() throws -> String {
        let p = try string()
        guard p.hasPrefix("/") else { throw error("'\(p)' is not an absolute path") }
        return p
    }

    // MARK: optional members, read as a type

    func string(_ key: String) throws -> String? { try member(key)?.string() }
    func bool(_ key: String) throws -> Bool? { try member(key)?.bool() }
    func strings(_ key: String) throws -> [String]? { try member(key)?.strings() }
    func items(_ key: String) throws -> [OCIConfigValue] { try member(key)?.items() ?? [] }
    func integer<T: FixedWidthInteger>(_ key: String, _ type: T.Type, in range: ClosedRange<T>? = nil, what: String? = nil) throws -> T? {
        try member(key)?.integer(type, in: range, what: what)
    }
}

extension JSON {
    /// "a string", "an object"... for messages.
    var kindName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number, .integer, .unsigned: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}

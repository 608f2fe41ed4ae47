#if canImport(Glibc)
import Glibc
#endif
import RuntimeSpec
import SwvmBase

/// state.json's text. Reading it is strict: the file lives under --root,
/// where only swvm writes, but a disk, a crash or another tool may have
/// damaged it, and a wrong pid read from it would send signals to a
/// stranger. Every field is checked; an error names the file and field.
extension ContainerRecord {
    public static let formatVersion: Int64 = 1

    public func encoded() -> [UInt8] {
        var members: [(String, JSON)] = [
            ("swvmStateVersion", .integer(ContainerRecord.formatVersion)),
            ("id", .string(id)), ("bundle", .string(bundle)), ("rootfs", .string(rootfs)),
            ("createFinished", .bool(createFinished)),
            ("creator", Self.encode(creator)), ("created", .string(created)),
            ("annotations", .object(annotations.map { ($0.key, .string($0.value)) })),
            ("cgroupPaths", .array(cgroupPaths.map { .string($0) })),
            ("poststart", .array(poststart.map(Self.encode))), ("poststop", .array(poststop.map(Self.encode))),
        ]
        if let p = initProcess { members.append(("init", Self.encode(p))) }
        if let c = cgroupsPath { members.append(("cgroupsPath", .string(c))) }
        if paused { members.append(("paused", .bool(true))) }
        return Array(JSON.object(members).serialized().utf8)
    }

    /// Reads state.json's bytes; `file` names it in errors.
    public static func decode(_ bytes: [UInt8], file: String) throws -> ContainerRecord {
        let json: JSON
        do {
            json = try JSON.parse(bytes)
        } catch let e as JSON.ParseError {
            throw SwvmError(.internalError, "\(file) is corrupt: \(e.description)")
        }
        let r = FieldReader(json, file: file)
        guard json.object != nil else { throw r.fail("", "not a JSON object") }
        guard try r.integer("swvmStateVersion", in: 1...Int64.max) == formatVersion else {
            throw r.fail("swvmStateVersion", "a version this swvm does not read")
        }
        var record = ContainerRecord(id: try r.string("id"), bundle: try r.string("bundle"), rootfs: try r.string("rootfs"),
                                     creator: try r.process("creator"), created: try r.string("created"))
        record.createFinished = try r.bool("createFinished")
        record.initProcess = json["init"] == nil ? nil : try r.process("init")
        record.annotations = try r.stringMap("annotations").map { OCIAnnotation(key: $0.0, value: $0.1) }
        record.cgroupsPath = json["cgroupsPath"] == nil ? nil : try r.string("cgroupsPath")
        record.cgroupPaths = try r.strings("cgroupPaths")
        record.poststart = try r.hooks("poststart")
        record.poststop = try r.hooks("poststop")
        record.paused = json["paused"] == nil ? false : try r.bool("paused")
        try ContainerID.validate(record.id)
        return record
    }

    static func encode(_ p: ProcessIdentity) -> JSON {
        .object([("pid", .integer(Int64(p.pid))), ("startTime", .integer(Int64(bitPattern: p.startTime)))])
    }

    static func encode(_ h: OCIHook) -> JSON {
        var members: [(String, JSON)] = [("path", .string(h.path)), ("args", .array(h.args.map { .string($0) })),
                                         ("env", .array(h.env.map { .string($0) }))]
        if let t = h.timeout { members.append(("timeout", .integer(Int64(t)))) }
        return .object(members)
    }
}

/// Typed, range-checked access to state.json's fields, naming the field
/// that is wrong.
struct FieldReader {
    let json: JSON
    let file: String
    /// Where `json` is in the file ("poststop[0]"); "" at the top.
    let at: String

    init(_ json: JSON, file: String, at: String = "") {
        self.json = json
        self.file = file
        self.at = at
    }

    func fail(_ field: String, _ what: String) -> SwvmError {
        let name = at.isEmpty ? field : field.isEmpty ? at : "\(at).\(field)"
        return SwvmError(.internalError, "\(file) is corrupt: \(name.isEmpty ? "" : "\(name): ")\(what)")
    }

    func value(_ field: String) throws -> JSON {
        guard let v = json[field] else { throw fail(field, "missing") }
        return v
    }

    func string(_ field: String) throws -> String {
        guard let s = try value(field).string else { throw fail(field, "not a string") }
        guard !s.utf8.contains(0) else { throw fail(field, "contains a NUL byte") }
        return s
    }

    func bool(_ field: String) throws -> Bool {
        guard let b = try value(field).bool else { throw fail(field, "not a boolean") }
        return b
    }

    func integer(_ field: String, in range: ClosedRange<Int64>) throws -> Int64 {
        guard case .integer(let i) = try value(field) else { throw fail(field, "not a whole number") }
        guard range.contains(i) else { throw fail(field, "\(i) is out of range") }
        return i
    }

    func process(_ field: String) throws -> ProcessIdentity {
        let r = FieldReader(try value(field), file: file, at: field)
        guard r.json.object != nil else { throw fail(field, "not an object") }
        let pid = try r.integer("pid", in: 0...Int64(Int32.max))
        let start = try r.integer("startTime", in: 0...Int64.max)
        return ProcessIdentity(pid: pid_t(pid), startTime: UInt64(start))
    }

    func strings(_ field: String) throws -> [String] {
        guard let items = try value(field).array else { throw fail(field, "not an array") }
        return try items.enumerated().map { i, item in
            guard let s = item.string, !s.utf8.contains(0) else { throw fail("\(field)[\(i)]", "not a string") }
            return s
        }
    }

    func stringMap(_ field: String) throws -> [(String, String)] {
        guard let members = try value(field).object else { throw fail(field, "not an object") }
        return try members.map { key, v in
            guard let s = v.string else { throw fail("\(field).\(key)", "not a string") }
            return (key, s)
        }
    }

    func hooks(_ field: String) throws -> [OCIHook] {
        guard let items = try value(field).array else { throw fail(field, "not an array") }
        return try items.enumerated().map { i, item in
            let r = FieldReader(item, file: file, at: "\(field)[\(i)]")
            guard item.object != nil else { throw fail("\(field)[\(i)]", "not an object") }
            let timeout = item["timeout"] == nil ? nil : Int(try r.integer("timeout", in: 1...Int64(Int32.max)))
            return OCIHook(path: try r.string("path"), args: try r.strings("args"), env: try r.strings("env"), timeout: timeout)
        }
    }
}

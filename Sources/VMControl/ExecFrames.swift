#if canImport(Glibc)
import Glibc
#endif
import CConfinement
import RunSettingsWire
import SwvmBase

/// An exec's process, as a client asks for it: the rest of its
/// confinement is the workload's (see "exec and control" in
/// swvm_run_settings.h).
public struct ExecRequest: Sendable {
    public var args: [String]
    public var env: [String]
    public var cwd: String
    public var uid: UInt32
    public var gid: UInt32
    public var groups: [UInt32]
    /// A pty of this size (rows, cols) for the process's stdio.
    public var terminal: (rows: UInt16, cols: UInt16)?
    /// The caller's stdin is relayed; otherwise the process reads /dev/null.
    public var interactive: Bool

    public init(args: [String], env: [String] = [DefaultSearchPath.environment],
                cwd: String = "/", uid: UInt32 = 0, gid: UInt32 = 0, groups: [UInt32] = [],
                terminal: (rows: UInt16, cols: UInt16)? = nil, interactive: Bool = false) {
        self.args = args
        self.env = env
        self.cwd = cwd
        self.uid = uid
        self.gid = gid
        self.groups = groups
        self.terminal = terminal
        self.interactive = interactive
    }

    /// MSG_EXEC's payload: the head, then the fields swvm_exec_decode takes.
    public func encode(id: UInt32) -> [UInt8] {
        var f = RunSettings.Fields()
        for a in args { f.add(CFG_ARG, a) }
        for e in env { f.add(CFG_ENV, e) }
        f.add(CFG_CWD, cwd)
        f.add(CFG_UID, le32(uid))
        f.add(CFG_GID, le32(gid))
        if !groups.isEmpty { f.add(CFG_GROUPS, groups.flatMap { le32($0) }) }
        if let t = terminal { f.add(CFG_TERMINAL, le16(t.rows) + le16(t.cols)) }
        if interactive { f.add(CFG_INTERACTIVE, true) }
        return ExecFrames.head(id) + f.bytes
    }
}

/// A process of the workload, as `ps` lists it (pids in the workload's
/// pid namespace).
public struct GuestProcess: Equatable, Sendable {
    public var pid: UInt32
    public var ppid: UInt32
    public var uid: UInt32
    public var command: String

    public init(pid: UInt32, ppid: UInt32, uid: UInt32, command: String) {
        self.pid = pid
        self.ppid = ppid
        self.uid = uid
        self.command = command
    }
}

/// The exec and control frames in Swift, over the C encoders and
/// decoders of swvm_run_settings.h (the one definition of their layout).
public enum ExecFrames {
    public static func frame(_ type: swvm_message, _ payload: [UInt8]) -> [UInt8] {
        var header = [UInt8](repeating: 0, count: Int(SWVM_FRAME_HEADER))
        swvm_frame_header_encode(&header, type.rawValue, UInt32(payload.count))
        return header + payload
    }

    public static func head(_ id: UInt32) -> [UInt8] {
        var m = swvm_exec_head(id: id)
        var out = [UInt8](repeating: 0, count: Int(SWVM_EXEC_HEAD_LEN))
        swvm_exec_head_encode(&m, &out)
        return out
    }

    public static func value(_ id: UInt32, _ value: UInt32) -> [UInt8] {
        var m = swvm_exec_value(id: id, value: value)
        var out = [UInt8](repeating: 0, count: Int(SWVM_EXEC_VALUE_LEN))
        swvm_exec_value_encode(&m, &out)
        return out
    }

    public static func decodeHead(_ p: [UInt8]) -> UInt32? {
        var m = swvm_exec_head()
        return swvm_exec_head_decode(p, p.count, &m) == 0 ? m.id : nil
    }

    public static func decodeValue(_ p: [UInt8]) -> (id: UInt32, value: UInt32)? {
        var m = swvm_exec_value()
        return swvm_exec_value_decode(p, p.count, &m) == 0 ? (m.id, m.value) : nil
    }

    public static func resize(_ id: UInt32, rows: UInt16, cols: UInt16) -> [UInt8] {
        var m = swvm_exec_resize(id: id, rows: rows, cols: cols)
        var out = [UInt8](repeating: 0, count: Int(SWVM_EXEC_RESIZE_LEN))
        swvm_exec_resize_encode(&m, &out)
        return out
    }

    /// MSG_EXEC_INPUT's or MSG_EXEC_OUTPUT's payload.
    public static func data(_ id: UInt32, stream: UInt32, _ bytes: ArraySlice<UInt8>) -> [UInt8] {
        var head = [UInt8](repeating: 0, count: Int(SWVM_EXEC_DATA_HEAD_LEN))
        swvm_exec_data_encode(id, stream, &head)
        return head + bytes
    }

    /// nil when the payload breaks the layout (a stream over 2, a chunk
    /// over SWVM_EXEC_CHUNK, too short).
    public static func decodeData(_ p: [UInt8]) -> (id: UInt32, stream: UInt32, bytes: ArraySlice<UInt8>)? {
        var m = swvm_exec_data()
        guard swvm_exec_data_decode(p, p.count, &m) == 0 else { return nil }
        let head = Int(SWVM_EXEC_DATA_HEAD_LEN)
        return (m.id, m.stream, p[head..<(head + Int(m.data_len))])
    }

    /// Checks a MSG_EXEC payload as guest-init will decode it
    /// (swvm_exec_decode): whether it relays stdin and has a terminal, or
    /// the decoder's error.
    public static func checkRequest(_ p: [UInt8]) throws -> (interactive: Bool, terminal: Bool) {
        var head = swvm_exec_head()
        var s = swvm_settings()
        var error = [CChar](repeating: 0, count: 256)
        guard swvm_exec_decode(p, p.count, &head, &s, &error, error.count) == 0 else {
            throw SwvmError(.invalidArgument, String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        defer { swvm_settings_free(&s) }
        return (s.interactive != 0, s.terminal != 0)
    }

    /// An error payload (MSG_ERROR's layout), or with `id` MSG_EXEC_ERROR's.
    public static func error(_ code: swvm_error_code, _ message: String, id: UInt32? = nil) -> [UInt8] {
        let text = Array((message.isEmpty ? "an error" : message).utf8.prefix(4096))   // never empty: a base address
        var out = [UInt8](repeating: 0, count: text.count + 12)
        let n = text.withUnsafeBufferPointer { t in
            t.baseAddress!.withMemoryRebound(to: CChar.self, capacity: max(t.count, 1)) {
                swvm_exec_error_encode(id ?? 0, code.rawValue, 0, $0, UInt32(t.count), &out, out.count)
            }
        }
        return Array(out[(id == nil ? 4 : 0)..<n])
    }

    /// MSG_EXEC_ERROR's payload: the exec id and the error, its message
    /// the guest's words (escaped by SwvmError.decode); nil when too short.
    public static func decodeExecError(_ p: [UInt8]) -> (id: UInt32, error: SwvmError)? {
        guard let id = decodeHead(p) else { return nil }
        let rest = Array(p.dropFirst(Int(SWVM_EXEC_HEAD_LEN)))
        return (id, SwvmError.decode(rest) ?? SwvmError(.guestError, "a malformed exec error (\(rest.count) bytes)"))
    }

    /// MSG_PS_LIST's payload: the request id and every entry; nil when an
    /// entry is cut short or over its limits.
    public static func decodeProcesses(_ p: [UInt8]) -> (id: UInt32, processes: [GuestProcess])? {
        guard let id = decodeHead(p) else { return nil }
        var off = Int(SWVM_EXEC_HEAD_LEN)
        var list: [GuestProcess] = []
        while true {
            var e = swvm_ps_entry()
            let r = swvm_ps_entry_next(p, p.count, &off, &e)
            if r == 0 { return (id, list) }
            guard r == 1 else { return nil }
            let start = off - Int(e.command_len)
            let command = UntrustedText.escaped(String(decoding: p[start..<off], as: UTF8.self))
            list.append(GuestProcess(pid: e.pid, ppid: e.ppid, uid: e.uid, command: command))
        }
    }
}

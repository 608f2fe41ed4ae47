import CConfinement
import SwvmBase
import VMControl

/// The host <-> guest-init frames over the control port. Their framing,
/// limits, types and payload layouts are defined once in
/// swvm_run_settings.h (the CConfinement target), with the C functions
/// both sides encode and decode them with; MSG_CONFIG's payload is
/// RunSettings.encode's.
public enum GuestProtocol {
    // host -> guest
    public static let config = MSG_CONFIG.rawValue, signal = MSG_SIGNAL.rawValue, resize = MSG_RESIZE.rawValue,
                      start = MSG_START.rawValue, run = MSG_RUN.rawValue
    // guest -> host
    public static let ready = MSG_READY.rawValue, started = MSG_STARTED.rawValue, exit = MSG_EXIT.rawValue,
                      error = MSG_ERROR.rawValue, confined = MSG_CONFINED.rawValue, created = MSG_CREATED.rawValue,
                      templatePoint = MSG_TEMPLATE_POINT.rawValue

    /// The protocol version both sides speak (in READY).
    public static let version = SWVM_PROTOCOL_VERSION

    /// nil when READY's payload names this swvm's version; otherwise why
    /// the run cannot go on (a guest-init built from other sources).
    public static func versionError(ready payload: [UInt8]) -> SwvmError? {
        var ready = swvm_ready()
        let got: UInt32 = swvm_ready_decode(payload, payload.count, &ready) == 0 ? ready.version : 0
        guard got != version else { return nil }
        return SwvmError(.guestError, "guest-init speaks guest protocol version \(got), this swvm version \(version): "
                         + "use the guest-init built from the same sources (guest-init/build.sh)")
    }

    /// The longest payload swvm takes from the guest.
    public static let maxPayload = Int(SWVM_MAX_GUEST_FRAME)

    /// A host -> guest frame (ExecFrames.frame: swvm_frame_header_encode's header).
    public static func frame(_ type: UInt32, _ payload: [UInt8]) -> [UInt8] {
        ExecFrames.frame(swvm_message(rawValue: type), payload)
    }

    /// MSG_SIGNAL for the workload's PID 1.
    public static func signalFrame(_ signal: Int32) -> [UInt8] {
        var m = swvm_signal(signal: UInt32(bitPattern: signal))
        var bytes = [UInt8](repeating: 0, count: Int(SWVM_SIGNAL_LEN))
        swvm_signal_encode(&m, &bytes)
        return frame(GuestProtocol.signal, bytes)
    }

    /// MSG_RESIZE with the host terminal's size.
    public static func resizeFrame(rows: UInt16, cols: UInt16) -> [UInt8] {
        var m = swvm_resize(rows: rows, cols: cols)
        var bytes = [UInt8](repeating: 0, count: Int(SWVM_RESIZE_LEN))
        swvm_resize_encode(&m, &bytes)
        return frame(GuestProtocol.resize, bytes)
    }

    /// MSG_STARTED's payload (swvm_started_decode); nil when too short.
    public static func decodeStarted(_ payload: [UInt8]) -> swvm_started? {
        var m = swvm_started()
        return swvm_started_decode(payload, payload.count, &m) == 0 ? m : nil
    }

    /// MSG_EXIT's payload (swvm_exit_decode); nil when too short.
    public static func decodeExit(_ payload: [UInt8]) -> Int32? {
        var m = swvm_exit()
        return swvm_exit_decode(payload, payload.count, &m) == 0 ? m.status : nil
    }

    /// A guest that breaks the protocol: the run ends with this error.
    static func violation(_ what: String) -> SwvmError {
        SwvmError(.vmFailed, "the guest broke swvm's control protocol: \(what)")
    }

    /// Splits a byte stream into frames; keeps an incomplete tail. Linear
    /// in what it is fed: frames are taken at an offset, and the consumed
    /// bytes are dropped once per feed, not once per frame.
    public struct Reader {
        private var buffer: [UInt8] = []
        private var start = 0
        public init() {}

        /// The whole frames `bytes` completes. Each header is read by
        /// swvm_frame_header_decode: a length over SWVM_MAX_GUEST_FRAME is
        /// an error (the stream cannot be trusted past it).
        public mutating func feed(_ bytes: [UInt8]) throws -> [(type: UInt32, payload: [UInt8])] {
            if start > 0 {
                buffer.removeFirst(start)
                start = 0
            }
            buffer += bytes
            var frames: [(UInt32, [UInt8])] = []
            let headerSize = Int(SWVM_FRAME_HEADER)
            while buffer.count - start >= headerSize {
                var type: UInt32 = 0, length: UInt32 = 0
                let valid = buffer.withUnsafeBufferPointer {
                    swvm_frame_header_decode($0.baseAddress! + start, &type, &length, SWVM_MAX_GUEST_FRAME) == 0
                }
                guard valid else {
                    throw GuestProtocol.violation("a frame of \(length) bytes (type \(type)), over the \(GuestProtocol.maxPayload)-byte limit")
                }
                let len = Int(length)
                guard buffer.count - start >= headerSize + len else { break }
                frames.append((type, Array(buffer[(start + headerSize)..<(start + headerSize + len)])))
                start += headerSize + len
            }
            return frames
        }
    }

    /// What swvm takes from guest-init: READY first (or ERROR, when
    /// guest-init fails before it is ready), then each message at most
    /// once, with its full payload. Anything else is a protocol error: a
    /// second READY would run the snapshot step again with the workload
    /// running, and would queue the settings again.
    public struct Sequence {
        private var seen: Set<UInt32>
        /// `readySent`: guest-init said READY before (a restored VM's did,
        /// before its snapshot); `templatePointSent`: and the template
        /// point (a VM restored from an image template).
        public init(readySent: Bool = false, templatePointSent: Bool = false) {
            seen = readySent ? [ready] : []
            if templatePointSent { seen.insert(templatePoint) }
        }

        /// The smallest payload of each message swvm takes.
        static let minimumPayload: [UInt32: Int] = [ready: 0, started: Int(SWVM_STARTED_MIN_LEN), confined: 0,
                                                    exit: Int(SWVM_EXIT_LEN), error: 0, created: 0, templatePoint: 0]

        /// The exec and control replies (110-119, 130-139), each as often as the
        /// guest has execs and requests, once the workload runs: their
        /// smallest payload is the exec id (or id and value); the control
        /// server checks the rest of each against its exec.
        static let execReplies: [UInt32: Int] = [
            MSG_EXEC_STARTED.rawValue: Int(SWVM_EXEC_VALUE_LEN), MSG_EXEC_OUTPUT.rawValue: Int(SWVM_EXEC_DATA_HEAD_LEN),
            MSG_EXEC_EXIT.rawValue: Int(SWVM_EXEC_VALUE_LEN), MSG_EXEC_ERROR.rawValue: Int(SWVM_EXEC_HEAD_LEN),
            MSG_PS_LIST.rawValue: Int(SWVM_EXEC_HEAD_LEN), MSG_EXEC_INPUT_ACK.rawValue: Int(SWVM_EXEC_VALUE_LEN),
            MSG_UPDATE_DONE.rawValue: Int(SWVM_EXEC_HEAD_LEN),
        ]

        public static func isExecReply(_ type: UInt32) -> Bool { execReplies[type] != nil }

        public mutating func accept(_ type: UInt32, payloadCount: Int) throws {
            if let minimum = Sequence.execReplies[type] {
                guard seen.contains(started) else { throw violation("exec message type \(type) before STARTED") }
                guard payloadCount >= minimum else {
                    throw violation("exec message type \(type) with \(payloadCount) bytes, not at least \(minimum)")
                }
                return
            }
            guard let minimum = Sequence.minimumPayload[type] else {
                throw violation("an unknown message (type \(type))")
            }
            guard !seen.contains(type) else { throw violation("\(name(type)) sent twice") }
            guard type == ready || type == error || seen.contains(ready) else {
                throw violation("\(name(type)) before READY")
            }
            guard payloadCount >= minimum else {
                throw violation("\(name(type)) with \(payloadCount) bytes, not at least \(minimum)")
            }
            seen.insert(type)
        }

        func name(_ type: UInt32) -> String {
            [ready: "READY", started: "STARTED", confined: "CONFINED", exit: "EXIT", error: "ERROR", created: "CREATED",
             templatePoint: "TEMPLATE_POINT"][type] ?? "type \(type)"
        }
    }
}

import CConfinement
import SwvmBase

/// The host <-> guest-init frames over the control port, whose types and
/// configuration fields are defined once in swvm_run_settings.h (the
/// CConfinement target). Frames are u32 type, u32 length, payload,
/// little-endian; MSG_CONFIG's payload is RunSettings.encode's.
public enum GuestProtocol {
    // host -> guest
    public static let config = MSG_CONFIG.rawValue, signal = MSG_SIGNAL.rawValue, resize = MSG_RESIZE.rawValue
    // guest -> host
    public static let ready = MSG_READY.rawValue, started = MSG_STARTED.rawValue, exit = MSG_EXIT.rawValue,
                      error = MSG_ERROR.rawValue, confined = MSG_CONFINED.rawValue

    /// The protocol version both sides speak (in READY).
    public static let version = SWVM_PROTOCOL_VERSION

    /// nil when READY's payload names this swvm's version; otherwise why
    /// the run cannot go on (a guest-init built from other sources).
    public static func versionError(ready payload: [UInt8]) -> SwvmError? {
        // An empty READY is a guest-init from before versions: 1.
        let got: UInt32 = payload.count == 4 ? le32(payload, 0) : payload.isEmpty ? 1 : 0
        guard got != version else { return nil }
        return SwvmError(.guestError, "guest-init speaks guest protocol version \(got), this swvm version \(version): "
                         + "use the guest-init built from the same sources (guest-init/build.sh)")
    }

    /// The longest payload swvm takes from the guest.
    public static let maxPayload = 1 << 20

    public static func frame(_ type: UInt32, _ payload: [UInt8]) -> [UInt8] {
        le32(type) + le32(UInt32(payload.count)) + payload
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

        /// The whole frames `bytes` completes. A length over `maxPayload`
        /// is an error (the stream cannot be trusted past it).
        public mutating func feed(_ bytes: [UInt8]) throws -> [(type: UInt32, payload: [UInt8])] {
            if start > 0 {
                buffer.removeFirst(start)
                start = 0
            }
            buffer += bytes
            var frames: [(UInt32, [UInt8])] = []
            while buffer.count - start >= 8 {
                let type = le32(buffer, start), len = Int(le32(buffer, start + 4))
                guard len <= GuestProtocol.maxPayload else {
                    throw GuestProtocol.violation("a frame of \(len) bytes (type \(type)), over the \(GuestProtocol.maxPayload)-byte limit")
                }
                guard buffer.count - start >= 8 + len else { break }
                frames.append((type, Array(buffer[(start + 8)..<(start + 8 + len)])))
                start += 8 + len
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
        /// before its snapshot).
        public init(readySent: Bool = false) {
            seen = readySent ? [ready] : []
        }

        /// The smallest payload of each message swvm takes.
        static let minimumPayload: [UInt32: Int] = [ready: 0, started: 4, confined: 0, exit: 4, error: 0]

        public mutating func accept(_ type: UInt32, payloadCount: Int) throws {
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
            [ready: "READY", started: "STARTED", confined: "CONFINED", exit: "EXIT", error: "ERROR"][type] ?? "type \(type)"
        }
    }
}

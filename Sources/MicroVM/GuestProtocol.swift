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

    public static func frame(_ type: UInt32, _ payload: [UInt8]) -> [UInt8] {
        le32(type) + le32(UInt32(payload.count)) + payload
    }

    /// Splits a byte stream into frames; keeps an incomplete tail.
    public struct Reader {
        private var buffer: [UInt8] = []
        public init() {}

        public mutating func feed(_ bytes: [UInt8]) -> [(type: UInt32, payload: [UInt8])] {
            buffer += bytes
            var frames: [(UInt32, [UInt8])] = []
            while buffer.count >= 8 {
                let type = le32(buffer, 0), len = Int(le32(buffer, 4))
                guard len <= 1 << 20 else { buffer.removeAll(); break }   // garbage: drop it
                guard buffer.count >= 8 + len else { break }
                frames.append((type, Array(buffer[8..<(8 + len)])))
                buffer.removeFirst(8 + len)
            }
            return frames
        }
    }
}

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

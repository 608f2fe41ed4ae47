import MicroVM
import SwvmBase

// What the guest sends on the control port, as swvm takes it: frames
// (GuestProtocol.Reader, fed in pieces of the sizes the input picks), each
// checked against the protocol (GuestProtocol.Sequence), and the payloads
// swvm accepts decoded as VMRunner decodes them (the error form, and
// STARTED and EXIT by the C decoders of swvm_run_settings.h). As in swvm,
// the first violation ends the stream.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGuestProtocol(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let first = bytes.first else { return 0 }
    let piece = Int(first) + 1
    var reader = GuestProtocol.Reader()
    var sequence = GuestProtocol.Sequence()
    var i = 1
    while i < bytes.count {
        let end = min(bytes.count, i + piece)
        do {
            for (type, payload) in try reader.feed(Array(bytes[i..<end])) {
                try sequence.accept(type, payloadCount: payload.count)
                switch type {
                case GuestProtocol.started:
                    guard GuestProtocol.decodeStarted(payload) != nil else { fatalError("STARTED accepted but not decoded") }
                case GuestProtocol.exit:
                    guard GuestProtocol.decodeExit(payload) != nil else { fatalError("EXIT accepted but not decoded") }
                case GuestProtocol.error:
                    _ = SwvmError.decode(payload)
                default:
                    break
                }
            }
        } catch {
            guard error is SwvmError else { fatalError("not a SwvmError: \(error)") }
            return 0
        }
        i = end
    }
    return 0
}

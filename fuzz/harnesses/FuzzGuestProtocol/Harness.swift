import MicroVM
import SwvmBase

// What the guest sends on the control port, as swvm decodes it: frames
// (GuestProtocol.Reader, fed in pieces of the sizes the input picks) and
// their payloads (the error form, the pid and status words).

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGuestProtocol(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let first = bytes.first else { return 0 }
    let piece = Int(first) + 1
    var reader = GuestProtocol.Reader()
    var i = 1
    while i < bytes.count {
        let end = min(bytes.count, i + piece)
        for (type, payload) in reader.feed(Array(bytes[i..<end])) {
            switch type {
            case GuestProtocol.started where payload.count >= 4, GuestProtocol.exit where payload.count >= 4:
                _ = le32(payload, 0)
            case GuestProtocol.error:
                _ = SwvmError.decode(payload)
            default:
                break
            }
        }
        i = end
    }
    return 0
}

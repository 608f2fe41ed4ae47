import CConfinement
import MicroVM
import SwvmBase
import VMControl

// What the guest sends on the control port, as swvm takes it: frames
// (GuestProtocol.Reader, fed in pieces of the sizes the input picks), each
// checked against the protocol (GuestProtocol.Sequence), and the payloads
// swvm accepts decoded as VMRunner decodes them (the error form, and
// STARTED and EXIT by the C decoders of swvm_run_settings.h, the exec
// and control replies as the VMM's control server decodes them). As in
// swvm, the first violation ends the stream.

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
                case let t where GuestProtocol.Sequence.isExecReply(t):
                    decodeExecReply(t, payload)
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

/// An exec or control reply, by the decoders the control server uses
/// (ExecFrames, over exec_wire.c); Sequence has checked its smallest size.
func decodeExecReply(_ type: UInt32, _ payload: [UInt8]) {
    switch type {
    case MSG_EXEC_OUTPUT.rawValue:
        guard ExecFrames.decodeHead(payload) != nil else { fatalError("OUTPUT accepted without an exec id") }
        if let d = ExecFrames.decodeData(payload), d.stream > 2 || d.bytes.count > Int(SWVM_EXEC_CHUNK) {
            fatalError("OUTPUT decoded out of its limits")
        }
    case MSG_EXEC_ERROR.rawValue:
        guard ExecFrames.decodeExecError(payload) != nil else { fatalError("EXEC_ERROR accepted without an exec id") }
    case MSG_PS_LIST.rawValue:
        _ = ExecFrames.decodeProcesses(payload)
    case MSG_UPDATE_DONE.rawValue:
        guard ExecFrames.decodeHead(payload) != nil else { fatalError("UPDATE_DONE accepted without a request id") }
    default:
        guard ExecFrames.decodeValue(payload) != nil else { fatalError("an exec reply accepted but not decoded") }
    }
}

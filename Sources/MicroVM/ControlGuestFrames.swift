#if canImport(Glibc)
import Glibc
#endif
import CConfinement
import SwvmBase
import VMControl

/// The control server's side facing guest-init: each frame of the exec
/// range decoded by its C decoder and checked against the exec it names
/// before anything reaches a client.
extension ControlServer {
    func handleGuest(_ type: UInt32, _ payload: [UInt8]) {
        switch type {
        case MSG_EXEC_OUTPUT.rawValue: output(payload)
        case MSG_EXEC_STARTED.rawValue, MSG_EXEC_EXIT.rawValue, MSG_EXEC_INPUT_ACK.rawValue: value(type, payload)
        case MSG_EXEC_ERROR.rawValue:
            guard let (id, error) = ExecFrames.decodeExecError(payload) else { return }
            if let fd = psWaiters.removeValue(forKey: id) ?? updateWaiters.removeValue(forKey: id) {
                // A ps the guest could not answer whole (too many processes),
                // an update the guest's kernel refused.
                return reply(to: fd, MSG_ERROR, ExecFrames.error(error.childCode, error.message))
            }
            guard let e = execs[id] else { return }
            reply(to: e.connection, MSG_EXEC_ERROR, payload)
            execs[id] = nil
        case MSG_PS_LIST.rawValue: processList(payload)
        case MSG_UPDATE_DONE.rawValue:
            if let id = ExecFrames.decodeHead(payload), let fd = updateWaiters.removeValue(forKey: id) { reply(to: fd, MSG_CONTROL_DONE, []) }
        default:
            // GuestProtocol.Sequence lets only the types above through.
            break
        }
    }

    private func output(_ payload: [UInt8]) {
        // An exec id the VMM does not know is one it ended (a late frame): dropped.
        guard let id = ExecFrames.decodeHead(payload), let e = execs[id] else { return }
        guard let data = ExecFrames.decodeData(payload) else {
            // The frame is the VMM's copy: its fields are read from it for the message only.
            let stream = payload.count >= 8 ? String(le32(payload, 4)) : "none"
            return violation(e, "output on stream \(stream) with \(payload.count - min(payload.count, 8)) bytes "
                             + "(streams 1 and 2, at most \(SWVM_EXEC_CHUNK) bytes a frame)")
        }
        if let broken = e.take(stream: data.stream, data.bytes) { return violation(e, broken) }
    }

    private func value(_ type: UInt32, _ payload: [UInt8]) {
        guard let v = ExecFrames.decodeValue(payload), let e = execs[v.id] else { return }
        switch type {
        case MSG_EXEC_STARTED.rawValue:
            guard !e.started else { return violation(e, "EXEC_STARTED twice") }
            e.started = true
            reply(to: e.connection, MSG_EXEC_STARTED, payload)
        case MSG_EXEC_EXIT.rawValue:
            guard e.started, e.exitStatus == nil else { return violation(e, "EXEC_EXIT before EXEC_STARTED, or twice") }
            e.exitStatus = Int32(bitPattern: v.value)
            if e.finished { finish(e) }
        default:
            guard Int(v.value) <= e.inputUnacked else {
                return violation(e, "\(v.value) bytes of input acknowledged, \(e.inputUnacked) sent")
            }
            e.inputUnacked -= Int(v.value)
        }
    }

    private func processList(_ payload: [UInt8]) {
        guard let id = ExecFrames.decodeHead(payload), let fd = psWaiters.removeValue(forKey: id) else { return }
        if ExecFrames.decodeProcesses(payload) != nil {
            reply(to: fd, MSG_PS_LIST, payload)
        } else {
            reply(to: fd, MSG_ERROR, ExecFrames.error(SWVM_ERR_INTERNAL, "the guest broke the control protocol: a malformed process list"))
        }
    }

    /// The guest broke the protocol for exec `e`: the exec ends with an
    /// error for its client, and its process is killed.
    func violation(_ e: ExecRelay, _ what: String) {
        Log.debug("exec \(e.id): the guest broke the exec protocol: \(what)")
        reply(to: e.connection, MSG_EXEC_ERROR,
              ExecFrames.error(SWVM_ERR_INTERNAL, "the guest broke the exec protocol: \(what)", id: e.id))
        toGuest(MSG_EXEC_SIGNAL, ExecFrames.value(e.id, UInt32(SIGKILL)))
        execs[e.id] = nil
    }

    /// The exec ended and its output is all written: its status to the client.
    func finish(_ e: ExecRelay) {
        reply(to: e.connection, MSG_EXEC_EXIT, ExecFrames.value(e.id, UInt32(bitPattern: e.exitStatus ?? 0)))
        execs[e.id] = nil
    }
}

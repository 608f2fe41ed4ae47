#if canImport(Glibc)
import Glibc
#endif
import CConfinement
import SwvmBase
import VMControl

/// The control server's clients: their requests and the replies.
extension ControlServer {
    func read(_ c: Connection) {
        var buf = [UInt8](repeating: 0, count: 65536)
        var fds = [Int32](repeating: -1, count: Int(SWVM_MAX_PASSED_FDS))
        var count: Int32 = 0
        let n = swvm_recv_fds(c.fd.raw, &buf, buf.count, &fds, &count)
        c.passed += fds.prefix(Int(count))
        if n < 0 && (errno == EAGAIN || errno == EINTR) { return }
        guard n > 0, c.passed.count <= Int(SWVM_MAX_PASSED_FDS) else { drop(c); return }
        do {
            for (type, payload) in try c.reader.feed(Array(buf[0..<n])) { request(c, type, payload) }
        } catch {
            drop(c)
        }
    }

    /// A client gone: its exec keeps running, detached.
    func drop(_ c: Connection) {
        for e in execs.values where e.connection == c.fd.raw { e.connection = nil }
        psWaiters = psWaiters.filter { $0.value != c.fd.raw }
        updateWaiters = updateWaiters.filter { $0.value != c.fd.raw }
        connections[c.fd.raw] = nil
    }

    private func request(_ c: Connection, _ type: UInt32, _ payload: [UInt8]) {
        do {
            switch type {
            case MSG_EXEC.rawValue: try startExec(c, payload)
            case MSG_EXEC_RESIZE.rawValue, MSG_EXEC_SIGNAL.rawValue: try forwardToExec(c, type, payload)
            case MSG_SIGNAL_ALL.rawValue:
                var sig = swvm_signal()
                guard swvm_signal_decode(payload, payload.count, &sig) == 0 else { throw SwvmError(.invalidArgument, "a short signal") }
                try requireWorkload(answering: false)
                toGuest(MSG_SIGNAL_ALL, payload)
                reply(c, MSG_CONTROL_DONE, [])
            case MSG_PS.rawValue:
                try requireWorkload()
                let id = newID()
                psWaiters[id] = c.fd.raw
                toGuest(MSG_PS, ExecFrames.head(id))
            case MSG_UPDATE.rawValue:
                var u = swvm_update()
                guard swvm_update_decode(payload, payload.count, &u) == 0 else {
                    throw SwvmError(.invalidArgument, "a malformed update (\(payload.count) bytes)")
                }
                try requireWorkload()
                u.id = newID()
                updateWaiters[u.id] = c.fd.raw
                var bytes = [UInt8](repeating: 0, count: Int(SWVM_UPDATE_LEN))
                swvm_update_encode(&u, &bytes)
                toGuest(MSG_UPDATE, bytes)
            case MSG_PAUSE.rawValue:
                guard machine.freeze() else { throw SwvmError(.vmFailed, "pause: the VM is ending, or another pause is under way") }
                reply(c, MSG_CONTROL_DONE, [])
            case MSG_RESUME.rawValue:
                machine.thaw()
                reply(c, MSG_CONTROL_DONE, [])
            default:
                throw SwvmError(.invalidArgument, "an unknown request (type \(type))")
            }
        } catch {
            let e = error as? SwvmError ?? SwvmError(.internalError, "\(error)")
            reply(c, MSG_ERROR, ExecFrames.error(e.childCode, e.message))
        }
    }

    /// An exec or ps needs the guest to answer: the workload running, the
    /// vCPUs not paused (a signal for all is queued for the resume instead).
    private func requireWorkload(answering: Bool = true) throws {
        guard workloadRunning.current else { throw SwvmError(.notFound, VMControl.workloadNotRunning) }
        guard !answering || !machine.isFrozen else { throw SwvmError(.invalidArgument, "the VM is paused: resume it first") }
    }

    private func newID() -> UInt32 {
        nextID = nextID == UInt32.max ? 1 : nextID + 1
        return nextID
    }

    /// MSG_EXEC with its three descriptors: checked, given an id, sent on.
    private func startExec(_ c: Connection, _ payload: [UInt8]) throws {
        let fds = c.passed
        c.passed = []
        let how: (interactive: Bool, terminal: Bool)
        do {
            guard fds.count == 3 else {
                throw SwvmError(.invalidArgument, "an exec request carries its stdin, stdout and stderr descriptors (got \(fds.count))")
            }
            guard c.exec == nil else { throw SwvmError(.invalidArgument, "one exec per connection") }
            try requireWorkload()
            guard execs.count < Int(SWVM_MAX_EXECS) else { throw SwvmError(.invalidArgument, "\(SWVM_MAX_EXECS) execs run already") }
            how = try ExecFrames.checkRequest(payload)
        } catch {
            for f in fds { close(f) }
            throw error
        }
        let id = newID()
        execs[id] = ExecRelay(id: id, connection: c.fd.raw, fds: fds, interactive: how.interactive)
        c.exec = id
        toGuest(MSG_EXEC, ExecFrames.head(id) + payload.dropFirst(Int(SWVM_EXEC_HEAD_LEN)))
    }

    /// A resize or signal for the connection's exec (its id is the VMM's).
    private func forwardToExec(_ c: Connection, _ type: UInt32, _ payload: [UInt8]) throws {
        guard let id = c.exec, execs[id] != nil else { throw SwvmError(.invalidArgument, "no exec runs on this connection") }
        guard payload.count >= Int(SWVM_EXEC_VALUE_LEN) else { throw SwvmError(.invalidArgument, "a short request") }
        toGuest(swvm_message(rawValue: type), ExecFrames.head(id) + payload.dropFirst(Int(SWVM_EXEC_HEAD_LEN)))
    }

    func reply(_ c: Connection, _ type: swvm_message, _ payload: [UInt8]) {
        c.out += ExecFrames.frame(type, payload)
        flush(c)
    }

    func reply(to fd: Int32?, _ type: swvm_message, _ payload: [UInt8]) {
        if let fd, let c = connections[fd] { reply(c, type, payload) }
    }

    /// Sends what the connection has queued, without blocking.
    func flush(_ c: Connection) {
        while !c.out.isEmpty {
            let n = c.out.withUnsafeBytes { send(c.fd.raw, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL)) }
            if n > 0 { c.out.removeFirst(n); continue }
            if n < 0 && (errno == EAGAIN || errno == EINTR) { return }
            drop(c)
            return
        }
    }

    // MARK: stdin

    func readInput(_ e: ExecRelay) {
        let room = min(Int(SWVM_EXEC_CHUNK), Int(SWVM_EXEC_WINDOW) - e.inputUnacked)
        var buf = [UInt8](repeating: 0, count: room)
        let n = Glibc.read(e.input.raw, &buf, room)
        if n > 0 {
            e.inputUnacked += n
            toGuest(MSG_EXEC_INPUT, ExecFrames.data(e.id, stream: 0, buf[0..<n]))
        } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
            e.inputEnded = true
            toGuest(MSG_EXEC_INPUT, ExecFrames.data(e.id, stream: 0, []))
        }
    }
}

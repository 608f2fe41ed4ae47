import CConfinement
import Testing
@testable import MicroVM
@testable import SwvmBase
import RunSettingsWire
import VMControl

/// The exec and control frames (swvm_run_settings.h, exec_wire.c) as the
/// client, the VMM and guest-init decode them.
@Suite struct ExecFramesTests {
    @Test func anExecRequestDecodesAsGuestInitTakesIt() throws {
        let r = ExecRequest(args: ["sh", "-c", "id"], env: ["A=1"], cwd: "/tmp", uid: 1000, gid: 100, groups: [5, 6],
                            terminal: (rows: 24, cols: 80), interactive: true)
        let payload = r.encode(id: 9)
        var head = swvm_exec_head()
        var s = swvm_settings()
        var error = [CChar](repeating: 0, count: 256)
        #expect(swvm_exec_decode(payload, payload.count, &head, &s, &error, error.count) == 0)
        defer { swvm_settings_free(&s) }
        #expect(head.id == 9 && s.nargs == 3 && s.nenv == 1 && s.uid == 1000 && s.gid == 100 && s.ngroups == 2)
        #expect(String(cString: s.cwd) == "/tmp" && s.terminal != 0 && s.rows == 24 && s.cols == 80 && s.interactive != 0)
        #expect(try ExecFrames.checkRequest(payload) == (interactive: true, terminal: true))
    }

    /// An exec sets its process only: the rest of its confinement is the
    /// workload's (a seccomp filter or capabilities in the request are refused).
    @Test func anExecMayNotSetItsConfinement() {
        var f = RunSettings.Fields()
        f.add(CFG_ARG, "true")
        f.add(CFG_CAPS, le64(~0))
        #expect {
            _ = try ExecFrames.checkRequest(ExecFrames.head(1) + f.bytes)
        } throws: { ($0 as? SwvmError)?.message.contains("field 9 is not one an exec may set") == true }
        #expect(throws: SwvmError.self) { _ = try ExecFrames.checkRequest(ExecRequest(args: []).encode(id: 1)) }
        #expect(throws: SwvmError.self) { _ = try ExecFrames.checkRequest(ExecRequest(args: ["true"], cwd: "relative").encode(id: 1)) }
        #expect(throws: SwvmError.self) { _ = try ExecFrames.checkRequest([1, 0]) }
    }

    @Test func dataFramesKeepToTheirStreamsAndChunk() {
        let ok = ExecFrames.data(3, stream: 2, [1, 2, 3])
        #expect(ExecFrames.decodeData(ok).map { ($0.id, $0.stream, Array($0.bytes)) }! == (3, 2, [1, 2, 3]))
        #expect(ExecFrames.decodeData(ExecFrames.data(3, stream: 3, [1])) == nil)
        #expect(ExecFrames.decodeData(ExecFrames.data(3, stream: 1, ArraySlice(repeating: 0, count: Int(SWVM_EXEC_CHUNK) + 1))) == nil)
        #expect(ExecFrames.decodeData([3, 0, 0, 0]) == nil)
    }

    @Test func processListsRoundTripAndCutOnesAreRefused() {
        var payload = ExecFrames.head(4)
        var entry = swvm_ps_entry()
        var buf = [UInt8](repeating: 0, count: 64)
        var off = 0
        let command = Array("sleep 60".utf8)
        command.withUnsafeBufferPointer { c in
            entry = swvm_ps_entry(pid: 1, ppid: 0, uid: 0, command_len: UInt16(c.count), command: c.baseAddress)
            _ = swvm_ps_entry_encode(&entry, &buf, buf.count, &off)
        }
        payload += buf[0..<off]
        #expect(ExecFrames.decodeProcesses(payload).map { $0.processes } == [GuestProcess(pid: 1, ppid: 0, uid: 0, command: "sleep 60")])
        #expect(ExecFrames.decodeProcesses(Array(payload.dropLast())) == nil)
        // A command over SWVM_PS_COMMAND.
        var long = ExecFrames.head(4) + le32(1) + le32(0) + le32(0) + le16(UInt16(SWVM_PS_COMMAND) + 1)
        long += [UInt8](repeating: 0x61, count: Int(SWVM_PS_COMMAND) + 1)
        #expect(ExecFrames.decodeProcesses(long) == nil)
    }

    /// Exec replies come any number of times, once the workload runs, each
    /// at least as long as its ids.
    @Test func execRepliesAreTakenAfterStartedOnly() throws {
        var s = GuestProtocol.Sequence()
        try s.accept(GuestProtocol.ready, payloadCount: 4)
        #expect(throws: SwvmError.self) { try s.accept(MSG_EXEC_OUTPUT.rawValue, payloadCount: 8) }
        try s.accept(GuestProtocol.started, payloadCount: 8)
        for _ in 0..<3 { try s.accept(MSG_EXEC_OUTPUT.rawValue, payloadCount: 8) }
        try s.accept(MSG_EXEC_EXIT.rawValue, payloadCount: 8)
        try s.accept(MSG_PS_LIST.rawValue, payloadCount: 4)
        #expect(throws: SwvmError.self) { try s.accept(MSG_EXEC_EXIT.rawValue, payloadCount: 7) }
    }

    @Test func errorsCarryTheirCodeAndMessage() {
        let payload = ExecFrames.error(SWVM_ERR_COMMAND_NOT_FOUND, "no such binary", id: 5)
        let decoded = ExecFrames.decodeExecError(payload)
        #expect(decoded?.id == 5 && decoded?.error.code == .commandNotFound && decoded?.error.exitStatus == 127)
        #expect(decoded?.error.message.contains("no such binary") == true)
    }
}

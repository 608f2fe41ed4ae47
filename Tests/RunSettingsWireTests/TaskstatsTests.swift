import CConfinement
import Testing
@testable import SwvmBase

/// guest-init's early exit report reads the guest kernel's TASKSTATS
/// messages (swvm_taskstats.h). The messages here are ones a real kernel
/// sent to a listener set up as guest-init's is (the FuzzTaskstats seeds:
/// a child's exit(3), exit(0), SIGKILL and SIGSEGV; a group that had a
/// thread; exit_group from a thread; the leader's exit(2) before its
/// thread's), each prefixed by the fuzz harness's mode byte and the pid
/// watched.
struct TaskstatsTests {
    static let corpus = Path.join(Path.dirname(Path.dirname(Path.dirname("\(#filePath)"))), "fuzz/corpus/FuzzTaskstats")
    static let family: UInt16 = 0x17   // the harness's (the seeds carry it)

    func seed(_ name: String) throws -> (pid: UInt32, message: [UInt8]) {
        let b = try FS.readFile(Path.join(Self.corpus, name))
        let pid = UInt32(b[1]) | UInt32(b[2]) << 8 | UInt32(b[3]) << 16 | UInt32(b[4]) << 24
        return (pid, Array(b[5...]))
    }

    func exitStatus(_ message: [UInt8], pid: UInt32, family: UInt16 = family) -> Int32? {
        var ws: Int32 = -1
        return swvm_taskstats_exit(message, message.count, family, pid, &ws) == 1 ? ws : nil
    }

    @Test func theEndOfASingleThreadedGroupGivesItsWaitStatus() throws {
        for (name, ws) in [("exit-3", 0x300), ("exit-0", 0), ("sigkill", 9), ("sigsegv", 11)] {
            let s = try seed(name)
            #expect(exitStatus(s.message, pid: s.pid) == Int32(ws), "\(name)")
            #expect(exitStatus(s.message, pid: s.pid + 1) == nil, "\(name), another pid watched")
            #expect(exitStatus(s.message, pid: s.pid, family: Self.family + 1) == nil, "\(name), another family")
        }
    }

    /// The status waitpid gives a group that had threads is the group's
    /// code, which the message's thread need not carry: left to waitpid.
    @Test func groupsThatHadThreadsAreLeftToWaitpid() throws {
        for name in ["had-threads-exit-5", "exit-group-from-thread", "leader-thread-exit"] {
            let s = try seed(name)
            #expect(exitStatus(s.message, pid: s.pid) == nil, "\(name)")
        }
    }

    @Test func everyCutMessageIsRefused() throws {
        let s = try seed("exit-3")
        for n in 0..<s.message.count {
            #expect(exitStatus(Array(s.message[..<n]), pid: s.pid) == nil, "cut to \(n) bytes")
        }
    }

    /// A length field past its container, or the statistics too short to
    /// hold the fields read, is refused rather than read past.
    @Test func lengthsThatDoNotFitAreRefused() throws {
        let s = try seed("exit-3")
        var tooLong = s.message
        tooLong[0] &+= 4   // nlmsg_len past the datagram
        #expect(exitStatus(tooLong, pid: s.pid) == nil)
        var nested = s.message
        nested[20] &+= 8   // the AGGR_PID attribute past the message
        #expect(exitStatus(nested, pid: s.pid) == nil)
        var stats = s.message
        stats[32] = 100; stats[33] = 0   // the STATS attribute shorter than ac_tgid's end
        #expect(exitStatus(stats, pid: s.pid) == nil)
    }

    /// The socket filter reads the pid where the kernel puts it; pid 0 passes nothing.
    @Test func theFilterComparesThePidAtItsOffset() throws {
        let s = try seed("exit-3")
        var prog = [swvm_bpf_insn](repeating: swvm_bpf_insn(), count: Int(SWVM_TS_FILTER_LEN))
        swvm_taskstats_filter(s.pid, &prog)
        let at = Int(SWVM_TS_PID_OFFSET)
        let loaded = s.message[at..<at + 4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }   // big-endian, as BPF_ABS loads
        #expect(prog[0].code == 0x20 && prog[0].k == SWVM_TS_PID_OFFSET)
        #expect(prog[1].k == loaded)
        swvm_taskstats_filter(0, &prog)
        #expect(prog[0].code == 0x06 && prog[0].k == 0)
    }

    @Test func familyRepliesAndAcknowledgements() throws {
        let reply = try seed("family-reply").message, error = try seed("family-error-reply").message
        #expect(swvm_genl_family_id(reply, reply.count, "TASKSTATS") != 0)
        #expect(swvm_genl_family_id(reply, reply.count, "TASKSTAT") == 0)
        #expect(swvm_genl_family_id(error, error.count, "TASKSTATS") == 0)
        let ack = try seed("ack").message
        #expect(swvm_netlink_acked(ack, ack.count) == 1)
        #expect(swvm_netlink_acked(error, error.count) == 0)
        for n in 0..<reply.count { _ = swvm_genl_family_id(Array(reply[..<n]), n, "TASKSTATS") }
    }
}

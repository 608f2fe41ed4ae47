import CConfinement
import Testing
@testable import GuestMemory
@testable import MicroVM
@testable import SwvmBase
@testable import Virtio
import NativeThreads

/// Drives a multiport console through the handshake the Linux driver does.
@Suite struct ConsoleDeviceTests {
    final class Driver {
        let memory: GuestMemory
        var queues: [VirtQueue] = []
        var availIdx: [UInt16]
        var usedSeen: [UInt16]
        var nextBuffer: GuestAddress = 0x100000

        init(count: Int) throws {
            memory = try GuestMemory(ranges: [(0, 4 << 20)])
            availIdx = Array(repeating: 0, count: count)
            usedSeen = Array(repeating: 0, count: count)
            for i in 0..<count {
                let q = VirtQueue(index: i, maxSize: 32, memory: memory)
                q.size = 32
                q.descTable = 0x1000 + UInt64(i) * 0x1000
                q.availRing = 0x40000 + UInt64(i) * 0x1000
                q.usedRing = 0x80000 + UInt64(i) * 0x1000
                try q.enable()
                queues.append(q)
            }
        }

        /// Adds one buffer to queue `q` (device-writable, or readable with `data`).
        func give(_ q: Int, data: [UInt8]? = nil, size: UInt32 = 256) throws {
            let addr = nextBuffer
            nextBuffer += 0x1000
            let slot = availIdx[q] % 32
            let d = queues[q].descTable + 16 * UInt64(slot)
            if let data { try memory.writeBytes(data, at: addr) }
            try memory.write(addr, at: d)
            try memory.write(data.map { UInt32($0.count) } ?? size, at: d + 8)
            try memory.write(UInt16(data == nil ? 2 : 0), at: d + 12)
            try memory.write(slot, at: queues[q].availRing + 4 + 2 * UInt64(slot))
            availIdx[q] &+= 1
            try memory.write(availIdx[q], at: queues[q].availRing + 2)
        }

        /// Buffers the device returned on queue `q` since the last call.
        func taken(_ q: Int) throws -> [[UInt8]] {
            var out: [[UInt8]] = []
            let used = try memory.read(UInt16.self, at: queues[q].usedRing + 2)
            while usedSeen[q] != used {
                let e = queues[q].usedRing + 4 + 8 * UInt64(usedSeen[q] % 32)
                let id = try memory.read(UInt32.self, at: e)
                let len = try memory.read(UInt32.self, at: e + 4)
                let addr = try memory.read(UInt64.self, at: queues[q].descTable + 16 * UInt64(id))
                out.append(try memory.readBytes(at: addr, count: Int(len)))
                usedSeen[q] &+= 1
            }
            return out
        }
    }

    static func control(_ id: UInt32, _ event: UInt16, _ value: UInt16) -> [UInt8] {
        [UInt8(id & 0xff), 0, 0, 0, UInt8(event), 0, UInt8(value), 0]
    }

    @Test func handshakeDataAndEOF() throws {
        let console = ConsoleDevice(ports: [("control", true), ("in", false), ("out", true)])
        let d = try Driver(count: console.queueSizes.count)
        let interrupts = Locked(0)
        console.activate(queues: d.queues, negotiated: 1 << 1, interrupt: { interrupts.with { $0 += 1 } })
        for _ in 0..<16 { try d.give(2) }    // control receive buffers

        try d.give(3, data: Self.control(0, 0, 1))   // DEVICE_READY
        console.queueNotified(3)
        let adds = try d.taken(2)
        #expect(adds.count == 3)
        #expect(adds.allSatisfy { $0[4] == 1 })       // DEVICE_ADD for ports 0, 1, 2

        for id in 0..<3 { try d.give(3, data: Self.control(UInt32(id), 3, 1)) }   // PORT_READY
        console.queueNotified(3)
        let replies = try d.taken(2)
        // Each port gets its name; the host-connected ones PORT_OPEN(1).
        #expect(replies.filter { $0[4] == 7 }.count == 3)
        #expect(replies.filter { $0[4] == 6 && $0[6] == 1 }.map { $0[0] } == [0, 2])
        #expect(replies.contains { $0[4] == 7 && Array($0[8...]) == Array("out".utf8) })

        // Guest -> host on port 2's transmit queue (index 2 + 2*2 + 1 = 7).
        let received = Locked<[UInt8]>([])
        console.ports[2].onData = { bytes in received.with { $0 += bytes } }
        try d.give(7, data: Array("hello".utf8))
        console.queueNotified(7)
        #expect(received.current == Array("hello".utf8))

        // Host -> guest on port 1 (receive queue 4), held until the guest
        // opens the port (Linux drops data for closed ports), then EOF.
        console.send(Array("input".utf8), to: console.ports[1])
        try d.give(4)
        console.queueNotified(4)
        #expect(console.pendingCount(console.ports[1]) == 5)
        #expect(try d.taken(4).isEmpty)
        try d.give(3, data: Self.control(1, 6, 1))   // the guest opens port 1
        console.queueNotified(3)
        #expect(try d.taken(4) == [Array("input".utf8)])
        console.setHostConnected(console.ports[1], false)
        #expect(try d.taken(2).contains { $0[0] == 1 && $0[4] == 6 && $0[6] == 0 })
        #expect(interrupts.current > 0)
    }

    /// A driver that says DEVICE_READY and PORT_READY over and over and
    /// gives no receive buffer for the replies: the device holds at most
    /// maxControlMessages of them, then reports the limit, once.
    @Test func repeatedReadyMessagesAreBounded() throws {
        let console = ConsoleDevice(ports: [("control", true), ("in", true)])
        let d = try Driver(count: console.queueSizes.count)
        console.activate(queues: d.queues, negotiated: 1 << 1, interrupt: {})
        let limits = Locked<[String]>([])
        console.onLimit = { m in limits.with { $0.append(m) } }
        // Each round queues 2 DEVICE_ADDs, then a name and an open.
        for round in 0..<(ConsoleDevice.maxControlMessages / 2 + 10) {
            try d.give(3, data: Self.control(0, round % 2 == 0 ? 0 : 3, 1))
            console.queueNotified(3)
        }
        #expect(limits.current.count == 1, "\(limits.current)")
        #expect(limits.current.first?.contains("more than \(ConsoleDevice.maxControlMessages) control messages") == true)
        // The guest's buffers then get at most the bound.
        for _ in 0..<8 { try d.give(2) }
        console.queueNotified(2)
        #expect(try d.taken(2).count == 8)
    }

    /// Host -> guest bytes a port cannot hold are refused, and the limit is
    /// reported once.
    @Test func pendingBytesAreBounded() throws {
        let console = ConsoleDevice(ports: [("control", true)], maxPending: 100)
        let limits = Locked<[String]>([])
        console.onLimit = { m in limits.with { $0.append(m) } }
        let port = console.ports[0]
        console.send([UInt8](repeating: 1, count: 60), to: port)
        #expect(limits.current.isEmpty)
        console.send([UInt8](repeating: 2, count: 60), to: port)
        console.send([UInt8](repeating: 3, count: 1), to: port)
        #expect(limits.current == ["virtio-console: the guest left more than 100 bytes untaken on port control"])
        #expect(console.pendingCount(port) == 60)
    }
}

@Suite struct GuestProtocolTests {
    @Test func framesSplitAcrossReads() throws {
        var r = GuestProtocol.Reader()
        let a = GuestProtocol.frame(102, [7, 0, 0, 0])
        let b = GuestProtocol.frame(103, le32(5) + le32(0) + Array("exec".utf8))
        let all = a + b
        #expect(try r.feed(Array(all[0..<5])).isEmpty)
        let frames = try r.feed(Array(all[5...]))
        #expect(frames.map(\.type) == [102, 103])
        #expect(frames[0].payload == [7, 0, 0, 0])
    }

    @Test func readyCarriesTheProtocolVersion() {
        #expect(GuestProtocol.versionError(ready: le32(GuestProtocol.version)) == nil)
        let older = GuestProtocol.versionError(ready: [])
        #expect(older?.message.contains("guest protocol version 1, this swvm version \(GuestProtocol.version)") == true)
        #expect(older?.exitStatus == 125)
        #expect(GuestProtocol.versionError(ready: le32(GuestProtocol.version + 1)) != nil)
        #expect(GuestProtocol.versionError(ready: [1, 2, 3]) != nil)
    }

    /// Two megabytes of empty frames, in one piece: each frame used to be
    /// removed from the front of the buffer, moving what followed it
    /// (quadratic: a quarter of a terabyte moved for this, tens of seconds).
    @Test func megabytesOfTinyFramesAreReadInLinearTime() throws {
        let count = (2 << 20) / 8
        let flood = [UInt8]([[UInt8]](repeating: GuestProtocol.frame(0x7777, []), count: count).joined())
        var r = GuestProtocol.Reader()
        let start = Clock.monotonicNanos()
        let frames = try r.feed(flood)
        let seconds = Clock.secondsSince(start)
        #expect(frames.count == count)
        #expect(seconds < 8, "\(seconds) s")
        // In the pieces Linux writes (32 KiB), with a frame cut at each end.
        var pieces = GuestProtocol.Reader(), taken = 0
        var i = 0
        while i < flood.count {
            let end = min(flood.count, i + 32768 + 3)
            taken += try pieces.feed(Array(flood[i..<end])).count
            i = end
        }
        #expect(taken == count)
    }

    @Test func anOverlongFrameIsAnError() throws {
        var r = GuestProtocol.Reader()
        let header = le32(GuestProtocol.exit) + le32(UInt32(GuestProtocol.maxPayload + 1))
        #expect(violation { _ = try r.feed(header) }?.contains("over the 1048576-byte limit") == true)
    }

    /// The Reader's limit is swvm_frame_header_decode's, the one every C
    /// reader uses: a payload of exactly SWVM_MAX_GUEST_FRAME passes.
    @Test func theReaderTakesTheLimitOfTheCHeader() throws {
        #expect(GuestProtocol.maxPayload == Int(SWVM_MAX_GUEST_FRAME))
        var r = GuestProtocol.Reader()
        let payload = [UInt8](repeating: 1, count: Int(SWVM_MAX_GUEST_FRAME))
        #expect(try r.feed(GuestProtocol.frame(GuestProtocol.confined, payload)).first?.payload.count == payload.count)
        var type: UInt32 = 0, length: UInt32 = 0
        #expect(swvm_frame_header_decode(le32(5) + le32(SWVM_MAX_GUEST_FRAME), &type, &length, SWVM_MAX_GUEST_FRAME) == 0)
        #expect(type == 5 && length == SWVM_MAX_GUEST_FRAME)
        #expect(swvm_frame_header_decode(le32(5) + le32(SWVM_MAX_GUEST_FRAME + 1), &type, &length, SWVM_MAX_GUEST_FRAME) == -1)
        #expect(length == SWVM_MAX_GUEST_FRAME + 1)
        // GuestProtocol.frame's header is the C encoder's.
        #expect(GuestProtocol.frame(7, [9]) == le32(7) + le32(1) + [9])
    }

    /// guest-init packs STARTED and EXIT with the C encoders and swvm reads
    /// them with the C decoders (through GuestProtocol); SIGNAL and RESIZE
    /// the other way round: each layout is written once.
    @Test func payloadsDecodeWhatTheCEncodersWrite() throws {
        var started = swvm_started(pid: 42, namespaces: 0x2002_0000)
        var bytes = [UInt8](repeating: 0, count: Int(SWVM_STARTED_LEN))
        swvm_started_encode(&started, &bytes)
        #expect(bytes == le32(42) + le32(0x2002_0000))
        let got = try #require(GuestProtocol.decodeStarted(bytes))
        #expect(got.pid == 42 && got.namespaces == 0x2002_0000)
        #expect(GuestProtocol.decodeStarted(le32(7))?.namespaces == 0)   // protocol 1: the pid alone
        #expect(GuestProtocol.decodeStarted([1, 2, 3]) == nil)

        var exit = swvm_exit(status: -3)
        var status = [UInt8](repeating: 0, count: Int(SWVM_EXIT_LEN))
        swvm_exit_encode(&exit, &status)
        #expect(status == le32(UInt32(bitPattern: -3)) && GuestProtocol.decodeExit(status) == -3)
        #expect(GuestProtocol.decodeExit([0, 0]) == nil)

        let signal = GuestProtocol.signalFrame(15)
        #expect(signal == le32(MSG_SIGNAL.rawValue) + le32(4) + le32(15))
        var sig = swvm_signal()
        #expect(swvm_signal_decode(Array(signal[8...]), 4, &sig) == 0 && sig.signal == 15)
        let resize = GuestProtocol.resizeFrame(rows: 24, cols: 80)
        #expect(resize == le32(MSG_RESIZE.rawValue) + le32(4) + le16(24) + le16(80))
        var size = swvm_resize()
        #expect(swvm_resize_decode(Array(resize[8...]), 4, &size) == 0 && size.rows == 24 && size.cols == 80)
        #expect(swvm_resize_decode([1], 1, &size) == -1)
    }

    /// The message of the error `body` throws, or nil.
    func violation(_ body: () throws -> Void) -> String? {
        do {
            try body()
            return nil
        } catch {
            return (error as? SwvmError)?.message ?? "\(error)"
        }
    }

    @Test func eachMessageIsTakenOnceAfterReady() throws {
        var s = GuestProtocol.Sequence()
        try s.accept(GuestProtocol.ready, payloadCount: 0)
        #expect(violation { try s.accept(GuestProtocol.ready, payloadCount: 0) } == "the guest broke swvm's control protocol: READY sent twice")
        try s.accept(GuestProtocol.confined, payloadCount: 0)
        try s.accept(GuestProtocol.started, payloadCount: 8)
        #expect(violation { try s.accept(GuestProtocol.started, payloadCount: 8) }?.contains("STARTED sent twice") == true)
        try s.accept(GuestProtocol.exit, payloadCount: 4)
        #expect(violation { try s.accept(GuestProtocol.exit, payloadCount: 4) } != nil)
        // A restored VM's guest-init said READY before the snapshot.
        var restored = GuestProtocol.Sequence(readySent: true)
        #expect(violation { try restored.accept(GuestProtocol.ready, payloadCount: 0) }?.contains("READY sent twice") == true)
    }

    @Test(arguments: [
        (UInt32(0x7777), 0, "an unknown message (type 30583)"),
        (UInt32(1), 0, "an unknown message (type 1)"),              // MSG_CONFIG goes the other way
        (GuestProtocol.started, 8, "STARTED before READY"),
        (GuestProtocol.exit, 4, "EXIT before READY"),
    ])
    func messagesOutOfTurnAreViolations(_ type: UInt32, _ length: Int, _ expected: String) {
        var s = GuestProtocol.Sequence()
        #expect(violation { try s.accept(type, payloadCount: length) }?.hasSuffix(expected) == true)
    }

    @Test func shortPayloadsAndEarlyErrors() throws {
        var s = GuestProtocol.Sequence()
        try s.accept(GuestProtocol.ready, payloadCount: 0)
        #expect(violation { try s.accept(GuestProtocol.exit, payloadCount: 3) }?.contains("EXIT with 3 bytes") == true)
        // guest-init may fail before it is ready: its ERROR is taken.
        var early = GuestProtocol.Sequence()
        try early.accept(GuestProtocol.error, payloadCount: 20)
    }

    @Test func initramfsIsNewcCpio() {
        var i = Initramfs()
        i.addFile("init", data: [1, 2, 3])
        let bytes = i.finish()
        #expect(Array(bytes[0..<6]) == Array("070701".utf8))
        #expect(bytes.count % 4 == 0)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.contains("init\0"))
        #expect(text.contains("TRAILER!!!"))
    }
}

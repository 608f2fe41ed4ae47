import Testing
@testable import GuestMemory
@testable import MicroVM
@testable import SwvmBase
@testable import Virtio

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
        var interrupts = 0
        console.activate(queues: d.queues, negotiated: 1 << 1, interrupt: { interrupts += 1 })
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
        var received: [UInt8] = []
        console.ports[2].onData = { received += $0 }
        try d.give(7, data: Array("hello".utf8))
        console.queueNotified(7)
        #expect(received == Array("hello".utf8))

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
        #expect(interrupts > 0)
    }
}

@Suite struct GuestProtocolTests {
    @Test func framesSplitAcrossReads() {
        var r = GuestProtocol.Reader()
        let a = GuestProtocol.frame(102, [7, 0, 0, 0])
        let b = GuestProtocol.frame(103, Array("commandNotFound\nexec".utf8))
        let all = a + b
        #expect(r.feed(Array(all[0..<5])).isEmpty)
        let frames = r.feed(Array(all[5...]))
        #expect(frames.map(\.type) == [102, 103])
        #expect(frames[0].payload == [7, 0, 0, 0])
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

#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import GuestMemory
@testable import SwvmBase
@testable import Virtio

/// Plays the driver's side of a split virtqueue in plain guest memory.
struct FakeDriver {
    let memory: GuestMemory
    let queue: VirtQueue
    let desc: GuestAddress = 0x1000, avail: GuestAddress = 0x2000, used: GuestAddress = 0x3000
    var availIdx: UInt16 = 0

    init(size: UInt16 = 8) throws {
        memory = try GuestMemory(ranges: [(0, 1 << 20)])
        queue = VirtQueue(index: 0, maxSize: size, memory: memory)
        queue.descTable = desc
        queue.availRing = avail
        queue.usedRing = used
        try queue.validateLayout()
        queue.ready = true
    }

    func setDescriptor(_ i: UInt16, addr: UInt64, len: UInt32, flags: UInt16, next: UInt16 = 0) throws {
        let base = desc + 16 * UInt64(i)
        try memory.write(addr, at: base)
        try memory.write(len, at: base + 8)
        try memory.write(flags, at: base + 12)
        try memory.write(next, at: base + 14)
    }

    mutating func publish(_ head: UInt16) throws {
        try memory.write(head, at: avail + 4 + 2 * UInt64(availIdx % queue.size))
        availIdx &+= 1
        try memory.write(availIdx, at: avail + 2)
    }

    func usedIdx() throws -> UInt16 { try memory.read(UInt16.self, at: used + 2) }
    func usedLen(_ slot: Int) throws -> UInt32 { try memory.read(UInt32.self, at: used + 4 + 8 * UInt64(slot) + 4) }
}

@Suite struct VirtQueueTests {
    @Test func popsAValidChainAndPushesItBack() throws {
        var d = try FakeDriver()
        try d.memory.writeBytes(Array("request".utf8), at: 0x10000)
        try d.setDescriptor(0, addr: 0x10000, len: 7, flags: 1, next: 3)
        try d.setDescriptor(3, addr: 0x20000, len: 64, flags: 2)
        try d.publish(0)
        let chain = try #require(d.queue.pop())
        #expect(chain.head == 0)
        #expect(chain.readAll() == Array("request".utf8))
        #expect(chain.writableLength == 64)
        let n = Array("reply".utf8).withUnsafeBytes { chain.write($0) }
        #expect(n == 5)
        #expect(d.queue.push(chain, written: 5))
        #expect(try d.usedIdx() == 1)
        #expect(try d.usedLen(0) == 5)
        #expect(try d.memory.readBytes(at: 0x20000, count: 5) == Array("reply".utf8))
        #expect(d.queue.pop() == nil)
    }

    @Test func aDescriptorLoopBreaksTheQueueNotTheVMM() throws {
        var d = try FakeDriver()
        try d.setDescriptor(0, addr: 0x10000, len: 8, flags: 1, next: 1)
        try d.setDescriptor(1, addr: 0x10000, len: 8, flags: 1, next: 0)
        try d.publish(0)
        #expect(d.queue.pop() == nil)
        #expect(d.queue.broken?.contains("loop") == true)
        #expect(!d.queue.hasAvailable)
    }

    @Test(arguments: [
        ("outside guest memory", UInt64(1) << 40, UInt32(16), UInt16(0)),
        ("outside guest memory", UInt64((1 << 20) - 8), UInt32(16), UInt16(0)),
        ("out of range", UInt64(0x10000), UInt32(8), UInt16(1)),      // next points past the queue
        ("indirect", UInt64(0x10000), UInt32(16), UInt16(4)),
    ])
    func hostileDescriptorsAreRefused(_ reason: String, _ addr: UInt64, _ len: UInt32, _ flags: UInt16) throws {
        var d = try FakeDriver()
        try d.setDescriptor(0, addr: addr, len: len, flags: flags, next: 200)
        try d.publish(0)
        #expect(d.queue.pop() == nil)
        #expect(d.queue.broken?.contains(reason) == true, "\(d.queue.broken ?? "not broken")")
    }

    @Test func readableAfterWritableIsRefused() throws {
        var d = try FakeDriver()
        try d.setDescriptor(0, addr: 0x10000, len: 8, flags: 2 | 1, next: 1)
        try d.setDescriptor(1, addr: 0x11000, len: 8, flags: 0)
        try d.publish(0)
        #expect(d.queue.pop() == nil)
        #expect(d.queue.broken != nil)
    }

    @Test func availableIndexFarAheadIsRefused() throws {
        let d = try FakeDriver()
        try d.memory.write(UInt16(100), at: d.avail + 2)
        #expect(d.queue.pop() == nil)
        #expect(d.queue.broken?.contains("jumped") == true)
    }

    @Test func badLayoutsAreRefused() throws {
        let m = try GuestMemory(ranges: [(0, 1 << 20)])
        let q = VirtQueue(index: 0, maxSize: 256, memory: m)
        q.size = 100
        #expect(throws: QueueViolation.self) { try q.validateLayout() }
        q.size = 256
        q.descTable = (1 << 20) - 16
        #expect(throws: QueueViolation.self) { try q.validateLayout() }
    }
}

@Suite struct VirtioDeviceTests {
    @Test func rngFillsWritableBuffers() throws {
        var d = try FakeDriver()
        let rng = RngDevice()
        rng.activate(queues: [d.queue], negotiated: 0, interrupt: {})
        try d.setDescriptor(0, addr: 0x10000, len: 64, flags: 2)
        try d.publish(0)
        rng.queueNotified(0)
        #expect(try d.usedIdx() == 1)
        #expect(try d.usedLen(0) == 64)
        #expect(try d.memory.readBytes(at: 0x10000, count: 64).contains { $0 != 0 })
    }

    @Test func blockReadsSectorsAndRefusesWritesWhenReadOnly() throws {
        let path = "/tmp/swvm-blk-\(randomHex(4))"
        var disk = [UInt8](repeating: 0, count: 8192)
        for i in 0..<disk.count { disk[i] = UInt8(i / 512) }
        try FS.writeFile(path, disk)
        defer { unlink(path) }
        let blk = try BlockDevice(path: path, readOnly: true)
        var d = try FakeDriver()
        blk.activate(queues: [d.queue], negotiated: 0, interrupt: {})
        func request(type: UInt32, sector: UInt64, dataLen: UInt32, dataWritable: Bool) throws -> UInt8 {
            try d.memory.write(type, at: 0x10000)
            try d.memory.write(UInt32(0), at: 0x10004)
            try d.memory.write(sector, at: 0x10008)
            try d.setDescriptor(0, addr: 0x10000, len: 16, flags: 1, next: 1)
            try d.setDescriptor(1, addr: 0x20000, len: dataLen, flags: 1 | (dataWritable ? 2 : 0), next: 2)
            try d.setDescriptor(2, addr: 0x30000, len: 1, flags: 2)
            try d.publish(0)
            blk.queueNotified(0)
            return try d.memory.read(UInt8.self, at: 0x30000)
        }
        #expect(try request(type: 0, sector: 3, dataLen: 1024, dataWritable: true) == 0)
        #expect(try d.memory.readBytes(at: 0x20000, count: 1024) == Array(disk[1536..<2560]))
        #expect(try request(type: 0, sector: 15, dataLen: 1024, dataWritable: true) == 1)   // past the end
        #expect(try request(type: 1, sector: 0, dataLen: 512, dataWritable: false) == 1)    // read-only
        #expect(try request(type: 99, sector: 0, dataLen: 512, dataWritable: true) == 2)    // unsupported
        var config = [UInt8](repeating: 0, count: 8)
        config.withUnsafeMutableBytes { blk.readConfig(offset: 0, into: $0) }
        #expect(config == [16, 0, 0, 0, 0, 0, 0, 0])
        #expect(blk.features & (1 << 5) != 0)
    }
}

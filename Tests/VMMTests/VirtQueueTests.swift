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

    init(size: UInt16 = 8, memory: GuestMemory? = nil) throws {
        self.memory = try memory ?? GuestMemory(ranges: [(0, 1 << 20)])
        queue = VirtQueue(index: 0, maxSize: size, memory: self.memory)
        queue.descTable = desc
        queue.availRing = avail
        queue.usedRing = used
        try queue.enable()
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

    /// One virtio-blk request: header, one data buffer at 0x20000, status
    /// byte at 0x30000; returns the status the device wrote.
    mutating func blockRequest(_ blk: BlockDevice, type: UInt32, sector: UInt64, dataLen: UInt32, dataWritable: Bool) throws -> UInt8 {
        try memory.write(type, at: 0x10000)
        try memory.write(UInt32(0), at: 0x10004)
        try memory.write(sector, at: 0x10008)
        try memory.write(UInt8(0xff), at: 0x30000)
        try setDescriptor(0, addr: 0x10000, len: 16, flags: 1, next: 1)
        try setDescriptor(1, addr: 0x20000, len: dataLen, flags: 1 | (dataWritable ? 2 : 0), next: 2)
        try setDescriptor(2, addr: 0x30000, len: 1, flags: 2)
        try publish(0)
        blk.queueNotified(0)
        return try memory.read(UInt8.self, at: 0x30000)
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
            try d.blockRequest(blk, type: type, sector: sector, dataLen: dataLen, dataWritable: dataWritable)
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

    /// The blocks a template's first run read (RecordedReads): only reads
    /// after recordReads, by 4 KiB block, a failed one not at all.
    @Test func blockRecordsTheBlocksReadOnceAsked() throws {
        let path = "/tmp/swvm-blk-\(randomHex(4))"
        try FS.writeFile(path, [UInt8](repeating: 0, count: 16384))
        defer { unlink(path) }
        let blk = try BlockDevice(path: path, readOnly: true)
        var d = try FakeDriver()
        blk.activate(queues: [d.queue], negotiated: 0, interrupt: {})
        #expect(try d.blockRequest(blk, type: 0, sector: 0, dataLen: 512, dataWritable: true) == 0)
        #expect(blk.recordedBlocks() == nil)
        blk.recordReads()
        #expect(try d.blockRequest(blk, type: 0, sector: 7, dataLen: 1024, dataWritable: true) == 0)   // bytes 3584-4607: blocks 0, 1
        #expect(try d.blockRequest(blk, type: 0, sector: 24, dataLen: 512, dataWritable: true) == 0)   // block 3
        #expect(try d.blockRequest(blk, type: 0, sector: 40, dataLen: 512, dataWritable: true) == 1)   // past the end
        #expect(blk.recordedBlocks() == [0, 1, 3])
    }
}

/// What a hostile driver can do to the VMM through a device: every request
/// it can shape ends as a status or a broken queue, never a trap.
@Suite struct HostileDriverTests {
    /// A disk of 16 sectors, writable, so both directions are checked.
    static func disk() throws -> (BlockDevice, String) {
        let path = "/tmp/swvm-blk-\(randomHex(4))"
        try FS.writeFile(path, [UInt8](repeating: 0, count: 8192))
        return (try BlockDevice(path: path, readOnly: false), path)
    }

    /// Sector 0x7FFFFFFFFFFFFF is byte 0xFFFFFFFFFFFFFE00: adding 4 KiB
    /// overflowed, and trapped, before the range check was made overflow-safe.
    @Test(arguments: [UInt64(0x7F_FFFF_FFFF_FFFF), UInt64(0x7F_FFFF_FFFF_FFF8), UInt64.max, UInt64(1) << 55, UInt64(16)])
    func blockSectorsPastTheDiskAreIOErrors(_ sector: UInt64) throws {
        let (blk, path) = try HostileDriverTests.disk()
        defer { unlink(path) }
        var d = try FakeDriver(size: 16)
        blk.activate(queues: [d.queue], negotiated: 0, interrupt: {})
        #expect(try d.blockRequest(blk, type: 0, sector: sector, dataLen: 4096, dataWritable: true) == 1)
        #expect(try d.blockRequest(blk, type: 1, sector: sector, dataLen: 4096, dataWritable: false) == 1)
        // The queue still serves a good request after them.
        #expect(try d.blockRequest(blk, type: 0, sector: 8, dataLen: 4096, dataWritable: true) == 0)
        #expect(d.queue.broken == nil)
    }

    static func write(_ t: MMIOTransport, _ offset: UInt64, _ value: UInt32) {
        withUnsafeBytes(of: value.littleEndian) { t.write(offset: offset, data: $0) }
    }

    static func read(_ t: MMIOTransport, _ offset: UInt64) -> UInt32 {
        var v: UInt32 = 0
        withUnsafeMutableBytes(of: &v) { t.read(offset: offset, data: $0) }
        return UInt32(littleEndian: v)
    }

    /// QueueNum, the rings at 0x1000, 0x2000, 0x3000, then QueueReady.
    static func configure(_ t: MMIOTransport, size: UInt32) {
        write(t, 0x030, 0)
        write(t, 0x038, size)
        write(t, 0x080, 0x1000)
        write(t, 0x090, 0x2000)
        write(t, 0x0a0, 0x3000)
        write(t, 0x044, 1)
    }

    /// Makes descriptor 0 (a 64-byte writable buffer) available once more.
    static func offer(_ m: GuestMemory) throws {
        try m.write(UInt64(0x10000), at: 0x1000)
        try m.write(UInt32(64), at: 0x1008)
        try m.write(UInt16(2), at: 0x100c)
        let idx = try m.read(UInt16.self, at: 0x2002)
        try m.write(UInt16(0), at: 0x2004 + 2 * UInt64(idx % 4))
        try m.write(idx &+ 1, at: 0x2002)
    }

    /// A device thread holds a chain (a slow 9p request, say) while the
    /// driver clears QueueReady and writes QueueNum 0. Returning the chain
    /// divided by the new size, 0, on the device thread before the fix.
    @Test func aQueueResizedToZeroUnderAHeldChainBreaksNothing() throws {
        let memory = try GuestMemory(ranges: [(0, 1 << 20)])
        let t = MMIOTransport(device: RngDevice(), memory: memory, raiseIRQ: {})
        let q = t.queues[0]
        HostileDriverTests.configure(t, size: 4)
        #expect(q.ready)
        try HostileDriverTests.offer(memory)
        let held = try #require(q.pop())
        HostileDriverTests.write(t, 0x044, 0)
        HostileDriverTests.write(t, 0x038, 0)
        #expect(!q.push(held, written: 8))    // the driver took the queue away: nothing is returned
        #expect(try memory.read(UInt16.self, at: 0x3002) == 0)
        // Size 0, or one QueueNum cannot hold, never makes a queue ready.
        HostileDriverTests.write(t, 0x044, 1)
        #expect(!q.ready && HostileDriverTests.read(t, 0x044) == 0)
        #expect(HostileDriverTests.read(t, 0x070) & VirtioStatus.needsReset != 0)
        HostileDriverTests.write(t, 0x038, 0x10001)
        HostileDriverTests.write(t, 0x044, 1)
        #expect(!q.ready)
        // A good size again: the queue works.
        HostileDriverTests.configure(t, size: 4)
        #expect(q.ready)
        try HostileDriverTests.offer(memory)
        let chain = try #require(q.pop())
        q.push(chain, written: 8)
        #expect(try memory.read(UInt16.self, at: 0x3002) == 1)
    }

    /// QueueNum written while the queue is ready is ignored: the rings the
    /// device uses are the ones checked at QueueReady.
    @Test func queueNumIsIgnoredWhileReady() throws {
        let memory = try GuestMemory(ranges: [(0, 1 << 20)])
        let t = MMIOTransport(device: RngDevice(), memory: memory, raiseIRQ: {})
        let q = t.queues[0]
        HostileDriverTests.configure(t, size: 4)
        HostileDriverTests.write(t, 0x038, 0)
        #expect(q.size == 4 && q.ready)
        try HostileDriverTests.offer(memory)
        let chain = try #require(q.pop())
        q.push(chain, written: 8)
        #expect(try memory.read(UInt16.self, at: 0x3002) == 1)
    }
}

#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import GuestMemory
@testable import SwvmBase
@testable import Virtio
import NativeThreads

/// A guest vCPU rewrites the rings while the device serves them: each
/// field the device reads may change between any two reads. The device
/// must copy each value out once and check the copy; all the guest can
/// then cause is a broken queue or a failed request, never an access
/// outside guest RAM or a trap.
@Suite(.serialized) struct GuestRaceTests {
    static let ramSize: UInt64 = 0x10_0000

    /// Guest RAM (1 MiB at 0) between two inaccessible guard pages in the
    /// host's address space: an access a byte past RAM, either side,
    /// faults and kills the test rather than going unnoticed. The guard
    /// pages are left mapped (8 KiB, once per test).
    static func guardedMemory() throws -> GuestMemory {
        let total = Int(ramSize) + 2 * 4096
        guard let p = mmap(nil, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED else {
            throw SwvmError.errno("mmap")
        }
        guard mprotect(p, 4096, PROT_NONE) == 0, mprotect(p + 4096 + Int(ramSize), 4096, PROT_NONE) == 0 else {
            throw SwvmError.errno("mprotect")
        }
        return GuestMemory(adopting: [GuestRegion(guestBase: 0, size: ramSize, host: p + 4096)])
    }

    /// The hostile vCPU: until `deadline`, writes values chosen to hurt
    /// (RAM's last bytes, past RAM, huge lengths, indirect flags, loops,
    /// index jumps) into random descriptor fields, ring entries and the
    /// available index.
    static func startWriter(_ d: FakeDriver, until deadline: ContinuousClock.Instant) throws -> NativeThread {
        let memory = d.memory, desc = d.desc, avail = d.avail, size = UInt64(d.queue.maxSize)
        return try NativeThread(name: "guest-writer") {
            let addrs: [UInt64] = [0, 0x10000, 0x20000, ramSize - 1, ramSize - 16, ramSize, ramSize + 1, UInt64.max - 7, 1 << 63]
            let lens: [UInt32] = [0, 1, 16, 512, 4096, 0x10000, UInt32(ramSize), UInt32.max, 1 << 31]
            var rng = SystemRandomNumberGenerator()
            var n = 0
            while n & 1023 != 0 || ContinuousClock.now < deadline {
                n += 1
                let i = UInt64.random(in: 0..<size, using: &rng)
                let base = desc + 16 * i
                switch UInt8.random(in: 0..<7, using: &rng) {
                case 0: try? memory.write(addrs.randomElement(using: &rng)!, at: base)
                case 1: try? memory.write(UInt64.random(in: 0..<ramSize, using: &rng), at: base)
                case 2: try? memory.write(lens.randomElement(using: &rng)!, at: base + 8)
                case 3: try? memory.write(UInt16.random(in: 0...7, using: &rng), at: base + 12)
                case 4: try? memory.write(UInt16.random(in: 0...UInt16(2 * size), using: &rng), at: base + 14)
                case 5: try? memory.write(UInt16.random(in: 0...UInt16.max, using: &rng), at: avail + 4 + 2 * i)
                default:
                    let idx = (try? memory.read(UInt16.self, at: avail + 2)) ?? 0
                    let jump = [0, 1, 2, UInt16(size), UInt16(size) + 1, 0x8000].randomElement(using: &rng)!
                    try? memory.write(idx &+ jump, at: avail + 2)
                }
            }
        }
    }

    /// The good driver's side: a three-buffer request (header, data,
    /// status), as the block device expects, published at head 0.
    static func offerRequest(_ d: inout FakeDriver) {
        try? d.memory.write(UInt32(d.availIdx & 1), at: 0x10000)
        try? d.memory.write(UInt64(d.availIdx % 8), at: 0x10008)
        try? d.setDescriptor(0, addr: 0x10000, len: 16, flags: 1, next: 1)
        try? d.setDescriptor(1, addr: 0x20000, len: 512, flags: 1 | 2, next: 2)
        try? d.setDescriptor(2, addr: 0x30000, len: 1, flags: 2)
        try? d.publish(0)
    }

    /// A broken queue is what the device is allowed to end with: the test
    /// counts it and starts the queue over, as a driver reset would.
    static func restartIfBroken(_ d: inout FakeDriver) -> Bool {
        guard d.queue.broken != nil else { return false }
        d.queue.reset()
        d.queue.descTable = d.desc
        d.queue.availRing = d.avail
        d.queue.usedRing = d.used
        try? d.memory.fill(0, at: d.avail, count: 4 + 2 * Int(d.queue.maxSize))
        try? d.memory.fill(0, at: d.used, count: 4 + 8 * Int(d.queue.maxSize))
        d.availIdx = 0
        return (try? d.queue.enable()) != nil
    }

    @Test(arguments: ["queue", "block", "rng"])
    func descriptorsFlippedUnderTheDeviceBreakOnlyTheQueue(_ device: String) throws {
        let memory = try GuestRaceTests.guardedMemory()
        var d = try FakeDriver(size: 8, memory: memory)
        let (blk, path) = try HostileDriverTests.disk()
        defer { unlink(path) }
        let rng = RngDevice()
        blk.activate(queues: [d.queue], negotiated: 0, interrupt: {})
        rng.activate(queues: [d.queue], negotiated: 0, interrupt: {})

        let deadline = ContinuousClock.now + .seconds(2)
        let writer = try GuestRaceTests.startWriter(d, until: deadline)
        var popped = 0, breaks = 0, outside = 0
        let reply = [UInt8](repeating: 0x5a, count: 600)
        while ContinuousClock.now < deadline {
            GuestRaceTests.offerRequest(&d)
            switch device {
            case "block": blk.queueNotified(0)
            case "rng": rng.queueNotified(0)
            default:
                while let chain = d.queue.pop() {
                    popped += 1
                    // What pop handed out was checked on the copy it made.
                    if chain.buffers.count > Int(d.queue.maxSize) { outside += 1 }
                    for b in chain.buffers where !memory.contains(b.address, count: UInt64(b.length)) || b.address >= GuestRaceTests.ramSize {
                        outside += 1
                    }
                    _ = chain.readAll()
                    _ = reply.withUnsafeBytes { chain.write($0) }
                    d.queue.push(chain, written: 1)
                }
            }
            if GuestRaceTests.restartIfBroken(&d) { breaks += 1 }
        }
        writer.join()
        #expect(outside == 0)
        // The flips must have hit: the queue broke, cleanly, many times.
        #expect(breaks > 0)
        if device == "queue" { #expect(popped > 0) }
    }
}

import CAtomics
import GuestMemory
import Snapshot
import SwvmBase

/// A violation of the virtqueue rules by the guest. The device that sees
/// one stops using the queue (it is "broken", as the virtio spec says)
/// and the VMM logs it; the VMM itself carries on.
public struct QueueViolation: Error, CustomStringConvertible {
    public let reason: String
    public var description: String { reason }
}

/// One buffer of a descriptor chain, already checked to lie in guest RAM.
/// It holds the guest address, not a host pointer: the bytes are reached
/// through the chain's GuestMemory, bounds-checked on every access.
public struct DescriptorBuffer {
    public let address: GuestAddress
    public let length: UInt32
    public let writable: Bool
}

/// A descriptor chain popped from the available ring: the buffers the
/// driver handed over, validated, in order. The descriptors were copied
/// out of the table once; the guest changing the table afterwards changes
/// nothing here.
public struct DescriptorChain {
    public let head: UInt16
    public let buffers: [DescriptorBuffer]
    /// The guest memory the buffers lie in.
    public let memory: GuestMemory

    public var readable: [DescriptorBuffer] { buffers.filter { !$0.writable } }
    public var writable: [DescriptorBuffer] { buffers.filter { $0.writable } }
    public var writableLength: Int { writable.reduce(0) { $0 + Int($1.length) } }

    /// Copies all device-readable bytes out (request headers, small payloads).
    public func readAll(limit: Int = 1 << 20) -> [UInt8] {
        var out: [UInt8] = []
        for b in readable {
            let n = min(Int(b.length), limit - out.count)
            if n <= 0 { break }
            guard (try? memory.withBytes(at: b.address, count: n, { out.append(contentsOf: $0) })) != nil else { break }
        }
        return out
    }

    /// Writes into the device-writable buffers in order; returns bytes written.
    @discardableResult
    public func write(_ bytes: UnsafeRawBufferPointer) -> Int {
        var done = 0
        for b in writable where done < bytes.count {
            let n = min(Int(b.length), bytes.count - done)
            guard (try? memory.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[done..<done + n]), at: b.address)) != nil else { break }
            done += n
        }
        return done
    }
}

/// A split virtqueue (virtio 1.x, section 2.7) as the device sees it.
///
/// Everything read from guest memory is untrusted: ring indices are taken
/// modulo the queue size, descriptor indices are bounds-checked, chains are
/// limited to the queue size (so a loop cannot spin forever), every buffer
/// must lie inside guest RAM, and a device-readable descriptor may not
/// follow a device-writable one. Indirect descriptors are not offered, so
/// one is a violation.
///
/// The driver's registers (`size`, the ring addresses) are not what the
/// device uses: `enable` checks them and copies them into `rings`, which
/// nothing else changes. A driver may clear QueueReady and rewrite
/// QueueNum (to 0, say) while a device thread still holds a chain it
/// popped; that thread then finishes against the rings it was given, or
/// drops the chain, and never divides by a size it was not given.
public final class VirtQueue {
    public let index: Int
    public let maxSize: UInt16
    /// QueueNum as the driver wrote it (the transport takes writes only
    /// while the queue is not ready).
    public var size: UInt16
    public private(set) var ready = false
    public var descTable: GuestAddress = 0
    public var availRing: GuestAddress = 0
    public var usedRing: GuestAddress = 0
    public private(set) var broken: String?

    /// The layout checked when the queue was last made ready; `size` is
    /// never 0 (the start value is `maxSize`, which the device sets).
    struct Rings {
        var size: UInt16
        var desc: GuestAddress = 0, avail: GuestAddress = 0, used: GuestAddress = 0
    }
    private(set) var rings: Rings

    private var nextAvail: UInt16 = 0
    private var nextUsed: UInt16 = 0
    private let memory: GuestMemory

    static let descNext: UInt16 = 1, descWrite: UInt16 = 2, descIndirect: UInt16 = 4
    static let availNoInterrupt: UInt16 = 1

    public init(index: Int, maxSize: UInt16, memory: GuestMemory) {
        self.index = index
        self.maxSize = maxSize
        self.size = maxSize
        self.rings = Rings(size: max(maxSize, 1))
        self.memory = memory
    }

    public func reset() {
        ready = false
        size = maxSize
        rings = Rings(size: max(maxSize, 1))
        descTable = 0
        availRing = 0
        usedRing = 0
        nextAvail = 0
        nextUsed = 0
        broken = nil
    }

    func saveState(_ w: inout StateWriter) {
        w.u16(size)
        w.bool(ready)
        w.u64(descTable)
        w.u64(availRing)
        w.u64(usedRing)
        w.u16(nextAvail)
        w.u16(nextUsed)
        w.string(broken ?? "")
    }

    func restoreState(_ r: inout StateReader) throws {
        size = try r.u16()
        ready = try r.bool()
        descTable = try r.u64()
        availRing = try r.u64()
        usedRing = try r.u64()
        nextAvail = try r.u16()
        nextUsed = try r.u16()
        let b = try r.string()
        broken = b.isEmpty ? nil : b
        if ready {
            ready = false
            try enable()
        }
    }

    /// The driver set QueueReady: checks the layout it configured and
    /// hands it to the device. A bad layout leaves the queue not ready.
    public func enable() throws {
        try validateLayout()
        rings = Rings(size: size, desc: descTable, avail: availRing, used: usedRing)
        ready = true
    }

    /// The driver cleared QueueReady: the device takes no more chains, and
    /// returns none it holds.
    public func disable() {
        ready = false
    }

    /// Checks the layout the driver configured (QueueNum and the ring addresses).
    public func validateLayout() throws {
        guard size > 0, size <= maxSize, size & (size - 1) == 0 else {
            throw QueueViolation(reason: "queue \(index): size \(size) is not a power of two up to \(maxSize)")
        }
        let n = UInt64(size)
        guard descTable & 15 == 0, availRing & 1 == 0, usedRing & 3 == 0 else {
            throw QueueViolation(reason: "queue \(index): misaligned ring addresses")
        }
        guard memory.contains(descTable, count: 16 * n),
              memory.contains(availRing, count: 6 + 2 * n),
              memory.contains(usedRing, count: 6 + 8 * n) else {
            throw QueueViolation(reason: "queue \(index): rings lie outside guest memory")
        }
    }

    /// A driver may reset and break a queue in a loop: its breaks are
    /// logged a few times, not each time (it outlives resets).
    private var breakWarnings = WarningBudget()

    func markBroken(_ reason: String) {
        guard broken == nil else { return }
        broken = reason
        breakWarnings.warn("virtio queue \(index) disabled: \(UntrustedText.escaped(reason))")
    }

    /// Whether the driver has made buffers available that are not yet popped.
    public var hasAvailable: Bool {
        guard ready, broken == nil, let idx = try? memory.loadAcquire(UInt16.self, at: rings.avail + 2) else { return false }
        return idx != nextAvail
    }

    /// Pops the next available chain, or nil when there is none. A chain
    /// that breaks the rules marks the queue broken and yields nil.
    public func pop() -> DescriptorChain? {
        guard ready, broken == nil else { return nil }
        let r = rings
        // The index and the head are each read once, into locals, and
        // only the locals are checked and used.
        guard let availIdx = try? memory.loadAcquire(UInt16.self, at: r.avail + 2) else { return nil }
        guard availIdx != nextAvail else { return nil }
        if availIdx &- nextAvail > r.size {
            markBroken("available index jumped by \(availIdx &- nextAvail), more than the queue size \(r.size)")
            return nil
        }
        let slot = UInt64(nextAvail % r.size)
        guard let head = try? memory.read(UInt16.self, at: r.avail + 4 + 2 * slot) else { return nil }
        nextAvail &+= 1
        do {
            return try chain(from: head, rings: r)
        } catch let v as QueueViolation {
            markBroken(v.reason)
            return nil
        } catch {
            markBroken("\(error)")
            return nil
        }
    }

    func chain(from head: UInt16, rings r: Rings) throws -> DescriptorChain {
        var buffers: [DescriptorBuffer] = []
        var index = head
        var sawWritable = false
        for _ in 0..<Int(r.size) {
            guard index < r.size else { throw QueueViolation(reason: "descriptor index \(index) out of range (queue size \(r.size))") }
            let d = try Descriptor(memory, at: r.desc + 16 * UInt64(index))
            guard d.flags & VirtQueue.descIndirect == 0 else {
                throw QueueViolation(reason: "indirect descriptor (not negotiated)")
            }
            let writable = d.flags & VirtQueue.descWrite != 0
            if !writable && sawWritable {
                throw QueueViolation(reason: "device-readable descriptor after a device-writable one")
            }
            sawWritable = sawWritable || writable
            guard memory.contains(d.addr, count: UInt64(d.len)) else {
                throw QueueViolation(reason: "descriptor \(index): buffer 0x\(String(d.addr, radix: 16))+\(d.len) is outside guest memory")
            }
            buffers.append(DescriptorBuffer(address: d.addr, length: d.len, writable: writable))
            if d.flags & VirtQueue.descNext == 0 { return DescriptorChain(head: head, buffers: buffers, memory: memory) }
            index = d.next
        }
        throw QueueViolation(reason: "descriptor chain longer than the queue (a loop?)")
    }

    /// One descriptor-table entry, copied out of guest memory in one read
    /// of its 16 bytes, so that every field is fetched exactly once.
    struct Descriptor {
        let addr: UInt64, len: UInt32, flags: UInt16, next: UInt16

        init(_ memory: GuestMemory, at base: GuestAddress) throws {
            var raw: (UInt64, UInt64) = (0, 0)
            try withUnsafeMutableBytes(of: &raw) { try memory.copyOut(at: base, into: $0) }
            let rest = UInt64(littleEndian: raw.1)
            addr = UInt64(littleEndian: raw.0)
            len = UInt32(truncatingIfNeeded: rest)
            flags = UInt16(truncatingIfNeeded: rest >> 32)
            next = UInt16(truncatingIfNeeded: rest >> 48)
        }
    }

    /// Serves every chain the driver made available, in order, returning
    /// each with the byte count `serve` wrote into it. Returns whether the
    /// driver wants an interrupt.
    public func serveAvailable(_ serve: (DescriptorChain) -> UInt32) -> Bool {
        var notify = false
        while let chain = pop() {
            if push(chain, written: serve(chain)) { notify = true }
        }
        return notify
    }

    /// Returns a chain to the driver with `written` bytes written into it.
    /// Returns whether the driver wants an interrupt.
    @discardableResult
    public func push(_ chain: DescriptorChain, written: UInt32) -> Bool {
        // A queue the driver disabled meanwhile gets nothing back: it may
        // have freed its rings.
        guard ready, broken == nil else { return false }
        let r = rings
        let slot = UInt64(nextUsed % r.size)
        let elem = r.used + 4 + 8 * slot
        do {
            try memory.write(UInt32(chain.head), at: elem)
            try memory.write(written, at: elem + 4)
        } catch {
            markBroken("used ring outside guest memory")
            return false
        }
        nextUsed &+= 1
        guard (try? memory.storeRelease(nextUsed, at: r.used + 2)) != nil else { return false }
        catomic_fence()
        let flags = (try? memory.read(UInt16.self, at: r.avail)) ?? 0
        return flags & VirtQueue.availNoInterrupt == 0
    }
}

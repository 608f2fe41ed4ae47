#if canImport(Glibc)
import Glibc
#endif
import GuestMemory
import SwvmBase
import Virtio

// A virtio device behind its MMIO transport, as a hostile guest kernel
// drives it: register writes and reads, guest memory writes, queue
// notifications, and chains a device thread holds while the driver goes on
// (popped now, returned later, as the 9p server thread does with a slow
// request). The first byte picks the device (virtio-blk over a small disk,
// virtio-rng, or virtio-console with swvm's four ports); the rest is a run
// of operations, each a kind byte and its arguments:
//
//   0 reg u8, value u32    write register `registers[reg]`
//   1 reg u8               read it
//   2 addr u16, n u8, n bytes   write guest memory
//   3 queue u8             pop a chain from the queue and hold it
//   4                      return every held chain
//   5 queue u8             notify the queue (a QueueNotify write)
//   6 sector u64, type u32, length u16, flags u8
//                          a virtio-blk request as descriptors 0-2 on the
//                          rings the driver configured for queue 0: header
//                          at 0x8000, data at 0x9000, status at 0xf000;
//                          flags bit 0: data device-writable, bit 1: notify

let memorySize = 1 << 16
let memory = try! GuestMemory(ranges: [(0, UInt64(memorySize))])
let registers: [UInt64] = [0x014, 0x020, 0x024, 0x030, 0x038, 0x044, 0x050, 0x064, 0x070,
                           0x080, 0x084, 0x090, 0x094, 0x0a0, 0x0a4, 0x100, 0x104]

/// A 64 KiB disk, writable, open for the whole run (its file is gone).
let disk: BlockDevice.DiskImage = {
    let path = "/dev/shm/swvm-fuzz-blk-\(getpid())"
    try! FS.writeFile(path, [UInt8](repeating: 0x33, count: 1 << 16))
    defer { unlink(path) }
    return try! BlockDevice.DiskImage(path: path, readOnly: false)
}()

func makeDevice(_ kind: UInt8) -> VirtioDevice {
    switch kind % 3 {
    case 0:
        let blk = BlockDevice(readOnly: false)
        blk.attach(disk)
        return blk
    case 1:
        return RngDevice()
    default:
        let console = ConsoleDevice(ports: [("c", true), ("i", true), ("o", true), ("e", true)], maxPending: 4096)
        console.send(Array(repeating: 7, count: 100), to: console.ports[0])
        return console
    }
}

/// Reads the input's operations in order; a short tail ends the run.
struct Input {
    let bytes: UnsafeRawBufferPointer
    var at = 0
    mutating func take(_ n: Int) -> UnsafeRawBufferPointer? {
        guard at + n <= bytes.count else { return nil }
        defer { at += n }
        return UnsafeRawBufferPointer(rebasing: bytes[at..<(at + n)])
    }
    mutating func u8() -> UInt8? { take(1).map { $0[0] } }
    mutating func u16() -> UInt16? { take(2).map { $0.loadUnaligned(as: UInt16.self) } }
    mutating func u32() -> UInt32? { take(4).map { $0.loadUnaligned(as: UInt32.self) } }
    mutating func u64() -> UInt64? { take(8).map { $0.loadUnaligned(as: UInt64.self) } }
}

func writeRegister(_ t: MMIOTransport, _ offset: UInt64, _ value: UInt32) {
    withUnsafeBytes(of: value.littleEndian) { t.write(offset: offset, data: $0) }
}

func readRegister(_ t: MMIOTransport, _ offset: UInt64) -> UInt32 {
    var v: UInt32 = 0
    withUnsafeMutableBytes(of: &v) { t.read(offset: offset, data: $0) }
    return v
}

/// Operation 6: lays out a virtio-blk request where the driver's
/// registers for queue 0 point (guest memory writes are bounds-checked,
/// so wild addresses just fail), and makes it available.
func blockRequest(_ t: MMIOTransport, sector: UInt64, type: UInt32, length: UInt16, flags: UInt8) {
    let q = t.queues[0]
    let dataLength = UInt32(length) % 0x6000
    try? memory.write(type, at: 0x8000)
    try? memory.write(UInt32(0), at: 0x8004)
    try? memory.write(sector, at: 0x8008)
    let descriptors: [(UInt64, UInt32, UInt16)] = [
        (0x8000, 16, 1), (0x9000, dataLength, 1 | (flags & 1 != 0 ? 2 : 0)), (0xf000, 1, 2),
    ]
    for (i, (addr, len, f)) in descriptors.enumerated() {
        let base = q.descTable &+ 16 &* UInt64(i)
        try? memory.write(addr, at: base)
        try? memory.write(len, at: base &+ 8)
        try? memory.write(f, at: base &+ 12)
        try? memory.write(UInt16(i + 1), at: base &+ 14)
    }
    let idx = (try? memory.read(UInt16.self, at: q.availRing &+ 2)) ?? 0
    try? memory.write(UInt16(0), at: q.availRing &+ 4 &+ 2 &* UInt64(idx % max(q.size, 1)))
    try? memory.write(idx &+ 1, at: q.availRing &+ 2)
    if flags & 2 != 0 { writeRegister(t, 0x050, 0) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzVirtioDevice(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size >= 1 else { return 0 }
    try! memory.fill(0, at: 0, count: memorySize)
    let transport = MMIOTransport(device: makeDevice(data[0]), memory: memory, raiseIRQ: {})
    var input = Input(bytes: UnsafeRawBufferPointer(start: data + 1, count: size - 1))
    var held: [(VirtQueue, DescriptorChain)] = []
    while let op = input.u8() {
        switch op % 7 {
        case 0:
            guard let r = input.u8(), let v = input.u32() else { break }
            writeRegister(transport, registers[Int(r) % registers.count], v)
        case 1:
            guard let r = input.u8() else { break }
            _ = readRegister(transport, registers[Int(r) % registers.count])
        case 2:
            guard let addr = input.u16(), let n = input.u8(), let bytes = input.take(Int(n)) else { break }
            try? memory.writeBytes(Array(bytes), at: UInt64(addr))
        case 3:
            guard let i = input.u8(), held.count < 64 else { break }
            let q = transport.queues[Int(i) % transport.queues.count]
            if let chain = q.pop() { held.append((q, chain)) }
        case 4:
            for (q, chain) in held { q.push(chain, written: UInt32(clamping: chain.writableLength)) }
            held.removeAll()
        case 5:
            guard let i = input.u8() else { break }
            writeRegister(transport, 0x050, UInt32(i) % UInt32(transport.queues.count + 1))
        default:
            guard let sector = input.u64(), let type = input.u32(), let length = input.u16(), let flags = input.u8() else { break }
            blockRequest(transport, sector: sector, type: type, length: length, flags: flags)
        }
    }
    return 0
}

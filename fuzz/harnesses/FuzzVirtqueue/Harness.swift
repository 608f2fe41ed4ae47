import GuestMemory
import SwvmBase
import Virtio

// The virtqueue descriptor walker, as a hostile guest drives it: the input
// sets the queue's size and ring addresses and fills guest memory (the
// descriptor table, the rings, the buffers); the device pops every chain,
// reads it, writes into it and pushes it back.
//
// The size word's top bit: after the first pop, the driver clears
// QueueReady and sets QueueNum to 0 while the device still holds the chain
// (as a vCPU can while a device thread serves a request), then tries to
// make the queue ready again; the chain is pushed after that.

let memorySize = 1 << 16
let memory = try! GuestMemory(ranges: [(0, UInt64(memorySize))])

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzVirtqueue(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size >= 8 else { return 0 }
    let input = UnsafeRawBufferPointer(start: data, count: size)
    try! memory.fill(0, at: 0, count: memorySize)
    try! memory.writeBytes(UnsafeRawBufferPointer(rebasing: input[8..<min(size, memorySize + 8)]), at: 0)
    let queue = VirtQueue(index: 0, maxSize: 256, memory: memory)
    let sizeWord = le16(Array(input.prefix(2)), 0)
    queue.size = sizeWord & 0x7fff
    queue.descTable = GuestAddress(le16(Array(input[2..<4]), 0))
    queue.availRing = GuestAddress(le16(Array(input[4..<6]), 0))
    queue.usedRing = GuestAddress(le16(Array(input[6..<8]), 0))
    guard (try? queue.enable()) != nil else { return 0 }
    let reply = [UInt8](repeating: 0x5a, count: 300)
    for i in 0..<512 {
        guard let chain = queue.pop() else { break }
        _ = chain.readAll()
        let n = reply.withUnsafeBytes { chain.write($0) }
        if i == 0 && sizeWord & 0x8000 != 0 {
            queue.disable()
            queue.size = 0
            if (try? queue.enable()) != nil { fatalError("a queue of size 0 was made ready") }
        }
        _ = queue.push(chain, written: UInt32(n))
    }
    return 0
}

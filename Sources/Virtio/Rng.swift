#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import SwvmBase
import NativeThreads

/// virtio-rng (virtio 1.x, section 5.4): fills the guest's buffers from the
/// host's getrandom(2), so the guest's entropy pool is ready at boot.
public final class RngDevice: VirtioDevice {
    public let deviceType = VirtioID.rng
    public let features: UInt64 = 0
    public let queueSizes: [UInt16] = [64]
    private let requests = RequestQueue()
    private let served = Locked(0)
    /// Random bytes given to the guest (for tests).
    public var bytesServed: Int { served.current }

    public init() {}

    public func readConfig(offset: Int, into data: UnsafeMutableRawBufferPointer) { for i in 0..<data.count { data[i] = 0 } }
    public func writeConfig(offset: Int, data: UnsafeRawBufferPointer) {}

    public func activate(queues: [VirtQueue], negotiated: UInt64, interrupt: @escaping @Sendable () -> Void) {
        requests.activate(queues.first, interrupt: interrupt)
    }

    public func reset() { requests.reset() }

    public func queueNotified(_ index: Int) {
        requests.serve { chain in
            var written = 0
            for b in chain.writable {
                // At most 64 KiB per request: enough, and bounded.
                let n = min(Int(b.length), 65536 - written)
                guard n > 0 else { break }
                let got = (try? chain.memory.withMutableBytes(at: b.address, count: n) { getrandom($0.baseAddress, n, 0) }) ?? -1
                if got > 0 { written += got }
            }
            served.with { $0 += written }
            return UInt32(written)
        }
    }
}

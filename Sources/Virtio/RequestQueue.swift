import SwvmBase
import NativeThreads

/// The one queue of a device that answers each request as it arrives
/// (virtio-blk, virtio-rng): set at activation, cleared at reset, served
/// under a lock because notifications and resets come from different
/// threads.
// @unchecked: `queue` and `interrupt` are read and written only under `lock`.
final class RequestQueue: @unchecked Sendable {
    private var queue: VirtQueue?
    private var interrupt: (@Sendable () -> Void)?
    private let lock = Locked(())

    func activate(_ queue: VirtQueue?, interrupt: @escaping @Sendable () -> Void) {
        lock.with { _ in
            self.queue = queue
            self.interrupt = interrupt
        }
    }

    func reset() { lock.with { _ in queue = nil } }

    /// Serves what the driver queued; interrupts it if it asked.
    func serve(_ request: (DescriptorChain) -> UInt32) {
        lock.with { _ in
            guard let q = queue else { return }
            if q.serveAvailable(request) { interrupt?() }
        }
    }
}

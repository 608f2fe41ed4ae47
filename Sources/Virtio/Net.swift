#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import Snapshot
import SwvmBase
import NativeThreads
import EventLoop

/// virtio-net (virtio 1.x, section 5.1) with a userspace back end: a tap
/// device on the host, read and written by the device thread (this host
/// has no vhost-net). Queue 0 receives (tap -> guest), queue 1 transmits.
///
/// Every VM has the device, so that one snapshot serves every run; a run
/// without --network bridge never attaches a tap: transmitted frames are
/// dropped and nothing is received. The MAC in the config space is the
/// same for every VM (the guest reads it at boot, before the snapshot);
/// guest-init sets the run's own from its settings.
///
/// Offloads: the tap carries virtio's own 12-byte header (IFF_VNET_HDR,
/// TUNSETVNETHDRSZ), so frames pass through unchanged in both directions
/// and checksum and TCP segmentation offload cost the device nothing: the
/// guest may hand over partially checksummed 64 KiB TCP segments (CSUM,
/// HOST_TSO4) and receive them (GUEST_CSUM, GUEST_TSO4, in the driver's
/// "big packets" chains; no mergeable buffers). The host kernel does the
/// rest. The device only fills in num_buffers (1) on receive.
// @unchecked: the queues, the tap, the buffers and the counters are read
// and written only under `lock` (the compiler cannot see that it guards them).
public final class NetDevice: VirtioDevice, StateSaving, @unchecked Sendable {
    public let deviceType = VirtioID.net
    public static let csum: UInt64 = 1 << 0, guestCsum: UInt64 = 1 << 1, guestTSO4: UInt64 = 1 << 7
    public static let mac: UInt64 = 1 << 5, hostTSO4: UInt64 = 1 << 11
    public let features: UInt64 = NetDevice.csum | NetDevice.guestCsum | NetDevice.guestTSO4 | NetDevice.mac | NetDevice.hostTSO4
    public let queueSizes: [UInt16] = [256, 256]
    public static let bootMAC: [UInt8] = [0x02, 0x53, 0, 0, 0, 0]
    static let headerSize = 12
    /// The largest frame either way: a 64 KiB TSO segment, its Ethernet
    /// and VLAN headers and the virtio header.
    static let maxFrame = 65536 + 64

    private let lock = Locked(())
    private var rx: VirtQueue?
    private var tx: VirtQueue?
    private var interrupt: (() -> Void)?
    private var negotiated: UInt64 = 0
    private var tap: Int32 = -1
    private var events: EventLoop?
    /// Where a frame from the tap lands before it is copied into the
    /// guest's buffers, and where a frame from the guest is gathered for
    /// the tap: mapped when a tap is attached (a VM without a network pays
    /// nothing), anonymous and never zeroed by swvm, so only the pages
    /// frames have touched are resident (a malloc'd buffer would pin heap
    /// pages the VMM otherwise returns to the kernel after its start).
    private var rxBuffer: UnsafeMutableRawBufferPointer?
    private var txBuffer: UnsafeMutableRawBufferPointer?
    /// The length of a frame left in rxBuffer while the guest had no
    /// receive buffer.
    private var pendingLength: Int?
    private var inCount = 0, outCount = 0, droppedCount = 0
    public var framesIn: Int { lock.with { _ in inCount } }
    public var framesOut: Int { lock.with { _ in outCount } }
    public var framesDropped: Int { lock.with { _ in droppedCount } }

    public init() {}

    deinit {
        if let b = rxBuffer { munmap(b.baseAddress, 2 * NetDevice.maxFrame) }
    }

    public func readConfig(offset: Int, into data: UnsafeMutableRawBufferPointer) {
        // mac[6], then status (not offered): zero.
        for i in 0..<data.count {
            let o = offset + i
            data[i] = o >= 0 && o < 6 ? NetDevice.bootMAC[o] : 0
        }
    }

    public func writeConfig(offset: Int, data: UnsafeRawBufferPointer) {}

    public func activate(queues: [VirtQueue], negotiated: UInt64, interrupt: @escaping @Sendable () -> Void) {
        lock.with { _ in
            rx = queues.count > 0 ? queues[0] : nil
            tx = queues.count > 1 ? queues[1] : nil
            self.interrupt = interrupt
            self.negotiated = negotiated
        }
        // On a vCPU thread (or the main thread restoring): the tap, if
        // any, is served from the event loop once the driver adds buffers.
    }

    public func reset() {
        lock.with { _ in
            rx = nil
            tx = nil
            pendingLength = nil
        }
    }

    /// The offloads the tap may hand to the guest (TUNSETOFFLOAD flags), by
    /// what the driver negotiated.
    public var tapOffloads: UInt32 {
        let f = lock.with { _ in negotiated }
        var flags: UInt32 = 0
        if f & NetDevice.guestCsum != 0 {
            flags |= 0x01   // TUN_F_CSUM
            if f & NetDevice.guestTSO4 != 0 { flags |= 0x02 }   // TUN_F_TSO4
        }
        return flags
    }

    /// Connects the tap (non-blocking, with a 12-byte virtio header) once
    /// the run's network exists: its frames are read on the event-loop thread.
    public func attach(tap fd: Int32, events loop: EventLoop) throws {
        try lock.with { _ in
            if rxBuffer == nil {
                let m = mmap(nil, 2 * NetDevice.maxFrame, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                guard let m, m != MAP_FAILED else { throw SwvmError.errno("mmap the virtio-net frame buffers") }
                rxBuffer = UnsafeMutableRawBufferPointer(start: m, count: NetDevice.maxFrame)
                txBuffer = UnsafeMutableRawBufferPointer(start: m + NetDevice.maxFrame, count: NetDevice.maxFrame)
            }
            tap = fd
            events = loop
        }
        try loop.add(fd: fd, events: UInt32(EPOLLIN.rawValue)) { [weak self] _ in self?.receive() }
    }

    public func queueNotified(_ index: Int) {
        if index == 1 { transmit() } else { resumeReceiving() }
    }

    // MARK: transmit (guest -> tap)

    private func transmit() {
        lock.with { _ in
            guard let q = tx else { return }
            let notify = q.serveAvailable { chain in
                // The header, then the frame: copy what the guest made
                // readable (bounded) and write it as one tap frame. (A
                // writev from guest memory would save the copy, but the
                // device thread's seccomp filter allows write, not writev.)
                guard tap >= 0, let buffer = txBuffer else { droppedCount += 1; return 0 }
                var n = 0
                for b in chain.readable {
                    let take = min(Int(b.length), buffer.count - n)
                    guard take > 0 else { break }
                    let dest = UnsafeMutableRawBufferPointer(rebasing: buffer[n..<n + take])
                    guard (try? chain.memory.copyOut(at: b.address, into: dest)) != nil else { break }
                    n += take
                }
                if n > NetDevice.headerSize && n < buffer.count {
                    let w = write(tap, buffer.baseAddress!, n)
                    if w > 0 { outCount += 1 } else { droppedCount += 1 }
                } else {
                    droppedCount += 1
                }
                return 0
            }
            if notify { interrupt?() }
        }
    }

    // MARK: receive (tap -> guest)

    /// The tap is readable: move frames into the guest's receive buffers
    /// until either runs out. Without buffers, stop watching the tap (and
    /// keep the frame) until the driver adds some.
    private func receive() {
        lock.with { _ in
            guard let q = rx, tap >= 0, let buffer = rxBuffer else { return }
            var notify = false
            while true {
                let n: Int
                if let p = pendingLength {
                    n = p
                } else {
                    n = read(tap, buffer.baseAddress!, buffer.count)
                    guard n > 0 else { break }
                    guard n > NetDevice.headerSize else { droppedCount += 1; continue }
                }
                guard let chain = q.pop() else {
                    // The frame stays in rxBuffer: nothing is read until
                    // the driver adds buffers.
                    pendingLength = n
                    events?.modify(fd: tap, events: 0)
                    break
                }
                pendingLength = nil
                // The tap wrote the first 10 bytes of the header; the
                // rest is num_buffers: one chain per frame.
                buffer[10] = 1
                buffer[11] = 0
                guard chain.writableLength >= n else {
                    // A buffer too small for the frame: the frame is dropped.
                    droppedCount += 1
                    if q.push(chain, written: 0) { notify = true }
                    continue
                }
                let written = chain.write(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                inCount += 1
                if q.push(chain, written: UInt32(written)) { notify = true }
            }
            if notify { interrupt?() }
        }
    }

    private func resumeReceiving() {
        let (fd, loop) = lock.with { _ in (tap, events) }
        guard fd >= 0, let loop else { return }
        loop.modify(fd: fd, events: UInt32(EPOLLIN.rawValue))
        receive()
    }

    // MARK: snapshot

    /// The queues are the transport's; a pending frame is not kept (the
    /// snapshot is taken before any tap is attached).
    public func saveState(_ w: inout StateWriter) {
        w.data(NetDevice.bootMAC)
    }

    public func restoreState(_ r: inout StateReader) throws {
        guard try r.data(limit: 64) == NetDevice.bootMAC else {
            throw SwvmError(.invalidImage, "\(r.source): the virtio-net device has another MAC")
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
import Snapshot
import SwvmBase
import NativeThreads

/// virtio-console with the multiport feature (virtio 1.x, section 5.3):
/// named ports that the guest sees as /dev/vport0pN character devices.
/// swvm uses them as its host-guest channel: one port for control
/// messages and one each for the workload's stdin, stdout and stderr.
///
/// Host side of a port: bytes the guest writes arrive through `onData`;
/// `send` queues bytes for the guest; `setHostConnected` tells the guest
/// whether the host end is open (a closed host end reads as EOF).
///
/// What waits for the guest is bounded: bytes per port (`maxPending`) and
/// control messages (`maxControlMessages`; a driver that repeats
/// DEVICE_READY or PORT_READY without taking the replies would grow them
/// without end). Past a bound the device queues nothing more and calls
/// `onLimit` once, and its owner ends the VM.
// @unchecked: the queues, the ports' buffers and the limit state are read
// and written only under `lock`; the callbacks are set while the machine
// is built, before its threads start.
public final class ConsoleDevice: VirtioDevice, StateSaving, @unchecked Sendable {
    /// @unchecked Sendable: its vars are the device's state, read and
    /// written under the device's `lock` (`onData` is set before the VM runs).
    public final class Port: @unchecked Sendable {
        public let id: UInt32
        public let name: String
        /// Guest -> host bytes (on the event-loop thread).
        public var onData: (@Sendable ([UInt8]) -> Void)?
        public internal(set) var guestOpen = false
        var hostConnected: Bool
        var pending: [UInt8] = []
        var pendingStart = 0
        var ready = false

        init(id: UInt32, name: String, hostConnected: Bool) {
            self.id = id
            self.name = name
            self.hostConnected = hostConnected
        }
    }

    public let deviceType = VirtioID.console
    public let features: UInt64 = ConsoleDevice.featureMultiport
    public let ports: [Port]
    public var queueSizes: [UInt16] {
        // rx/tx for port 0, control rx/tx, then rx/tx per further port.
        (0..<(2 * (ports.count + 1))).map { $0 == 2 || $0 == 3 ? 32 : 128 }
    }

    static let featureMultiport: UInt64 = 1 << 1
    enum Event: UInt16 {
        case deviceReady = 0, deviceAdd = 1, deviceRemove = 2, portReady = 3, consolePort = 4
        case resize = 5, portOpen = 6, portName = 7
    }

    private var queues: [VirtQueue] = []
    private var interrupt: (() -> Void)?
    private var controlOut: [[UInt8]] = []
    private let lock = Locked(())
    /// Called when host->guest data could not all be delivered and room appears.
    public var onWritable: (@Sendable () -> Void)?
    /// Called once, outside the device's lock, when a bound was passed.
    public var onLimit: (@Sendable (String) -> Void)?
    /// The bound passed (set once), and whether onLimit has heard of it.
    private var limitPassed: String?
    private var limitReported = false

    public let maxPending: Int
    /// Linux's driver has a handful outstanding: one DEVICE_ADD per port,
    /// a name and an open per port, a resize.
    public static let maxControlMessages = 256

    /// `ports`: name and whether the host end starts open. `maxPending`:
    /// the most bytes a port may hold for the guest.
    public init(ports: [(name: String, hostConnected: Bool)], maxPending: Int = 16 << 20) {
        self.ports = ports.enumerated().map { Port(id: UInt32($0.offset), name: $0.element.name, hostConnected: $0.element.hostConnected) }
        self.maxPending = maxPending
    }

    public func port(named name: String) -> Port? { ports.first { $0.name == name } }

    static func rxQueue(_ id: UInt32) -> Int { id == 0 ? 0 : 2 + 2 * Int(id) }
    static func txQueue(_ id: UInt32) -> Int { rxQueue(id) + 1 }
    static let controlRx = 2, controlTx = 3

    public func readConfig(offset: Int, into data: UnsafeMutableRawBufferPointer) {
        var config = [UInt8](repeating: 0, count: 12)
        let n = UInt32(ports.count)
        config[4] = UInt8(n & 0xff); config[5] = UInt8((n >> 8) & 0xff)   // max_nr_ports
        for i in 0..<data.count { data[i] = offset + i < config.count ? config[offset + i] : 0 }
    }

    public func writeConfig(offset: Int, data: UnsafeRawBufferPointer) {}

    public func activate(queues: [VirtQueue], negotiated: UInt64, interrupt: @escaping @Sendable () -> Void) {
        lock.with { _ in
            self.queues = queues
            self.interrupt = interrupt
        }
    }

    public func reset() {
        lock.with { _ in
            queues = []
            controlOut = []
            for p in ports { p.ready = false; p.guestOpen = false }
        }
    }

    /// Each port's state as both ends see it, and control messages not yet
    /// taken by the guest. (Queues are the transport's.)
    public func saveState(_ w: inout StateWriter) {
        lock.with { _ in
            w.u32(UInt32(ports.count))
            for p in ports {
                w.bool(p.ready)
                w.bool(p.guestOpen)
                w.bool(p.hostConnected)
                w.data(Array(p.pending[p.pendingStart...]))
            }
            w.u32(UInt32(controlOut.count))
            for m in controlOut { w.data(m) }
        }
    }

    public func restoreState(_ r: inout StateReader) throws {
        guard try r.u32() == UInt32(ports.count) else {
            throw SwvmError(.invalidImage, "\(r.source): virtio-console has a different port count")
        }
        var states: [(Bool, Bool, Bool, [UInt8])] = []
        for _ in ports { states.append((try r.bool(), try r.bool(), try r.bool(), try r.data(limit: maxPending))) }
        let n = try r.bounded(try r.u32(), max: ConsoleDevice.maxControlMessages, what: "control messages")
        var messages: [[UInt8]] = []
        for _ in 0..<n { messages.append(try r.data(limit: 4096)) }
        lock.with { _ in
            for (p, s) in zip(ports, states) {
                (p.ready, p.guestOpen, p.hostConnected, p.pending) = (s.0, s.1, s.2, s.3)
                p.pendingStart = 0
            }
            controlOut = messages
        }
    }

    // MARK: host API

    /// Queues bytes for the guest to read from `port`. Past `maxPending`
    /// nothing is queued, and onLimit hears of it.
    public func send(_ bytes: [UInt8], to port: Port) {
        lock.with { _ in
            guard limitPassed == nil else { return }
            guard port.pending.count - port.pendingStart + bytes.count <= maxPending else {
                limitPassed = "virtio-console: the guest left more than \(maxPending) bytes untaken on port \(port.name)"
                return
            }
            port.pending.append(contentsOf: bytes)
            flushData(port)
        }
        reportLimit()
    }

    /// Tells onLimit, once, that a bound was passed (outside the lock: it
    /// may stop the VM).
    private func reportLimit() {
        let message: String? = lock.with { _ in
            guard let m = limitPassed, !limitReported else { return nil }
            limitReported = true
            return m
        }
        if let message { onLimit?(message) }
    }

    /// Bytes queued for the guest and not yet taken.
    public func pendingCount(_ port: Port) -> Int { lock.with { _ in port.pending.count - port.pendingStart } }

    public func setHostConnected(_ port: Port, _ connected: Bool) {
        lock.with { _ in
            port.hostConnected = connected
            if port.ready { queueControl(port.id, .portOpen, connected ? 1 : 0) }
            flushControl()
        }
        reportLimit()
    }

    /// Tells the guest `port` is gone (PORT_REMOVE: its driver unplugs it,
    /// and poll on it then says POLLHUP alone). swvm never unplugs a port
    /// during a run; a test does, to check that guest-init copes.
    public func unplug(_ port: Port) {
        lock.with { _ in
            queueControl(port.id, .deviceRemove, 1)
            flushControl()
        }
        reportLimit()
    }

    /// Processes whatever the guest has queued for the host on every port
    /// (used before the VM stops, so no output is lost).
    public func drain() {
        for p in ports { queueNotified(ConsoleDevice.txQueue(p.id)) }
        queueNotified(ConsoleDevice.controlTx)
    }

    // MARK: queues

    public func queueNotified(_ index: Int) {
        var deliveries: [(Port, [UInt8])] = []
        var drained = false
        lock.with { _ in
            guard index < queues.count else { return }
            switch index {
            case ConsoleDevice.controlTx:
                handleControlFromGuest()
            case ConsoleDevice.controlRx:
                flushControl()
            default:
                let portID = index < 2 ? 0 : UInt32((index - 2) / 2)
                guard Int(portID) < ports.count else { return }
                let port = ports[Int(portID)]
                if index == ConsoleDevice.txQueue(portID) {
                    let notify = queues[index].serveAvailable { chain in
                        let data = chain.readAll(limit: 1 << 20)
                        if !data.isEmpty { deliveries.append((port, data)) }
                        return 0
                    }
                    if notify { interrupt?() }
                } else {
                    drained = flushData(port)
                }
            }
        }
        // Callbacks outside the lock: they may send.
        reportLimit()
        for (p, data) in deliveries { p.onData?(data) }
        if drained { onWritable?() }
    }

    private func handleControlFromGuest() {
        let notify = queues[ConsoleDevice.controlTx].serveAvailable { chain in
            let msg = chain.readAll(limit: 4096)
            guard msg.count >= 8 else { return 0 }
            let id = le32(msg, 0), event = le16(msg, 4), value = le16(msg, 6)
            switch Event(rawValue: event) {
            case .deviceReady?:
                guard value == 1 else { break }
                for p in ports { queueControl(p.id, .deviceAdd, 1) }
            case .portReady?:
                guard Int(id) < ports.count else { break }
                let p = ports[Int(id)]
                guard value == 1 else { Log.warning("virtio-console: guest could not add port \(p.name)"); break }
                p.ready = true
                queueControl(p.id, .portName, 1, name: p.name)
                if p.hostConnected { queueControl(p.id, .portOpen, 1) }
            case .portOpen?:
                guard Int(id) < ports.count else { break }
                let p = ports[Int(id)]
                p.guestOpen = value == 1
                // Now the guest keeps what it receives: deliver what waits.
                if p.guestOpen { flushData(p) }
            default:
                break
            }
            return 0
        }
        if notify { interrupt?() }
        flushControl()
    }

    private func queueControl(_ id: UInt32, _ event: Event, _ value: UInt16, name: String? = nil) {
        guard limitPassed == nil else { return }
        guard controlOut.count < ConsoleDevice.maxControlMessages else {
            limitPassed = "virtio-console: the guest's driver left more than \(ConsoleDevice.maxControlMessages) control messages untaken (DEVICE_READY or PORT_READY over and over?)"
            return
        }
        var msg = le32(id) + le16(event.rawValue) + le16(value)
        if let name { msg += Array(name.utf8) }
        controlOut.append(msg)
    }

    private func flushControl() {
        guard ConsoleDevice.controlRx < queues.count else { return }
        let q = queues[ConsoleDevice.controlRx]
        var notify = false
        while !controlOut.isEmpty, let chain = q.pop() {
            let msg = controlOut.removeFirst()
            let n = msg.withUnsafeBytes { chain.write($0) }
            if q.push(chain, written: UInt32(n)) { notify = true }
        }
        if notify { interrupt?() }
    }

    /// Moves pending host->guest bytes into the guest's buffers; true when
    /// nothing is left pending.
    @discardableResult
    private func flushData(_ port: Port) -> Bool {
        let index = ConsoleDevice.rxQueue(port.id)
        // Linux discards what arrives on a port nobody in the guest has
        // open, so hold data until the guest opens it.
        guard index < queues.count, port.guestOpen else { return port.pending.count == port.pendingStart }
        let q = queues[index]
        var notify = false
        while port.pendingStart < port.pending.count, let chain = q.pop() {
            let n = port.pending.withUnsafeBytes { raw in
                chain.write(UnsafeRawBufferPointer(rebasing: raw[port.pendingStart...]))
            }
            port.pendingStart += n
            if q.push(chain, written: UInt32(n)) { notify = true }
        }
        if port.pendingStart == port.pending.count {
            port.pending.removeAll(keepingCapacity: true)
            port.pendingStart = 0
        } else if port.pendingStart > 65536 {
            port.pending.removeFirst(port.pendingStart)
            port.pendingStart = 0
        }
        if notify { interrupt?() }
        return port.pending.isEmpty
    }
}

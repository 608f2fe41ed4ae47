#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import KVM
import GuestMemory
import BootLoader
import Devices
import Virtio
import Seccomp
import SwvmBase

extension Machine {
    func addLegacyDevices() throws {
        let serialIRQ = try makeIRQFD(gsi: 4)
        let consoleFD = config.consoleFD
        serial = Serial8250(
            output: { [panicScanner, weak self] byte in
                if let fd = consoleFD {
                    var b = byte
                    _ = write(fd, &b, 1)
                }
                if let line = panicScanner.feed(byte) { self?.onConsoleLine?(line) }
            },
            raiseInterrupt: { var one: UInt64 = 1; _ = write(serialIRQ, &one, 8) })
        try portBus.insert(serial, base: 0x3f8, length: 8)
        try portBus.insert(I8042(onReset: { [weak self] in self?.guestReset() }), base: 0x60, length: 5)
        cmos = CMOSClock()
        try portBus.insert(cmos, base: 0x70, length: 2)
        attachedDevices += ["8250 UART (console)", "i8042 (reset line only)", "CMOS clock (read-only)"]
    }

    /// An eventfd that raises `gsi` when written (KVM_IRQFD).
    public func makeIRQFD(gsi: UInt32) throws -> Int32 {
        let fd = FileDescriptor(try sys("eventfd") { eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK)) })
        try vm.registerIRQFD(eventfd: fd.raw, gsi: gsi)
        ownedFDs.append(fd)
        return fd.raw
    }

    /// An eventfd written by KVM when the guest writes `value` to `address`.
    public func makeIOEventFD(address: UInt64, length: UInt32, value: UInt64?) throws -> Int32 {
        let fd = FileDescriptor(try sys("eventfd") { eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK)) })
        try vm.registerIOEventFD(eventfd: fd.raw, address: address, length: length, datamatch: value)
        ownedFDs.append(fd)
        return fd.raw
    }

    /// Reserves the next virtio-mmio window and IRQ, and announces the
    /// device on the kernel command line (virtio_mmio.device=).
    public func allocateVirtioSlot() throws -> (base: UInt64, irq: UInt32) {
        guard nextIRQ <= X86Layout.lastDeviceIRQ else { throw SwvmError(.invalidArgument, "too many devices") }
        let base = X86Layout.virtioMMIOBase + UInt64(nextMMIOSlot) * X86Layout.virtioMMIOSize
        let irq = nextIRQ
        nextMMIOSlot += 1
        nextIRQ += 1
        try cmdline.append("virtio_mmio.device=4K@0x\(String(base, radix: 16)):\(irq)")
        return (base, irq)
    }

    /// Attaches a virtio device on the next virtio-mmio slot: its register
    /// window, an irqfd for its interrupt, and an ioeventfd per queue so
    /// that queue notifications reach the event-loop thread (or the
    /// device's own thread, `adoptNotifier`) without a userspace exit.
    @discardableResult
    public func addVirtioDevice(_ device: VirtioDevice, description: String? = nil) throws -> MMIOTransport {
        let (base, irq) = try allocateVirtioSlot()
        let irqfd = try makeIRQFD(gsi: irq)
        let transport = MMIOTransport(device: device, memory: memory, raiseIRQ: {
            var one: UInt64 = 1
            _ = write(irqfd, &one, 8)
        })
        try mmioBus.insert(transport, base: base, length: X86Layout.virtioMMIOSize)
        for q in 0..<device.queueSizes.count {
            let efd = try makeIOEventFD(address: base + 0x50, length: 4, value: UInt64(q))
            queueNotifyFDs.append(efd)
            if device.adoptNotifier(efd, queue: q) { continue }
            try events.add(fd: efd, events: UInt32(EPOLLIN.rawValue)) { [weak device] _ in
                var v: UInt64 = 0
                _ = read(efd, &v, 8)
                device?.queueNotified(q)
            }
        }
        virtioTransports.append(transport)
        attachedDevices.append(description ?? "virtio device type \(device.deviceType)")
        return transport
    }

    /// A thread of its own for a device's server, started with the vCPUs
    /// under `profile` (failing to load it ends the VM, as for the other
    /// threads) and reported in `confinedThreads`. `prepare` runs on the
    /// thread before the filter (for steps the filter forbids, such as
    /// dropping this thread's capabilities); a failure ends the VM. `body`
    /// returns when its argument, an eventfd, becomes readable: the VM has ended.
    public func addServiceThread(name: String, profile: SeccompProfile, prepare: @escaping @Sendable () throws -> Void = {},
                                 body: @escaping @Sendable (_ stop: Int32) -> Void) {
        services.append(ServiceThread(name: name, profile: profile, prepare: prepare, body: body))
    }
}

/// A device's server thread, as `addServiceThread` asked for it.
struct ServiceThread: Sendable {
    let name: String
    let profile: SeccompProfile
    let prepare: @Sendable () throws -> Void
    let body: @Sendable (_ stop: Int32) -> Void
}

extension Machine {

    /// Replaces how the posture describes an attached device (once the run
    /// has given it what it serves).
    public func describe(_ transport: MMIOTransport, as text: String) {
        guard let i = virtioTransports.firstIndex(where: { $0 === transport }) else { return }
        let offset = attachedDevices.count - virtioTransports.count
        attachedDevices[offset + i] = text
    }

    /// Feeds the guest's serial console (host terminal input).
    public func serialInput(_ bytes: [UInt8]) { serial.enqueueInput(bytes) }
}

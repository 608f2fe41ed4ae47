import SwvmBase
import NativeThreads

/// A device that answers port I/O or MMIO accesses at offsets from its base
/// (Sendable: every vCPU thread dispatches to it).
public protocol BusDevice: AnyObject, Sendable {
    func read(offset: UInt64, data: UnsafeMutableRawBufferPointer)
    func write(offset: UInt64, data: UnsafeRawBufferPointer)
}

/// Maps address ranges to devices (one bus for port I/O, one for MMIO),
/// like Firecracker's vmm::devices::Bus.
public final class Bus: Sendable {
    private struct Entry {
        let base: UInt64
        let length: UInt64
        let device: BusDevice
    }

    private let entries = Locked<[Entry]>([])
    public let name: String

    public init(name: String) { self.name = name }

    public func insert(_ device: BusDevice, base: UInt64, length: UInt64) throws {
        try entries.with { entries in
            for e in entries where base < e.base + e.length && e.base < base + length {
                throw SwvmError(.internalError, "\(name) bus: 0x\(String(base, radix: 16)) overlaps a device at 0x\(String(e.base, radix: 16))")
            }
            entries.append(Entry(base: base, length: length, device: device))
        }
    }

    /// The device at `address` and the offset into it (the device is
    /// called outside the bus's lock).
    private func device(at address: UInt64) -> (BusDevice, UInt64)? {
        entries.with { entries in
            entries.first { address >= $0.base && address < $0.base + $0.length }.map { ($0.device, address - $0.base) }
        }
    }

    /// Dispatches a read; returns false when no device claims the address.
    @discardableResult
    public func read(address: UInt64, data: UnsafeMutableRawBufferPointer) -> Bool {
        guard let (device, offset) = device(at: address) else { return false }
        device.read(offset: offset, data: data)
        return true
    }

    @discardableResult
    public func write(address: UInt64, data: UnsafeRawBufferPointer) -> Bool {
        guard let (device, offset) = device(at: address) else { return false }
        device.write(offset: offset, data: data)
        return true
    }
}

import SwvmBase

/// A device that answers port I/O or MMIO accesses at offsets from its base.
public protocol BusDevice: AnyObject {
    func read(offset: UInt64, data: UnsafeMutableRawBufferPointer)
    func write(offset: UInt64, data: UnsafeRawBufferPointer)
}

/// Maps address ranges to devices (one bus for port I/O, one for MMIO),
/// like Firecracker's vmm::devices::Bus.
public final class Bus {
    private struct Entry {
        let base: UInt64
        let length: UInt64
        let device: BusDevice
    }

    private var entries: [Entry] = []
    public let name: String

    public init(name: String) { self.name = name }

    public func insert(_ device: BusDevice, base: UInt64, length: UInt64) throws {
        for e in entries where base < e.base + e.length && e.base < base + length {
            throw SwvmError(.internalError, "\(name) bus: 0x\(String(base, radix: 16)) overlaps a device at 0x\(String(e.base, radix: 16))")
        }
        entries.append(Entry(base: base, length: length, device: device))
    }

    /// Dispatches a read; returns false when no device claims the address.
    @discardableResult
    public func read(address: UInt64, data: UnsafeMutableRawBufferPointer) -> Bool {
        for e in entries where address >= e.base && address < e.base + e.length {
            e.device.read(offset: address - e.base, data: data)
            return true
        }
        return false
    }

    @discardableResult
    public func write(address: UInt64, data: UnsafeRawBufferPointer) -> Bool {
        for e in entries where address >= e.base && address < e.base + e.length {
            e.device.write(offset: address - e.base, data: data)
            return true
        }
        return false
    }
}

/// The PS/2 controller's reset line: a guest writing 0xFE (pulse reset) to
/// port 0x64 asks for a reboot, which is how Linux (reboot=k) ends a VM
/// whose VMM has no ACPI. Reads report an empty controller.
public final class I8042: BusDevice {
    static let commandPort: UInt64 = 4   // 0x64 relative to 0x60
    static let resetCommand: UInt8 = 0xfe

    private let onReset: @Sendable () -> Void

    public init(onReset: @escaping @Sendable () -> Void) { self.onReset = onReset }

    public func read(offset: UInt64, data: UnsafeMutableRawBufferPointer) {
        for i in 0..<data.count { data[i] = 0 }
    }

    public func write(offset: UInt64, data: UnsafeRawBufferPointer) {
        if offset == I8042.commandPort, data.count >= 1, data[0] == I8042.resetCommand { onReset() }
    }
}

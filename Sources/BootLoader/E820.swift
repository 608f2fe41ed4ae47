import GuestMemory

/// One entry of the BIOS e820 memory map handed to the kernel.
public struct E820Entry: Equatable {
    public enum Kind: UInt32 { case ram = 1, reserved = 2 }
    public let address: UInt64
    public let size: UInt64
    public let kind: Kind

    public init(address: UInt64, size: UInt64, kind: Kind) {
        self.address = address
        self.size = size
        self.kind = kind
    }
}

public enum E820 {
    /// The map for guest RAM laid out by X86Layout.memoryRanges: low RAM up
    /// to the EBDA, the BIOS hole left out, RAM from 1 MiB to the MMIO gap
    /// (or the end of RAM), and RAM above 4 GiB for large guests.
    public static func map(memorySize: UInt64) -> [E820Entry] {
        var entries = [E820Entry(address: 0, size: X86Layout.ebdaStart, kind: .ram)]
        let lowEnd = min(memorySize, X86Layout.mmioGapStart)
        if lowEnd > X86Layout.himemStart {
            entries.append(E820Entry(address: X86Layout.himemStart, size: lowEnd - X86Layout.himemStart, kind: .ram))
        }
        if memorySize > X86Layout.mmioGapStart {
            entries.append(E820Entry(address: X86Layout.firstAddressPast32Bits,
                                     size: memorySize - X86Layout.mmioGapStart, kind: .ram))
        }
        return entries
    }
}

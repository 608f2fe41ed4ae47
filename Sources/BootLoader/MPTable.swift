import SwvmBase
import GuestMemory

/// An Intel MultiProcessor Specification 1.4 table: how a kernel without
/// ACPI learns its CPUs, the IOAPIC and how ISA IRQs reach it. Placed at
/// the start of the EBDA, where Linux looks first.
public enum MPTable {
    static let apicVersion: UInt8 = 0x14
    static let ioapicVersion: UInt8 = 0x11
    static let busISA: UInt8 = 0
    static let irqCount = 24

    public static func bytes(cpus: Int, at base: GuestAddress = X86Layout.ebdaStart) throws -> [UInt8] {
        guard cpus >= 1, cpus <= 254 else { throw SwvmError(.invalidArgument, "MP table: \(cpus) CPUs is out of range") }
        let ioapicID = UInt8(cpus + 1)
        var entries: [UInt8] = []
        var count: UInt16 = 0

        for cpu in 0..<cpus {
            var e = [UInt8](repeating: 0, count: 20)
            e[0] = 0                                  // processor entry
            e[1] = UInt8(cpu)                         // local APIC id
            e[2] = apicVersion
            e[3] = 0x01 | (cpu == 0 ? 0x02 : 0)       // enabled, boot processor
            put32(&e, 4, 0x600)                       // CPU signature (family 6)
            put32(&e, 8, 0x201)                       // features: FPU, APIC
            entries += e; count += 1
        }
        entries += [1, busISA] + Array("ISA   ".utf8); count += 1
        var ioapic: [UInt8] = [2, ioapicID, ioapicVersion, 0x01, 0, 0, 0, 0]
        put32(&ioapic, 4, X86Layout.ioapicAddress)
        entries += ioapic; count += 1
        for irq in 0..<irqCount {
            // I/O interrupt: type INT, default polarity/trigger, ISA irq -> IOAPIC pin.
            entries += [3, 0, 0, 0, busISA, UInt8(irq), ioapicID, UInt8(irq)]; count += 1
        }
        entries += [4, 3, 0, 0, busISA, 0, 0, 0]; count += 1        // ExtINT -> LINT0 of the BSP
        entries += [4, 1, 0, 0, busISA, 0, 0xff, 1]; count += 1     // NMI -> LINT1 of all CPUs

        var header = [UInt8](repeating: 0, count: 44)
        header.replaceSubrange(0..<4, with: Array("PCMP".utf8))
        put16(&header, 4, UInt16(44 + entries.count))
        header[6] = 4                                             // spec revision 1.4
        header.replaceSubrange(8..<16, with: Array("SWVM    ".utf8))
        header.replaceSubrange(16..<28, with: Array("MICROVM     ".utf8))
        put16(&header, 34, count)
        put32(&header, 36, X86Layout.lapicAddress)
        var table = header + entries
        table[7] = checksum(table)

        var floating = [UInt8](repeating: 0, count: 16)
        floating.replaceSubrange(0..<4, with: Array("_MP_".utf8))
        put32(&floating, 4, UInt32(base + 16))
        floating[8] = 1                                           // length in 16-byte units
        floating[9] = 4
        floating[10] = checksum(floating)

        let all = floating + table
        guard base + UInt64(all.count) <= 0xa0000 else {
            throw SwvmError(.invalidArgument, "MP table for \(cpus) CPUs does not fit below 640 KiB")
        }
        return all
    }

    public static func write(cpus: Int, into memory: GuestMemory) throws {
        try memory.writeBytes(try bytes(cpus: cpus), at: X86Layout.ebdaStart)
    }

    /// The byte that makes the sum of `bytes` zero modulo 256.
    static func checksum(_ bytes: [UInt8]) -> UInt8 {
        let sum = bytes.reduce(UInt8(0)) { $0 &+ $1 }
        return 0 &- sum
    }

    static func put16(_ b: inout [UInt8], _ o: Int, _ v: UInt16) { b.replaceSubrange(o..<(o + 2), with: le16(v)) }
    static func put32(_ b: inout [UInt8], _ o: Int, _ v: UInt32) { b.replaceSubrange(o..<(o + 4), with: le32(v)) }
}

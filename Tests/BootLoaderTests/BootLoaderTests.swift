#if canImport(Glibc)
import Glibc
#endif
import Testing
import CKVM
@testable import BootLoader
@testable import GuestMemory
@testable import SwvmBase

@Suite struct ZeroPageTests {
    @Test func e820LeavesTheBIOSHoleAndTheMMIOGap() {
        #expect(E820.map(memorySize: 256 << 20) == [
            E820Entry(address: 0, size: 0x9fc00, kind: .ram),
            E820Entry(address: 0x100000, size: (256 << 20) - 0x100000, kind: .ram),
        ])
        let big: UInt64 = 4 << 30
        #expect(E820.map(memorySize: big) == [
            E820Entry(address: 0, size: 0x9fc00, kind: .ram),
            E820Entry(address: 0x100000, size: 0xd000_0000 - 0x100000, kind: .ram),
            E820Entry(address: 1 << 32, size: big - 0xd000_0000, kind: .ram),
        ])
        #expect(X86Layout.memoryRanges(size: big).map(\.0) == [0, 1 << 32])
    }

    @Test func zeroPageFieldsSitWhereTheKernelReadsThem() throws {
        // Offsets from <asm/bootparam.h> (boot protocol 2.15).
        #expect(ckvm_bp_size == 4096)
        #expect(ckvm_bp_e820_entries == 0x1e8)
        #expect(ckvm_bp_e820_table == 0x2d0)
        #expect(ckvm_bp_hdr_boot_flag == 0x1fe)
        #expect(ckvm_bp_hdr_header == 0x202)
        #expect(ckvm_bp_hdr_type_of_loader == 0x210)
        #expect(ckvm_bp_hdr_ramdisk_image == 0x218)
        #expect(ckvm_bp_hdr_cmd_line_ptr == 0x228)
        var zp = ZeroPage()
        zp.setCommandLine(address: 0x20000, size: 100)
        zp.setInitrd(address: 0x7f00000, size: 0x1234)
        try zp.setE820(E820.map(memorySize: 128 << 20))
        #expect(zp.field16(0x1fe) == 0xaa55)
        #expect(zp.field32(0x202) == 0x5372_6448)
        #expect(zp.bytes[0x210] == 0xff)
        #expect(zp.commandLineAddress == 0x20000)
        #expect(zp.initrd.address == 0x7f00000 && zp.initrd.size == 0x1234)
        #expect(zp.e820 == E820.map(memorySize: 128 << 20))
    }

    @Test func setupHeaderIsCopiedFromABzImage() {
        var header = [UInt8](repeating: 0, count: 0x280 - 0x1f1)
        header[0x206 - 0x1f1] = 0x0f   // version low byte
        header[0x207 - 0x1f1] = 0x02
        let zp = ZeroPage(setupHeader: header)
        #expect(zp.field16(0x206) == 0x020f)
        #expect(zp.field16(0x1fe) == 0xaa55)   // still set by the loader
    }
}

@Suite struct CmdlineTests {
    @Test func assemblesAndKeepsInitArgumentsLast() throws {
        var c = KernelCmdline()
        try c.append("console=ttyS0  quiet")
        try c.append("-- initarg")
        try c.append("virtio_mmio.device=4K@0xd0000000:5")
        #expect(c.description == "console=ttyS0 quiet virtio_mmio.device=4K@0xd0000000:5 -- initarg")
        #expect(c.contains(key: "console"))
        #expect(!c.contains(key: "cons"))
        #expect(c.bytes.last == 0)
    }

    @Test func enforcesTheKernelsLimit() throws {
        var c = KernelCmdline(capacity: 32)
        try c.append("a=1 b=2")
        #expect(throws: SwvmError.self) { try c.append(String(repeating: "x", count: 40)) }
        #expect(throws: SwvmError.self) { try c.append("bad\nline") }
    }
}

@Suite struct LayoutTests {
    @Test func mpTableChecksumsAndEntries() throws {
        let bytes = try MPTable.bytes(cpus: 2)
        #expect(Array(bytes[0..<4]) == Array("_MP_".utf8))
        #expect(bytes[0..<16].reduce(UInt8(0), &+) == 0)
        let tableLength = Int(bytes[16 + 4]) | Int(bytes[16 + 5]) << 8
        #expect(Array(bytes[16..<20]) == Array("PCMP".utf8))
        #expect(bytes[16..<(16 + tableLength)].reduce(UInt8(0), &+) == 0)
        let entries = Int(bytes[16 + 34]) | Int(bytes[16 + 35]) << 8
        #expect(entries == 2 + 1 + 1 + 24 + 2)   // CPUs, bus, IOAPIC, IRQs, LINT0/1
        // Processor entries: ids 0 and 1, the first the boot processor.
        #expect(bytes[16 + 44] == 0 && bytes[16 + 45] == 0 && bytes[16 + 47] == 0x03)
        #expect(bytes[16 + 64] == 0 && bytes[16 + 65] == 1 && bytes[16 + 67] == 0x01)
        #expect(throws: SwvmError.self) { try MPTable.bytes(cpus: 0) }
    }

    @Test func gdtDecodesToFlatLongModeSegments() {
        let code = GDT.segment(index: GDT.codeIndex)
        #expect(code.l == 1 && code.present == 1 && code.selector == 8 && code.limit == 0xffff_ffff && code.type == 0xb)
        let data = GDT.segment(index: GDT.dataIndex)
        #expect(data.db == 1 && data.selector == 0x10 && data.type == 3)
        #expect(GDT.segment(index: 0).unusable == 1)
    }

    @Test func identityPageTables() throws {
        let m = try GuestMemory(ranges: [(0, 64 << 20)])
        try PageTables.write(into: m)
        #expect(try m.read(UInt64.self, at: X86Layout.pml4Start) == X86Layout.pdptStart | 3)
        #expect(try m.read(UInt64.self, at: X86Layout.pdStart + 8 * 5) == (5 << 21) | 0x83)
    }
}

/// KernelLoader reads a file: the image goes through one (inside the
/// build directory, so a killed test leaves no /tmp debris).
func loadKernel(_ bytes: [UInt8], memory: GuestMemory) throws -> LoadedKernel {
    let path = Path.join(FS.executableDirectory(), "test-fixtures/kernel-\(randomHex(4))")
    try FS.makeDirectories(Path.dirname(path))
    try FS.writeFile(path, bytes)
    defer { unlink(path) }
    return try KernelLoader.load(path: path, into: memory)
}

@Suite struct KernelLoadingTests {
    /// A minimal ELF64 x86_64 executable with a text and a bss segment.
    func elf(entry: UInt64 = 0x1000000, paddr: UInt64 = 0x1000000, machine: UInt16 = 62) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 0x1000 + 16)
        func put<T: FixedWidthInteger>(_ v: T, _ o: Int) { withUnsafeBytes(of: v.littleEndian) { for (i, x) in $0.enumerated() { b[o + i] = x } } }
        b[0...3] = [0x7f, 0x45, 0x4c, 0x46]; b[4] = 2; b[5] = 1; b[6] = 1
        put(UInt16(2), 16); put(machine, 18); put(UInt32(1), 20); put(entry, 24); put(UInt64(64), 32)
        put(UInt16(64), 52); put(UInt16(56), 54); put(UInt16(2), 56)
        // PT_LOAD 1: 16 bytes of code at paddr.
        put(UInt32(1), 64); put(UInt64(0x1000), 64 + 8); put(0xffff_ffff_8100_0000 as UInt64, 64 + 16)
        put(paddr, 64 + 24); put(UInt64(16), 64 + 32); put(UInt64(16), 64 + 40)
        // PT_LOAD 2: bss only, 8 KiB right after.
        put(UInt32(1), 120); put(UInt64(0x1000), 120 + 8); put(paddr + 0x1000, 120 + 24)
        put(UInt64(0), 120 + 32); put(UInt64(0x2000), 120 + 40)
        for i in 0..<16 { b[0x1000 + i] = UInt8(0xa0 + i) }
        return b
    }

    @Test func loadsSegmentsAtTheirPhysicalAddresses() throws {
        let m = try GuestMemory(ranges: [(0, 64 << 20)])
        try m.fill(0xee, at: 0x1001000, count: 0x2000)
        let k = try loadKernel(elf(), memory: m)
        #expect(k.entry == 0x1000000)
        #expect(try m.readBytes(at: 0x1000000, count: 16) == (0..<16).map { UInt8(0xa0 + $0) })
        #expect(try m.readBytes(at: 0x1001000, count: 0x2000).allSatisfy { $0 == 0 })   // bss zeroed
        #expect(k.highestAddress == 0x1003000)
    }

    @Test func refusesBadKernels() throws {
        let m = try GuestMemory(ranges: [(0, 32 << 20)])
        #expect(throws: SwvmError.self) { try loadKernel(elf(machine: 183), memory: m) }              // aarch64
        #expect(throws: SwvmError.self) { try loadKernel(elf(paddr: 0x1000), memory: m) }             // over the boot area
        #expect(throws: SwvmError.self) { try loadKernel(elf(paddr: 0x3000000), memory: m) }          // past guest RAM
        #expect(throws: SwvmError.self) { try loadKernel(elf(entry: 0x5000000), memory: m) }          // entry outside segments
        #expect(throws: SwvmError.self) { try loadKernel(Array(elf().prefix(200)), memory: m) }       // truncated
        #expect(throws: SwvmError.self) { try loadKernel([UInt8](repeating: 0x41, count: 8192), memory: m) }
    }

    @Test func initrdGoesToTheTopOfLowMemory() throws {
        let m = try GuestMemory(ranges: [(0, 64 << 20)])
        let r = try InitrdLoader.load(bytes: [1, 2, 3], into: m, above: 0x2000000)
        #expect(r.address == (64 << 20) - 4096)
        #expect(try m.readBytes(at: r.address, count: 3) == [1, 2, 3])
        #expect(throws: SwvmError.self) { try InitrdLoader.load(bytes: [UInt8](repeating: 0, count: 40 << 20), into: m, above: 0x2000000) }
    }

    @Test func guestMemoryRefusesOutOfRangeAccess() throws {
        let m = try GuestMemory(ranges: [(0, 1 << 20)])
        #expect(m.contains((1 << 20) - 4, count: 4))
        #expect(!m.contains((1 << 20) - 4, count: 5))
        #expect(!m.contains(UInt64.max - 2, count: 8))
        #expect(throws: SwvmError.self) { try m.read(UInt64.self, at: 1 << 20) }
    }
}

@Suite struct BzImageTests {
    /// A synthetic bzImage: a setup header, then the "protected-mode" part.
    func bzImage(version: UInt16 = 0x020f, xloadflags: UInt16 = 1) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 0x2000)
        func put16(_ v: UInt16, _ o: Int) { b[o] = UInt8(v & 0xff); b[o + 1] = UInt8(v >> 8) }
        b[0x1f1] = 3                                    // setup_sects: kernel at (3+1)*512
        b[0x1fe] = 0x55; b[0x1ff] = 0xaa
        b[0x201] = 0x66                                 // jump offset: header to 0x268
        b[0x202...0x205] = [0x48, 0x64, 0x72, 0x53]     // "HdrS"
        put16(version, 0x206)
        put16(xloadflags, 0x236)
        for i in 0x800..<0x2000 { b[i] = UInt8(i & 0xff) }
        return b
    }

    @Test func loadsTheProtectedModeKernelAndEntersAt0x200() throws {
        let m = try GuestMemory(ranges: [(0, 32 << 20)])
        let k = try loadKernel(bzImage(), memory: m)
        #expect(k.entry == 0x100000 + 0x200)
        #expect(try m.readBytes(at: 0x100000, count: 4) == [0x00, 0x01, 0x02, 0x03].map { UInt8($0) })
        #expect(k.setupHeader?.first == 3)
        #expect(ZeroPage(setupHeader: k.setupHeader).field16(0x206) == 0x020f)
    }

    @Test func refusesOldProtocolsAndNo64BitEntry() throws {
        let m = try GuestMemory(ranges: [(0, 32 << 20)])
        #expect(throws: SwvmError.self) { try loadKernel(bzImage(version: 0x0206), memory: m) }
        #expect(throws: SwvmError.self) { try loadKernel(bzImage(xloadflags: 0), memory: m) }
    }
}

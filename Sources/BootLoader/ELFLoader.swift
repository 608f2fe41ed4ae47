#if canImport(Glibc)
import Glibc
#endif
import SwvmBase
import GuestMemory

/// What a kernel loader leaves behind: where to start the boot vCPU, and
/// where the kernel's image ends (the initrd must go elsewhere).
public struct LoadedKernel {
    public let entry: GuestAddress
    public let lowestAddress: GuestAddress
    public let highestAddress: GuestAddress
    /// For a bzImage: the setup header, to copy into the zero page.
    public let setupHeader: [UInt8]?
}

/// Loads an uncompressed ELF64 vmlinux: each PT_LOAD segment goes to its
/// physical address (p_paddr), read straight from the file into guest
/// memory (no copy of the whole file is kept in the VMM).
public enum ELFLoader {
    static let ptLoad: UInt32 = 1

    public static func isELF(_ header: [UInt8]) -> Bool {
        header.count >= 4 && header[0] == 0x7f && header[1] == 0x45 && header[2] == 0x4c && header[3] == 0x46
    }

    public static func load(fd: Int32, path: String, fileSize: UInt64, into memory: GuestMemory) throws -> LoadedKernel {
        func bad(_ why: String) -> SwvmError { SwvmError(.invalidArgument, "kernel \(path): \(why)") }
        let eh = try preadExactly(fd, count: 64, offset: 0, path: path)
        guard isELF(eh) else { throw bad("not an ELF file") }
        guard eh[4] == 2 else { throw bad("not a 64-bit ELF file") }
        guard eh[5] == 1 else { throw bad("not a little-endian ELF file") }
        let machine = le16(eh, 18)
        guard machine == 62 else { throw bad("ELF machine \(machine) is not x86_64") }
        let entry = le64(eh, 24)
        let phoff = le64(eh, 32)
        let phentsize = UInt64(le16(eh, 54))
        let phnum = UInt64(le16(eh, 56))
        guard phentsize >= 56, phnum > 0, phnum <= 128 else { throw bad("bad program header table") }
        guard phoff < fileSize, phnum * phentsize <= fileSize - phoff else {
            throw bad("program header table lies outside the file")
        }
        let table = try preadExactly(fd, count: Int(phnum * phentsize), offset: phoff, path: path)
        var lowest = UInt64.max
        var highest: UInt64 = 0
        var loaded = 0
        for i in 0..<Int(phnum) {
            let ph = Array(table[(i * Int(phentsize))..<(i * Int(phentsize) + 56)])
            guard le32(ph, 0) == ptLoad else { continue }
            let offset = le64(ph, 8)
            let paddr = le64(ph, 24)
            let filesz = le64(ph, 32)
            let memsz = le64(ph, 40)
            guard filesz <= memsz else { throw bad("segment \(i): file size larger than memory size") }
            guard offset <= fileSize, filesz <= fileSize - offset else { throw bad("segment \(i) lies outside the file") }
            guard paddr >= X86Layout.himemStart else {
                throw bad("segment \(i) at 0x\(String(paddr, radix: 16)) overlaps the boot area below 1 MiB")
            }
            guard memory.contains(paddr, count: memsz) else {
                throw bad("segment \(i) (0x\(String(paddr, radix: 16)), \(memsz) bytes) does not fit in guest memory; give the VM more memory")
            }
            try memory.withMutableBytes(at: paddr, count: Int(filesz)) {
                try preadInto(fd, $0.baseAddress!, count: $0.count, offset: offset, path: path)
            }
            if memsz > filesz { try memory.fill(0, at: paddr + filesz, count: Int(memsz - filesz)) }
            lowest = min(lowest, paddr)
            highest = max(highest, paddr + memsz)
            loaded += 1
        }
        guard loaded > 0 else { throw bad("no loadable segments") }
        // vmlinux's e_entry is startup_64's physical address; accept a
        // virtual one too by mapping it into the loaded range.
        var phys = entry
        if phys >= 0xffff_ffff_8000_0000 { phys = phys - 0xffff_ffff_8000_0000 }
        guard phys >= lowest, phys < highest else { throw bad("entry point 0x\(String(entry, radix: 16)) is outside the loaded segments") }
        return LoadedKernel(entry: phys, lowestAddress: lowest, highestAddress: highest, setupHeader: nil)
    }
}

// MARK: file reads

func preadExactly(_ fd: Int32, count: Int, offset: UInt64, path: String) throws -> [UInt8] {
    var buf = [UInt8](repeating: 0, count: count)
    try buf.withUnsafeMutableBytes { try preadInto(fd, $0.baseAddress!, count: count, offset: offset, path: path) }
    return buf
}

func preadInto(_ fd: Int32, _ dest: UnsafeMutableRawPointer, count: Int, offset: UInt64, path: String) throws {
    var done = 0
    while done < count {
        let n = pread(fd, dest + done, count - done, off_t(offset) + off_t(done))
        if n < 0 {
            if errno == EINTR { continue }
            throw SwvmError.errno("read \(path)")
        }
        if n == 0 { throw SwvmError(.invalidArgument, "\(path): file ends early (wanted \(count) bytes at offset \(offset))") }
        done += n
    }
}

#if canImport(Glibc)
import Glibc
#endif
import SwvmBase
import GuestMemory

/// Loads a bzImage through the 64-bit boot protocol: the protected-mode
/// part goes to 1 MiB, and the vCPU enters at its 64-bit entry point
/// (load address + 0x200). The image's setup header is returned so the
/// zero page carries it, as the boot protocol requires.
public enum BzImageLoader {
    public static func isBzImage(_ header: [UInt8]) -> Bool {
        header.count >= 0x206 && header[0x1fe] == 0x55 && header[0x1ff] == 0xaa
            && header[0x202] == 0x48 && header[0x203] == 0x64 && header[0x204] == 0x72 && header[0x205] == 0x53
    }

    public static func load(fd: Int32, path: String, fileSize: UInt64, into memory: GuestMemory) throws -> LoadedKernel {
        func bad(_ why: String) -> SwvmError { SwvmError(.invalidArgument, "kernel \(path): \(why)") }
        guard fileSize > 0x1000 else { throw bad("too small for a bzImage") }
        let head = try preadExactly(fd, count: 0x1000, offset: 0, path: path)
        guard isBzImage(head) else { throw bad("not a bzImage (no boot signature and 'HdrS' header)") }
        let version = le16(head, 0x206)
        guard version >= 0x020c else {
            throw bad("boot protocol \(version >> 8).\(version & 0xff) predates the 64-bit entry point (2.12)")
        }
        let xloadflags = le16(head, 0x236)
        guard xloadflags & 1 != 0 else { throw bad("kernel has no 64-bit entry point (XLF_KERNEL_64 not set)") }
        var setupSects = Int(head[0x1f1])
        if setupSects == 0 { setupSects = 4 }
        let kernelOffset = UInt64((setupSects + 1) * 512)
        guard kernelOffset < fileSize else { throw bad("setup sectors run past the end of the file") }
        let kernelSize = fileSize - kernelOffset
        let load = X86Layout.bzImageLoadAddress
        // The decompressor needs init_size bytes from the load address.
        let initSize = UInt64(le32(head, 0x260))
        guard memory.contains(load, count: max(kernelSize, initSize)) else {
            throw bad("kernel needs \(max(kernelSize, initSize) >> 20) MiB above 1 MiB; give the VM more memory")
        }
        try memory.withMutableBytes(at: load, count: Int(kernelSize)) {
            try preadInto(fd, $0.baseAddress!, count: $0.count, offset: kernelOffset, path: path)
        }
        // The setup header runs from 0x1f1 to 0x202 + the jump's offset.
        let headerEnd = min(0x202 + Int(head[0x201]), 0x280)
        let setupHeader = Array(head[0x1f1..<headerEnd])
        return LoadedKernel(entry: load + 0x200, lowestAddress: load,
                            highestAddress: load + max(kernelSize, initSize), setupHeader: setupHeader)
    }
}

/// Loads a vmlinux (ELF) or bzImage, chosen by the file's content.
public enum KernelLoader {
    public static func load(path: String, into memory: GuestMemory) throws -> LoadedKernel {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { throw SwvmError(.notFound, "kernel \(path): no such file") }
            throw SwvmError.errno("open kernel \(path)")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw SwvmError.errno("stat \(path)") }
        let size = UInt64(st.st_size)
        let head = try preadExactly(fd, count: Int(min(size, 0x1000)), offset: 0, path: path)
        if ELFLoader.isELF(head) {
            return try ELFLoader.load(fd: fd, path: path, fileSize: size, into: memory)
        }
        if BzImageLoader.isBzImage(head) {
            return try BzImageLoader.load(fd: fd, path: path, fileSize: size, into: memory)
        }
        throw SwvmError(.invalidArgument, "kernel \(path): neither an ELF vmlinux nor a bzImage")
    }
}

/// Loads an initrd (a cpio archive, possibly compressed) at the top of low
/// memory, below `limit`, page-aligned, as boot loaders do.
public enum InitrdLoader {
    public static func load(path: String, into memory: GuestMemory, above kernelEnd: GuestAddress) throws -> (address: GuestAddress, size: UInt64) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { throw SwvmError(.notFound, "initrd \(path): no such file") }
            throw SwvmError.errno("open initrd \(path)")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw SwvmError.errno("stat \(path)") }
        let size = UInt64(st.st_size)
        let address = try place(size: size, memory: memory, above: kernelEnd, what: "initrd \(path)")
        try memory.withMutableBytes(at: address, count: Int(size)) {
            try preadInto(fd, $0.baseAddress!, count: $0.count, offset: 0, path: path)
        }
        return (address, size)
    }

    /// Loads an initrd held in memory.
    public static func load(bytes: [UInt8], into memory: GuestMemory, above kernelEnd: GuestAddress) throws -> (address: GuestAddress, size: UInt64) {
        let address = try place(size: UInt64(bytes.count), memory: memory, above: kernelEnd, what: "initrd")
        try memory.writeBytes(bytes, at: address)
        return (address, UInt64(bytes.count))
    }

    static func place(size: UInt64, memory: GuestMemory, above kernelEnd: GuestAddress, what: String) throws -> GuestAddress {
        let lowEnd = min(memory.regions.first?.guestEnd ?? 0, X86Layout.mmioGapStart)
        guard size > 0, size < lowEnd else { throw SwvmError(.invalidArgument, "\(what) is empty or larger than guest memory") }
        let address = (lowEnd - size) & ~UInt64(0xfff)
        guard address >= kernelEnd else {
            throw SwvmError(.invalidArgument, "\(what) (\(size >> 10) KiB) does not fit between the kernel and the end of guest memory; give the VM more memory")
        }
        return address
    }
}

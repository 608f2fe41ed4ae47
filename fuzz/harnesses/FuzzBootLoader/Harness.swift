#if canImport(Glibc)
import Glibc
#endif
import BootLoader
import GuestMemory
import SwvmBase

// The kernel file (an ELF vmlinux or a bzImage, by its content) loaded into
// a guest's memory, as `swvm boot --kernel FILE` loads it.

let memory = try! GuestMemory(ranges: [(0, 64 << 20)])
let path = "/tmp/swvm-fuzz-kernel-\(getpid())"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBootLoader(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    try! FS.writeFile(path, Array(UnsafeBufferPointer(start: data, count: size)))
    defer { unlink(path) }
    _ = try? KernelLoader.load(path: path, into: memory)
    return 0
}

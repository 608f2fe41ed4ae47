#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import SwvmBase

extension NinePServer {
    /// POSIX locks are the guest kernel's business: its processes are the
    /// only ones that see them (as with QEMU's 9p server).
    func lock(_ r: inout NinePReader) throws {
        _ = try openFile(&r)
        _ = try r.u8("type"); _ = try r.u32("flags"); _ = try r.u64("start"); _ = try r.u64("length")
        _ = try r.u32("proc_id"); _ = try r.string("client_id")
        writer.u8(0)   // P9_LOCK_SUCCESS
    }

    func getlock(_ r: inout NinePReader) throws {
        _ = try openFile(&r)
        _ = try r.u8("type")
        let start = try r.u64("start"), length = try r.u64("length")
        let pid = try r.u32("proc_id")
        let client = try r.string("client_id")
        writer.u8(2)   // P9_LOCK_TYPE_UNLCK
        writer.u64(start)
        writer.u64(length)
        writer.u32(pid)
        writer.string(client)
    }
}

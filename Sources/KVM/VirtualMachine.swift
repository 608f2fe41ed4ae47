#if canImport(Glibc)
import Glibc
#endif
import CKVM
import SwvmBase

/// A KVM VM file descriptor: memory slots, the in-kernel irqchip and PIT,
/// interrupt lines, irqfds and ioeventfds, and vCPU creation.
public final class VirtualMachine: Sendable {
    public let fd: FileDescriptor
    public let system: KVMSystem

    init(fd: FileDescriptor, system: KVMSystem) {
        self.fd = fd
        self.system = system
    }

    public func setUserMemoryRegion(slot: UInt32, guestAddress: UInt64, size: UInt64, host: UnsafeMutableRawPointer) throws {
        try sys("KVM_SET_USER_MEMORY_REGION slot \(slot)") {
            ckvm_set_user_memory_region(fd.raw, slot, guestAddress, size, UInt64(UInt(bitPattern: host)))
        }
    }

    public func setTSSAddress(_ addr: UInt64) throws { try sys("KVM_SET_TSS_ADDR on the VM") { ckvm_set_tss_addr(fd.raw, addr) } }
    public func setIdentityMapAddress(_ addr: UInt64) throws {
        try sys("KVM_SET_IDENTITY_MAP_ADDR on the VM") { ckvm_set_identity_map_addr(fd.raw, addr) }
    }
    public func createIRQChip() throws { try sys("KVM_CREATE_IRQCHIP on the VM") { ckvm_create_irqchip(fd.raw) } }

    /// The in-kernel PIT; "speaker dummy" makes port 0x61 reads work
    /// without a speaker device.
    public func createPIT2() throws {
        try sys("KVM_CREATE_PIT2 on the VM") { ckvm_create_pit2(fd.raw, UInt32(KVM_PIT_SPEAKER_DUMMY)) }
    }

    public func registerIRQFD(eventfd: Int32, gsi: UInt32) throws {
        try sys("KVM_IRQFD gsi \(gsi)") { ckvm_irqfd(fd.raw, eventfd, gsi, 0) }
    }

    /// Makes a guest write of `length` bytes to `address` (an MMIO
    /// register) signal `eventfd` without a VM exit to userspace.
    public func registerIOEventFD(eventfd: Int32, address: UInt64, length: UInt32, datamatch: UInt64? = nil) throws {
        try sys("KVM_IOEVENTFD 0x\(String(address, radix: 16))") {
            ckvm_ioeventfd(fd.raw, eventfd, address, length, datamatch == nil ? 0 : 1, datamatch ?? 0, 0)
        }
    }

    public func createVCPU(id: Int) throws -> VCPU {
        let raw = try sys("KVM_CREATE_VCPU \(id)") { ckvm_create_vcpu(fd.raw, UInt(id)) }
        return try VCPU(fd: FileDescriptor(raw), id: id, mmapSize: try system.vcpuMmapSize)
    }
}

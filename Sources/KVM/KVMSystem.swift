#if canImport(Glibc)
import Glibc
#endif
import CKVM
import SwvmBase

/// /dev/kvm: the API version check, capabilities and system-wide queries.
/// The Swift face of CKVM, in the spirit of rust-vmm's kvm-ioctls.
public final class KVMSystem: Sendable {
    public let fd: FileDescriptor

    /// Capabilities swvm's VMM cannot do without.
    public static let requiredCapabilities: [(Int, String)] = [
        (Int(KVM_CAP_USER_MEMORY), "KVM_CAP_USER_MEMORY"),
        (Int(KVM_CAP_IRQCHIP), "KVM_CAP_IRQCHIP"),
        (Int(KVM_CAP_PIT2), "KVM_CAP_PIT2"),
        (Int(KVM_CAP_SET_TSS_ADDR), "KVM_CAP_SET_TSS_ADDR"),
        (Int(KVM_CAP_EXT_CPUID), "KVM_CAP_EXT_CPUID"),
        (Int(KVM_CAP_IRQFD), "KVM_CAP_IRQFD"),
        (Int(KVM_CAP_IOEVENTFD), "KVM_CAP_IOEVENTFD"),
        (Int(KVM_CAP_IMMEDIATE_EXIT), "KVM_CAP_IMMEDIATE_EXIT"),
    ]

    public init(path: String = "/dev/kvm") throws {
        let raw = open(path, O_RDWR | O_CLOEXEC)
        guard raw >= 0 else {
            let e = errno
            let alt = "(--isolation=container still works without it)"
            switch e {
            case ENOENT:
                throw SwvmError(.kvmUnavailable, "\(path) does not exist: this host has no KVM; load kvm_intel or kvm_amd, or use a machine with (nested) virtualization \(alt)")
            case EACCES, EPERM:
                throw SwvmError(.kvmUnavailable, "\(path): permission denied; run swvm as root or add your user to the 'kvm' group \(alt)")
            default:
                throw SwvmError(.kvmUnavailable, "cannot open \(path): \(errnoText(e)) \(alt)")
            }
        }
        fd = FileDescriptor(raw)
        let version = ckvm_get_api_version(raw)
        guard version == KVM_API_VERSION else {
            throw SwvmError(.kvmUnavailable, "\(path) speaks KVM API \(version), swvm needs \(KVM_API_VERSION)")
        }
        let missing = KVMSystem.requiredCapabilities.filter { ckvm_check_extension(raw, $0.0) <= 0 }.map(\.1)
        guard missing.isEmpty else {
            throw SwvmError(.kvmUnavailable, "\(path) lacks \(missing.joined(separator: ", ")), which swvm's VMM needs")
        }
    }

    public func checkExtension(_ cap: Int32) -> Int32 { ckvm_check_extension(fd.raw, Int(cap)) }

    public var vcpuMmapSize: Int {
        get throws { Int(try sys("KVM_GET_VCPU_MMAP_SIZE on /dev/kvm") { ckvm_get_vcpu_mmap_size(fd.raw) }) }
    }

    public var maxVCPUs: Int {
        let n = checkExtension(Int32(KVM_CAP_MAX_VCPUS))
        return n > 0 ? Int(n) : 4
    }

    public func supportedCPUID() throws -> [kvm_cpuid_entry2] {
        var count: UInt32 = 256
        var entries = [kvm_cpuid_entry2](repeating: kvm_cpuid_entry2(), count: Int(count))
        try sys("KVM_GET_SUPPORTED_CPUID on /dev/kvm") { ckvm_get_supported_cpuid(fd.raw, &entries, &count) }
        return Array(entries[0..<Int(count)])
    }

    public func createVM() throws -> VirtualMachine {
        let vm = try sys("KVM_CREATE_VM on /dev/kvm") { ckvm_create_vm(fd.raw) }
        return VirtualMachine(fd: FileDescriptor(vm), system: self)
    }

    /// True when /dev/kvm is served by kvm_pvm (Pagetable-based Virtual
    /// Machine): nested KVM without VT-x/AMD-V, where guest kernel code is
    /// emulated (see ../shared/PLATFORM.md).
    public static func isPVMHost() -> Bool {
        if FS.exists("/sys/module/kvm_pvm") { return true }
        return false
    }
}

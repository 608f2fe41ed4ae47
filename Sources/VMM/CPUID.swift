import CKVM

/// Turns the host's supported CPUID into what one vCPU of this VM should
/// see: its APIC id and the VM's topology, the hypervisor bit, no PMU, and
/// (with the safe profile) no KVM paravirt leaves.
public enum CPUIDNormalizer {
    public struct Options {
        public var vcpuID: Int
        public var vcpuCount: Int
        /// Drop the 0x4000_00xx hypervisor leaves (KVM paravirt features).
        public var hideHypervisorLeaves: Bool

        public init(vcpuID: Int, vcpuCount: Int, hideHypervisorLeaves: Bool) {
            self.vcpuID = vcpuID
            self.vcpuCount = vcpuCount
            self.hideHypervisorLeaves = hideHypervisorLeaves
        }
    }

    static let hypervisorBit: UInt32 = 1 << 31      // leaf 1 ECX
    static let htBit: UInt32 = 1 << 28               // leaf 1 EDX

    public static func normalize(_ supported: [kvm_cpuid_entry2], _ o: Options) -> [kvm_cpuid_entry2] {
        var out: [kvm_cpuid_entry2] = []
        let count = UInt32(max(1, o.vcpuCount))
        let apicID = UInt32(o.vcpuID)
        for var e in supported {
            switch e.function {
            case 0x1:
                // EBX: APIC id [31:24], logical processors [23:16], CLFLUSH size [15:8] (8 x 8 bytes).
                e.ebx = (apicID << 24) | (count << 16) | (8 << 8) | (e.ebx & 0xff)
                e.ecx |= hypervisorBit
                if count > 1 { e.edx |= htBit } else { e.edx &= ~htBit }
            case 0x4:
                // Deterministic cache parameters: cores per package - 1 in EAX[31:26],
                // threads sharing the cache - 1 in EAX[25:14] (one thread per core here).
                e.eax = (e.eax & 0x3fff) | ((count - 1) << 26)
            case 0x6:
                e.eax = 0; e.ebx = 0; e.ecx = 0; e.edx = 0   // no thermal/power management
            case 0xa:
                e.eax = 0; e.ebx = 0; e.ecx = 0; e.edx = 0   // no architectural PMU
            case 0xb, 0x1f:
                // Extended topology: one thread per core, `count` cores.
                switch e.index {
                case 0:
                    e.eax = 0; e.ebx = 1; e.ecx = (1 << 8) | 0
                case 1:
                    e.eax = UInt32(bitWidth(count)); e.ebx = count; e.ecx = (2 << 8) | 1
                default:
                    e.eax = 0; e.ebx = 0; e.ecx = e.index
                }
                e.edx = apicID
            case 0x8000_0008:
                // AMD: number of cores - 1 in ECX[7:0].
                e.ecx = (e.ecx & ~UInt32(0xff)) | (count - 1)
            case 0x8000_001e:
                // AMD: extended APIC id, one thread per core.
                e.eax = apicID
                e.ebx = (e.ebx & ~UInt32(0xffff)) | (apicID & 0xff)
            case 0x4000_0000...0x4000_00ff:
                if o.hideHypervisorLeaves { continue }
            default:
                break
            }
            out.append(e)
        }
        return out
    }

    /// Bits needed to number `n` items (the APIC-id shift for a level).
    static func bitWidth(_ n: UInt32) -> UInt32 {
        n <= 1 ? 0 : UInt32(32 - (n - 1).leadingZeroBitCount)
    }
}

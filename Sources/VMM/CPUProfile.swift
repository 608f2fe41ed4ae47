import SwvmBase

/// How the guest's CPU is presented.
///
/// `host` passes the host's CPU through as KVM supports it. `safe` is for
/// PVM hosts (KVM without VT-x/AMD-V, ../shared/PLATFORM.md), where a
/// guest kernel's own instructions are emulated one by one and some of them
/// cannot be: it turns off, on the kernel command line, the CPU features
/// the kernel would otherwise use through instructions the emulator lacks
/// (CPUID cannot hide them there: leaves below 0x4000_0000 show the host's
/// values), hides the KVM paravirt leaves, and lets the VMM step over or
/// inject the few instructions that still fail (see EmulationWorkarounds).
public enum CPUProfile: String, CaseIterable, Sendable {
    case host
    case safe

    /// The profile swvm picks on its own: safe on a PVM host, host elsewhere.
    public static func automatic(isPVMHost: Bool) -> CPUProfile { isPVMHost ? .safe : .host }

    /// CPU features the safe profile clears, as X86_FEATURE_* bit numbers
    /// (word * 32 + bit): Linux 6.1 reads at most 127 characters of
    /// clearcpuid=, too few for names. These are the features the kernel
    /// itself would use at CPL 0 (alternatives, CR4 bits, context switch):
    /// user space runs natively and is unaffected. nopcid, noinvpcid and
    /// noxsave (which also drops AVX and its kin) cover the rest of what
    /// PLATFORM.md found necessary; SSE4, AES, SHA and the like matter only
    /// to crypto code this kernel does not have.
    public static let safeClearedFeatures: [(name: String, bit: Int)] = [
        ("cx16", 141), ("smap", 308), ("smep", 295), ("fsgsbase", 288), ("pku", 515), ("umip", 514),
        ("rdpid", 534), ("rdtscp", 59), ("popcnt", 151), ("rdrand", 158), ("rdseed", 306),
        // Without ERMS/FSRM the kernel copies with `rep movsq` instead of
        // `rep movsb`: an eighth of the emulated iterations.
        ("erms", 297), ("fsrm", 580),
        ("clflushopt", 311), ("clwb", 312), ("3dnowprefetch", 200), ("clzero", 416), ("topoext", 214),
        ("movbe", 150), ("bmi1", 291), ("bmi2", 296),
    ]

    /// Kernel command-line parameters this profile needs.
    public var kernelParameters: [String] {
        switch self {
        case .host: return []
        case .safe:
            // pvm_emulated: kernel/patches/0002 skips the instructions the
            // emulator lacks (swvm's own kernel; for others the VMM's
            // EmulationWorkarounds below still step over or inject them).
            return ["pvm_emulated", "nopv", "noxsave", "nopcid", "noinvpcid",
                    "clearcpuid=" + CPUProfile.safeClearedFeatures.map { String($0.bit) }.joined(separator: ","),
                    // Boot-time work that costs seconds when every kernel
                    // instruction is emulated: write-protecting the kernel
                    // image page by page, and zeroing 2 MiB-aligned per-CPU
                    // chunks. The guest kernel serves one workload behind
                    // the VM boundary, so its own W^X is traded for boot time
                    // on PVM hosts only.
                    "rodata=off", "percpu_alloc=page",
                    // /sys/module/*/parameters for every built-in parameter:
                    // thousands of sysfs nodes, 0.6 s of boot here.
                    "initcall_blacklist=param_sysfs_init"]
        }
    }

    public var hidesHypervisorLeaves: Bool { self == .safe }
    public var handlesEmulationFailures: Bool { self == .safe }
}

/// What to do about an instruction the host's in-kernel emulator could not
/// run at guest CPL 0 (KVM_EXIT_INTERNAL_ERROR, emulation failure).
public enum EmulationWorkaround: Equatable, Sendable {
    /// Skip the instruction: harmless to the guest (x87 housekeeping).
    case skip(length: Int)
    /// Deliver the exception the instruction raises (int3 -> #BP), with
    /// RIP after the instruction, as the CPU would.
    case inject(vector: UInt8, length: Int)
}

public enum EmulationWorkarounds {
    /// Decides from the instruction bytes; nil when swvm does not know the
    /// instruction (the VM then stops with an error naming it).
    ///
    /// Known sites (PLATFORM.md): the boot-time int3 self-test; `fwait`
    /// in fpu__drop(); `fnclex; emms; fildl` of the FXSAVE-leak workaround
    /// on AMD hosts.
    public static func decide(_ bytes: [UInt8]) -> EmulationWorkaround? {
        guard let first = bytes.first else { return nil }
        switch first {
        case 0xcc: return .inject(vector: 3, length: 1)                  // int3
        case 0x9b: return .skip(length: 1)                               // fwait
        case 0x0f where bytes.count >= 2 && bytes[1] == 0x77:
            return .skip(length: 2)                                      // emms
        case 0xdb where bytes.count >= 2 && bytes[1] == 0xe2:
            return .skip(length: 2)                                      // fnclex
        case 0xd8...0xdf:
            // An x87 load with a memory operand (fild/fld): only loads,
            // whose effect on the FPU stack the kernel never reads back.
            guard bytes.count >= 2 else { return nil }
            let reg = (bytes[1] >> 3) & 7
            let isLoad = (first == 0xdb || first == 0xdf || first == 0xd9 || first == 0xdd) && reg == 0
            guard isLoad, let n = modRMLength(Array(bytes.dropFirst())) else { return nil }
            return .skip(length: 1 + n)
        default:
            return nil
        }
    }

    /// Length of a ModRM byte plus its SIB and displacement (64-bit mode,
    /// no address-size prefix), or nil if the bytes are too short.
    static func modRMLength(_ b: [UInt8]) -> Int? {
        guard let modrm = b.first else { return nil }
        let mod = modrm >> 6, rm = modrm & 7
        var len = 1
        if mod != 3 && rm == 4 {
            guard b.count >= 2 else { return nil }
            len += 1
            let base = b[1] & 7
            if mod == 0 && base == 5 { len += 4 }
        }
        switch mod {
        case 0: if rm == 5 { len += 4 }   // RIP-relative disp32
        case 1: len += 1
        case 2: len += 4
        default: break
        }
        return b.count >= len ? len : nil
    }
}

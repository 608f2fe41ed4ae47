#if canImport(Glibc)
import Glibc
#endif
import CKVM
import SwvmBase

/// Why KVM_RUN returned.
public enum VCPUExit {
    /// Port I/O: `data` holds `size * count` bytes (in: fill it; out: read it).
    case io(isWrite: Bool, port: UInt16, size: Int, count: Int, data: UnsafeMutableRawPointer)
    /// MMIO outside any memory slot: `data` holds `length` bytes.
    case mmio(isWrite: Bool, address: UInt64, length: Int, data: UnsafeMutablePointer<UInt8>)
    case halt
    /// Triple fault or another reason the CPU shut down.
    case shutdown
    /// KVM could not run the guest; for emulation failures `instruction`
    /// holds the bytes that failed (when the host provides them).
    case internalError(suberror: UInt32, data: [UInt64], instruction: [UInt8])
    case failEntry(reason: UInt64)
    case systemEvent(type: UInt32)
    /// KVM_RUN was interrupted by a signal (EINTR) or immediate_exit.
    case interrupted
    case other(reason: UInt32)

    public var name: String {
        switch self {
        case .io: return "KVM_EXIT_IO"
        case .mmio: return "KVM_EXIT_MMIO"
        case .halt: return "KVM_EXIT_HLT"
        case .shutdown: return "KVM_EXIT_SHUTDOWN"
        case .internalError: return "KVM_EXIT_INTERNAL_ERROR"
        case .failEntry: return "KVM_EXIT_FAIL_ENTRY"
        case .systemEvent: return "KVM_EXIT_SYSTEM_EVENT"
        case .interrupted: return "KVM_EXIT_INTR"
        case .other(let r): return "exit reason \(r)"
        }
    }
}

/// A vCPU file descriptor and its mmap'ed kvm_run structure.
///
/// @unchecked Sendable: its thread runs it; another thread only sets
/// kvm_run's immediate_exit (`requestImmediateExit`, the cross-thread kick
/// KVM documents), or reads and writes registers while the vCPU is parked
/// outside KVM_RUN (a snapshot). Its stored properties never change.
public final class VCPU: @unchecked Sendable {
    public let fd: FileDescriptor
    public let id: Int
    private let runData: UnsafeMutablePointer<kvm_run>
    private let runSize: Int

    init(fd: FileDescriptor, id: Int, mmapSize: Int) throws {
        self.fd = fd
        self.id = id
        guard let p = mmap(nil, mmapSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd.raw, 0), p != MAP_FAILED else {
            throw SwvmError.errno("mmap kvm_run of vCPU \(id)")
        }
        runData = p.assumingMemoryBound(to: kvm_run.self)
        runSize = mmapSize
    }

    deinit { munmap(runData, runSize) }

    /// Runs the vCPU until the next exit to userspace.
    public func run() throws -> VCPUExit {
        let r = ckvm_run(fd.raw)
        if r < 0 {
            let e = errno
            if e == EINTR || e == EAGAIN {
                ckvm_run_set_immediate_exit(runData, 0)
                return .interrupted
            }
            throw SwvmError(.vmFailed, "KVM_RUN on vCPU \(id): \(errnoText(e))")
        }
        let reason = ckvm_run_exit_reason(runData)
        switch Int32(reason) {
        case KVM_EXIT_IO:
            var dir: UInt8 = 0, size: UInt8 = 0, port: UInt16 = 0, count: UInt32 = 0, offset: UInt64 = 0
            ckvm_run_io(runData, &dir, &size, &port, &count, &offset)
            let data = UnsafeMutableRawPointer(runData) + Int(offset)
            return .io(isWrite: dir == UInt8(KVM_EXIT_IO_OUT), port: port, size: Int(size), count: Int(count), data: data)
        case KVM_EXIT_MMIO:
            var addr: UInt64 = 0, data: UnsafeMutablePointer<UInt8>? = nil, len: UInt32 = 0, isWrite: UInt8 = 0
            ckvm_run_mmio(runData, &addr, &data, &len, &isWrite)
            return .mmio(isWrite: isWrite != 0, address: addr, length: Int(len), data: data!)
        case KVM_EXIT_HLT: return .halt
        case KVM_EXIT_SHUTDOWN: return .shutdown
        case KVM_EXIT_INTERNAL_ERROR:
            var data = [UInt64](repeating: 0, count: 16)
            var n: UInt32 = 0
            let sub = ckvm_run_internal(runData, &data, 16, &n)
            var insn = [UInt8](repeating: 0, count: 15)
            let len = ckvm_run_emulation_insn(runData, &insn, 15)
            return .internalError(suberror: sub, data: Array(data[0..<Int(min(n, 16))]), instruction: Array(insn[0..<Int(len)]))
        case KVM_EXIT_FAIL_ENTRY: return .failEntry(reason: ckvm_run_fail_entry_reason(runData))
        case KVM_EXIT_SYSTEM_EVENT: return .systemEvent(type: ckvm_run_system_event_type(runData))
        case KVM_EXIT_INTR: return .interrupted
        default: return .other(reason: reason)
        }
    }

    /// Makes the next (or current, after a signal) KVM_RUN return at once.
    public func requestImmediateExit() { ckvm_run_set_immediate_exit(runData, 1) }

    public func getRegisters() throws -> kvm_regs {
        var r = kvm_regs()
        try sys("KVM_GET_REGS of vCPU \(id)") { ckvm_get_regs(fd.raw, &r) }
        return r
    }

    public func setRegisters(_ r: kvm_regs) throws {
        var r = r
        try sys("KVM_SET_REGS of vCPU \(id)") { ckvm_set_regs(fd.raw, &r) }
    }

    public func getSpecialRegisters() throws -> kvm_sregs {
        var s = kvm_sregs()
        try sys("KVM_GET_SREGS of vCPU \(id)") { ckvm_get_sregs(fd.raw, &s) }
        return s
    }

    public func setSpecialRegisters(_ s: kvm_sregs) throws {
        var s = s
        try sys("KVM_SET_SREGS of vCPU \(id)") { ckvm_set_sregs(fd.raw, &s) }
    }

    public func setFPU(_ f: kvm_fpu) throws {
        var f = f
        try sys("KVM_SET_FPU of vCPU \(id)") { ckvm_set_fpu(fd.raw, &f) }
    }

    public func setCPUID(_ entries: [kvm_cpuid_entry2]) throws {
        try sys("KVM_SET_CPUID2 of vCPU \(id)") { ckvm_set_cpuid2(fd.raw, entries, UInt32(entries.count)) }
    }

    public func setMSRs(_ msrs: [(UInt32, UInt64)]) throws {
        var entries = msrs.map { m -> kvm_msr_entry in
            var e = kvm_msr_entry()
            e.index = m.0
            e.data = m.1
            return e
        }
        let n = try sys("KVM_SET_MSRS of vCPU \(id)") { ckvm_set_msrs(fd.raw, &entries, UInt32(entries.count)) }
        guard Int(n) == msrs.count else {
            let failed = msrs[Int(n)].0
            throw SwvmError(.vmFailed, "KVM_SET_MSRS: MSR 0x\(String(failed, radix: 16)) was refused")
        }
    }

    public func getLAPIC() throws -> kvm_lapic_state {
        var l = kvm_lapic_state()
        try sys("KVM_GET_LAPIC of vCPU \(id)") { ckvm_get_lapic(fd.raw, &l) }
        return l
    }

    public func setLAPIC(_ l: kvm_lapic_state) throws {
        var l = l
        try sys("KVM_SET_LAPIC of vCPU \(id)") { ckvm_set_lapic(fd.raw, &l) }
    }

    public func getEvents() throws -> kvm_vcpu_events {
        var e = kvm_vcpu_events()
        try sys("KVM_GET_VCPU_EVENTS of vCPU \(id)") { ckvm_get_vcpu_events(fd.raw, &e) }
        return e
    }

    public func setEvents(_ e: kvm_vcpu_events) throws {
        var e = e
        try sys("KVM_SET_VCPU_EVENTS of vCPU \(id)") { ckvm_set_vcpu_events(fd.raw, &e) }
    }

    public func mpState() throws -> UInt32 {
        var s: UInt32 = 0
        try sys("KVM_GET_MP_STATE of vCPU \(id)") { ckvm_get_mp_state(fd.raw, &s) }
        return s
    }

    /// The guest's TSC frequency in kHz, if the host knows it.
    public var tscKHz: UInt32? {
        let k = ckvm_get_tsc_khz(fd.raw)
        return k > 0 ? UInt32(k) : nil
    }

    /// Guest-virtual to guest-physical through the vCPU's current page tables.
    public func translate(_ gva: UInt64) -> UInt64? {
        var gpa: UInt64 = 0
        var valid: Int32 = 0
        guard ckvm_translate(fd.raw, gva, &gpa, &valid) == 0, valid != 0 else { return nil }
        return gpa
    }
}

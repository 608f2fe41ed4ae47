#if canImport(Glibc)
import Glibc
#endif
import CKVM
import KVM
import GuestMemory
import BootLoader
import SwvmBase

extension Machine {
    func handleInternalError(_ vcpu: VCPU, suberror: UInt32, data: [UInt64], instruction: [UInt8]) throws {
        var regs = try vcpu.getRegisters()
        var bytes = instruction
        if bytes.isEmpty { bytes = (try? readGuestVirtual(vcpu, regs.rip, count: 15)) ?? [] }
        let hexBytes = bytes.map { String($0, radix: 16).leftPad(2) }.joined(separator: " ")
        let where_ = "at RIP 0x\(String(regs.rip, radix: 16))"
        guard suberror == UInt32(KVM_INTERNAL_ERROR_EMULATION) else {
            throw SwvmError(.vmFailed, "vCPU \(vcpu.id): KVM_EXIT_INTERNAL_ERROR suberror \(suberror) \(where_), data [\(data.map { "0x" + String($0, radix: 16) }.joined(separator: ", "))]")
        }
        guard config.cpuProfile.handlesEmulationFailures, let fix = EmulationWorkarounds.decide(bytes) else {
            let hint = config.cpuProfile == .host && isPVMHost ? " (this is a PVM host: try --cpu-profile=safe)" : ""
            throw SwvmError(.vmFailed, "vCPU \(vcpu.id): the host could not emulate the guest instruction \(where_) [\(hexBytes)]\(hint)")
        }
        switch fix {
        case .skip(let length):
            regs.rip += UInt64(length)
            try vcpu.setRegisters(regs)
        case .inject(let vector, let length):
            regs.rip += UInt64(length)
            try vcpu.setRegisters(regs)
            var ev = try vcpu.getEvents()
            ev.exception.injected = 1
            ev.exception.nr = vector
            ev.exception.has_error_code = 0
            ev.exception.error_code = 0
            ev.flags = 0
            try vcpu.setEvents(ev)
        }
        let key = bytes.prefix(fixLength(fix)).map { String($0, radix: 16).leftPad(2) }.joined(separator: " ")
        state.with { $0.emulationFixups[key, default: 0] += 1 }
    }

    func fixLength(_ f: EmulationWorkaround) -> Int {
        switch f { case .skip(let l), .inject(_, let l): return l }
    }

    /// Reads guest-virtual memory through the vCPU's page tables.
    func readGuestVirtual(_ vcpu: VCPU, _ gva: UInt64, count: Int) throws -> [UInt8] {
        var out: [UInt8] = []
        var addr = gva
        while out.count < count {
            let gpa: UInt64
            if let t = vcpu.translate(addr) {
                gpa = t
            } else {
                let sregs = try vcpu.getSpecialRegisters()
                guard let t = PageWalker.translate(addr, cr3: sregs.cr3, memory: memory) else { break }
                gpa = t
            }
            let inPage = Int(min(UInt64(count - out.count), 0x1000 - (addr & 0xfff)))
            guard let bytes = try? memory.readBytes(at: gpa, count: inPage) else { break }
            out += bytes
            addr += UInt64(inPage)
        }
        return out
    }
}

extension String {
    func leftPad(_ width: Int, with c: Character = "0") -> String {
        count >= width ? self : String(repeating: c, count: width - count) + self
    }
}

import Testing
import CKVM
@testable import VMM
@testable import Devices
import NativeThreads

@Suite struct CPUIDTests {
    func entry(_ f: UInt32, _ i: UInt32 = 0, eax: UInt32 = 0, ebx: UInt32 = 0, ecx: UInt32 = 0, edx: UInt32 = 0) -> kvm_cpuid_entry2 {
        var e = kvm_cpuid_entry2()
        e.function = f; e.index = i; e.eax = eax; e.ebx = ebx; e.ecx = ecx; e.edx = edx
        return e
    }

    @Test func setsTopologyAndHidesWhatItMust() {
        let host = [entry(1, ebx: 0xff, ecx: 0), entry(0xa, eax: 0x0704_0102), entry(0xb, 0), entry(0xb, 1),
                    entry(0x4000_0000, eax: 0x4000_0001, ebx: 0x4b4d_564b), entry(0x4000_0001, eax: 0xffff)]
        let out = CPUIDNormalizer.normalize(host, .init(vcpuID: 1, vcpuCount: 2, hideHypervisorLeaves: true))
        let leaf1 = out.first { $0.function == 1 }!
        #expect(leaf1.ebx >> 24 == 1)                 // APIC id
        #expect((leaf1.ebx >> 16) & 0xff == 2)        // logical processors
        #expect(leaf1.ecx & (1 << 31) != 0)           // hypervisor present
        #expect(leaf1.edx & (1 << 28) != 0)           // HTT
        #expect(out.first { $0.function == 0xa }!.eax == 0)
        #expect(out.filter { $0.function == 0xb }.allSatisfy { $0.edx == 1 })
        #expect(!out.contains { $0.function >= 0x4000_0000 })
        let kept = CPUIDNormalizer.normalize(host, .init(vcpuID: 0, vcpuCount: 1, hideHypervisorLeaves: false))
        #expect(kept.contains { $0.function == 0x4000_0000 })
    }
}

@Suite struct EmulationWorkaroundTests {
    @Test(arguments: [
        ([0xcc] as [UInt8], EmulationWorkaround.inject(vector: 3, length: 1)),
        ([0x9b], .skip(length: 1)),
        ([0x0f, 0x77], .skip(length: 2)),
        ([0xdb, 0xe2], .skip(length: 2)),
        ([0xdb, 0x05, 1, 2, 3, 4], .skip(length: 6)),          // fildl disp32(%rip)
        ([0xdb, 0x47, 0x10], .skip(length: 3)),                 // fildl 0x10(%rdi)
        ([0xdf, 0x04, 0x24], .skip(length: 3)),                 // fild (%rsp): SIB
    ])
    func knownSitesAreHandled(_ bytes: [UInt8], _ expected: EmulationWorkaround) {
        #expect(EmulationWorkarounds.decide(bytes) == expected)
    }

    @Test(arguments: [[0x0f, 0xc7, 0x0e] as [UInt8], [0x0f, 0x01, 0xca], [0xdb, 0x3f], [], [0xdb]])
    func othersAreNot(_ bytes: [UInt8]) {
        #expect(EmulationWorkarounds.decide(bytes) == nil)
    }

    @Test func safeProfileClearsWithinTheKernelsLimit() {
        let params = CPUProfile.safe.kernelParameters
        let clear = params.first { $0.hasPrefix("clearcpuid=") }!
        #expect(clear.count - "clearcpuid=".count <= 127)
        #expect(CPUProfile.host.kernelParameters.isEmpty)
        #expect(CPUProfile.automatic(isPVMHost: true) == .safe)
        #expect(CPUProfile.automatic(isPVMHost: false) == .host)
    }
}

@Suite struct LegacyDeviceTests {
    @Test func serialTransmitsAndInterrupts() {
        let out = Locked<[UInt8]>([]), irqs = Locked(0)
        let s = Serial8250(output: { b in out.with { $0.append(b) } }, raiseInterrupt: { irqs.with { $0 += 1 } })
        func w(_ off: UInt64, _ v: UInt8) { [v].withUnsafeBytes { s.write(offset: off, data: $0) } }
        func r(_ off: UInt64) -> UInt8 { var b: [UInt8] = [0]; b.withUnsafeMutableBytes { s.read(offset: off, data: $0) }; return b[0] }
        #expect(r(5) & 0x60 == 0x60)        // THR empty
        w(0, 0x41)
        #expect(out.current == [0x41] && irqs.current == 0)
        w(1, 0x02)                          // enable THRE interrupt
        #expect(irqs.current == 1)
        #expect(r(2) & 0x0f == 0x02)        // IIR: THRE
        #expect(r(2) & 0x0f == 0x01)        // acknowledged
        w(4, 0x10 | 0x0a)                   // loopback, RTS, OUT2
        #expect(r(6) & 0xf0 == 0x90)
        s.enqueueInput([0x7a])
        #expect(r(5) & 1 == 1)
        #expect(r(0) == 0x7a)
    }

    @Test func i8042ResetLine() {
        let resets = Locked(0)
        let k = I8042(onReset: { resets.with { $0 += 1 } })
        [UInt8(0xfe)].withUnsafeBytes { k.write(offset: 4, data: $0) }
        [UInt8(0xaa)].withUnsafeBytes { k.write(offset: 4, data: $0) }
        #expect(resets.current == 1)
    }

    @Test func panicLinesAreRecognised() {
        let p = PanicScanner()
        for b in Array("[ 1.0] Kernel panic - not syncing: Attempted to kill init!\n".utf8) { _ = p.feed(b) }
        #expect(p.message == "Attempted to kill init!")
    }
}

import KVM
import SwvmBase

@Suite struct KVMAccessTests {
    @Test func missingDeviceNamesTheFixAndTheContainerPath() {
        do {
            _ = try KVMSystem(path: "/nonexistent/kvm")
            Issue.record("expected an error")
        } catch let e as SwvmError {
            #expect(e.code == .kvmUnavailable)
            #expect(e.message.contains("does not exist"))
            #expect(e.message.contains("--isolation=container still works"))
        } catch {
            Issue.record("\(error)")
        }
    }

    @Test(.enabled(if: FS.exists("/dev/kvm"))) func realDeviceHasWhatTheVMMNeeds() throws {
        let kvm = try KVMSystem()
        #expect(try kvm.vcpuMmapSize > 0)
        #expect(try kvm.supportedCPUID().contains { $0.function == 1 })
        #expect(kvm.maxVCPUs >= 1)
    }
}

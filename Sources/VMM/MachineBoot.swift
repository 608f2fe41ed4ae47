#if canImport(Glibc)
import Glibc
#endif
import KVM
import GuestMemory
import BootLoader
import SwvmBase

extension Machine {
    func buildDefaultCmdline() throws {
        if !config.replaceDefaultCmdline {
            // reboot=k: reset through the i8042, which this VMM sees.
            // panic=-1: reboot at once on a panic instead of spinning.
            try cmdline.append("console=ttyS0 reboot=k panic=-1 i8042.noaux tsc=reliable no_timer_check")
            // noreplace-smp: a one-vCPU guest would otherwise rewrite every
            // LOCK prefix in the kernel text at boot, one text_poke each.
            try cmdline.append("noreplace-smp")
            // A restored guest's clock jumps by the time since its snapshot:
            // a grace period open at the snapshot then looks stalled, and the
            // kernel formats a stall report with stack dumps (printk, emulated
            // here: a fifth of a template run's guest work when it happened).
            try cmdline.append("rcupdate.rcu_cpu_stall_suppress=1")
            if config.quiet { try cmdline.append("quiet loglevel=1") }
            let profile = config.cpuProfile.kernelParameters
            if !profile.isEmpty { try cmdline.append(profile.joined(separator: " ")) }
            // Tell the kernel the TSC frequency: calibrating it against the
            // PIT fails when the kernel is emulated, and leaves the guest on
            // the 10 ms jiffies clock; it also skips the delay-loop calibration.
            if let khz = vcpus.first?.tscKHz { try cmdline.append("tsc_early_khz=\(khz)") }
        }
        if !config.extraCmdline.isEmpty { try cmdline.append(config.extraCmdline) }
    }

    func writeBootStructures() throws {
        guard let kernel else { throw SwvmError(.internalError, "no kernel loaded to boot") }
        var zeroPage = ZeroPage(setupHeader: kernel.setupHeader)
        let cmd = cmdline.bytes
        try memory.writeBytes(cmd, at: X86Layout.cmdlineStart)
        zeroPage.setCommandLine(address: X86Layout.cmdlineStart, size: cmd.count)
        if let bytes = config.initrdBytes {
            let r = try InitrdLoader.load(bytes: bytes, into: memory, above: kernel.highestAddress)
            zeroPage.setInitrd(address: r.address, size: r.size)
        } else if let path = config.initrdPath {
            let r = try InitrdLoader.load(path: path, into: memory, above: kernel.highestAddress)
            zeroPage.setInitrd(address: r.address, size: r.size)
        }
        try zeroPage.setE820(E820.map(memorySize: config.memoryBytes))
        try memory.writeBytes(zeroPage.bytes, at: X86Layout.zeroPageStart)
        try PageTables.write(into: memory)
        try GDT.write(into: memory)
        // Always an MP table, even for one vCPU: without one Linux scans the
        // BIOS area for it 16 bytes at a time, an early_memremap() each,
        // which takes seconds when the guest kernel is emulated.
        try MPTable.write(cpus: config.vcpus, into: memory)
        try configureVCPUs()
        try VCPUSetup.configureBoot(vcpus[0], entry: kernel.entry)
    }

    func configureVCPUs() throws {
        let supported = try kvm.supportedCPUID()
        for vcpu in vcpus {
            let cpuid = CPUIDNormalizer.normalize(supported, .init(
                vcpuID: vcpu.id, vcpuCount: config.vcpus, hideHypervisorLeaves: config.cpuProfile.hidesHypervisorLeaves))
            try VCPUSetup.configureCommon(vcpu, cpuid: cpuid)
        }
    }
}

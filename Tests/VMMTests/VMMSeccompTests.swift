import Testing
#if canImport(Glibc)
import Glibc
#endif
import CKVM
import CSyscalls
import KVM
import Seccomp
import SwvmBase
@testable import VMM
import NativeThreads

/// Each claim in VMMSeccomp's comments, tried on a fresh thread that loaded
/// the real filter as Machine's threads do: the call fails with EPERM (and
/// what the thread needs still works).
@Suite struct VMMSeccompTests {
    typealias Outcomes = [String: Int32]

    /// Runs `body` on a new thread under `profile`'s filter: each call's
    /// errno, 0 for success.
    func underFilter(_ profile: SeccompProfile, _ body: @escaping @Sendable () -> Outcomes) throws -> Outcomes {
        let filter = ThreadFilter(try VMMSeccomp.compile(profile))
        let result = Locked<Outcomes?>(nil)
        let thread = try NativeThread {
            guard (try? VMMSeccomp.confineCurrentThread(filter)) != nil else { return }
            let outcomes = body()
            result.with { $0 = outcomes }
        }
        thread.join()
        return try #require(result.current, "the filter did not load")
    }

    static func outcome(_ ok: Bool) -> Int32 { ok ? 0 : errno }

    typealias PkeyMprotect = @convention(c) (UnsafeMutableRawPointer?, Int, Int32, Int32) -> Int32

    /// Executable memory, made three ways, and plain memory (which every
    /// thread needs for malloc).
    static func memoryCalls() -> Outcomes {
        var r: Outcomes = [:]
        let exec = mmap(nil, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        r["mmap PROT_EXEC"] = outcome(exec != MAP_FAILED)
        if exec != MAP_FAILED { munmap(exec, 4096) }
        let page = mmap(nil, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        r["mmap read-write"] = outcome(page != MAP_FAILED)
        guard page != MAP_FAILED else { return r }
        r["mprotect PROT_EXEC"] = outcome(mprotect(page, 4096, PROT_READ | PROT_EXEC) == 0)
        r["mprotect read-only"] = outcome(mprotect(page, 4096, PROT_READ) == 0)
        // Not in Swift's Glibc module (it needs _GNU_SOURCE).
        if let sym = dlsym(nil, "pkey_mprotect") {
            let pkeyMprotect = unsafeBitCast(sym, to: PkeyMprotect.self)
            r["pkey_mprotect PROT_EXEC"] = outcome(pkeyMprotect(page, 4096, PROT_READ | PROT_EXEC, -1) == 0)
        }
        munmap(page, 4096)
        return r
    }

    func expectNoExecutableMemory(_ r: Outcomes) {
        #expect(r["mmap PROT_EXEC"] == EPERM)
        #expect(r["mprotect PROT_EXEC"] == EPERM)
        #expect(r["pkey_mprotect PROT_EXEC"] == EPERM)
        #expect(r["mmap read-write"] == 0)
        #expect(r["mprotect read-only"] == 0)
    }

    /// What no VMM thread may do.
    static func otherCalls() -> Outcomes {
        var r: Outcomes = [:]
        let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)   // openat(AT_FDCWD, ...)
        r["open /dev/null"] = outcome(fd >= 0)
        if fd >= 0 { close(fd) }
        let s = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        r["socket"] = outcome(s >= 0)
        if s >= 0 { close(s) }
        // execve fails before the thread's process is replaced: EPERM
        // from the filter (or ENOENT without one).
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/nonexistent"), nil]
        r["execve"] = outcome(execve("/nonexistent", argv, [nil]) == 0)
        return r
    }

    /// Signal 0 with tgkill to this process's main thread (as pthread_kill
    /// does, to kick a vCPU) and to another process (`other`, got before
    /// the filter: getppid is not allowed on these threads).
    static func signalCalls(other: pid_t) -> Outcomes {
        ["tgkill own process": outcome(sys_tgkill(getpid(), getpid(), 0) == 0),
         "tgkill other process": outcome(sys_tgkill(other, other, 0) == 0)]
    }

    func expectSignalsToOwnProcessOnly(_ r: Outcomes) {
        #expect(r["tgkill own process"] == 0)
        #expect(r["tgkill other process"] == EPERM)
    }

    /// A VM with two vCPUs, to aim requests at.
    struct TestVM {
        let kvm: KVMSystem
        let vm: VirtualMachine
        let mine: VCPU
        let other: VCPU
        let notifier: Int32

        init() throws {
            kvm = try KVMSystem()
            vm = try kvm.createVM()
            mine = try vm.createVCPU(id: 0)
            other = try vm.createVCPU(id: 1)
            notifier = eventfd(0, Int32(EFD_CLOEXEC))
        }

        /// Requests on the VM and /dev/kvm that would change what the
        /// guest can reach or create VMs and vCPUs.
        func vmRequests(_ page: UInt) -> Outcomes {
            var r: Outcomes = [:]
            let region = ckvm_set_user_memory_region(vm.fd.raw, 7, 0x1_0000_0000, 4096, UInt64(page))
            r["KVM_SET_USER_MEMORY_REGION"] = outcome(region == 0)
            let vcpu = ckvm_create_vcpu(vm.fd.raw, 2)
            r["KVM_CREATE_VCPU"] = outcome(vcpu >= 0)
            if vcpu >= 0 { close(vcpu) }
            let newVM = ckvm_create_vm(kvm.fd.raw)
            r["KVM_CREATE_VM"] = outcome(newVM >= 0)
            if newVM >= 0 { close(newVM) }
            r["KVM_IRQFD"] = outcome(ckvm_irqfd(vm.fd.raw, notifier, 5, 0) == 0)
            return r
        }
    }

    static func page() throws -> UnsafeMutableRawPointer {
        let p = mmap(nil, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let p, p != MAP_FAILED else { throw SwvmError.errno("mmap") }
        return p
    }

    @Test func vcpuThreadMakesOnlyItsLoopsRequestsOnItsOwnVCPU() throws {
        let t = try TestVM()
        defer { close(t.notifier) }
        let guestPage = UInt(bitPattern: try Self.page())
        var sregs = kvm_sregs()
        #expect(ckvm_get_sregs(t.mine.fd.raw, &sregs) == 0)
        let savedSregs = sregs
        t.mine.requestImmediateExit()
        let parent = getppid()
        let r = try underFilter(VMMSeccomp.vcpuProfile(vcpuFD: t.mine.fd.raw)) {
            var r = Self.memoryCalls().merging(Self.otherCalls()) { a, _ in a }.merging(t.vmRequests(guestPage)) { a, _ in a }
                .merging(Self.signalCalls(other: parent)) { a, _ in a }
            var regs = kvm_regs()
            var state: UInt32 = 0
            var s = savedSregs
            var gpa: UInt64 = 0, valid: Int32 = 0
            var events = kvm_vcpu_events()
            // Each request the loop makes (KVM_RUN returns at once: immediate_exit is set).
            r["KVM_RUN"] = Self.outcome(ckvm_run(t.mine.fd.raw) == 0)
            r["KVM_GET_REGS"] = Self.outcome(ckvm_get_regs(t.mine.fd.raw, &regs) == 0)
            r["KVM_SET_REGS"] = Self.outcome(ckvm_set_regs(t.mine.fd.raw, &regs) == 0)
            r["KVM_GET_VCPU_EVENTS"] = Self.outcome(ckvm_get_vcpu_events(t.mine.fd.raw, &events) == 0)
            r["KVM_SET_VCPU_EVENTS"] = Self.outcome(ckvm_set_vcpu_events(t.mine.fd.raw, &events) == 0)
            r["KVM_GET_SREGS"] = Self.outcome(ckvm_get_sregs(t.mine.fd.raw, &s) == 0)
            r["KVM_TRANSLATE"] = Self.outcome(ckvm_translate(t.mine.fd.raw, 0, &gpa, &valid) == 0)
            r["KVM_GET_MP_STATE"] = Self.outcome(ckvm_get_mp_state(t.mine.fd.raw, &state) == 0)
            r["KVM_GET_REGS, other vCPU"] = Self.outcome(ckvm_get_regs(t.other.fd.raw, &regs) == 0)
            r["KVM_SET_SREGS, own vCPU"] = Self.outcome(ckvm_set_sregs(t.mine.fd.raw, &s) == 0)
            r["KVM_SET_MSRS, own vCPU"] = Self.outcome(ckvm_set_msrs(t.mine.fd.raw, nil, 0) >= 0)
            return r
        }
        expectNoExecutableMemory(r)
        expectSignalsToOwnProcessOnly(r)
        #expect(r["KVM_RUN"] == EINTR)
        for allowed in ["KVM_GET_REGS", "KVM_SET_REGS", "KVM_GET_VCPU_EVENTS", "KVM_SET_VCPU_EVENTS", "KVM_GET_SREGS",
                        "KVM_TRANSLATE", "KVM_GET_MP_STATE"] {
            #expect(r[allowed] == 0, "\(allowed)")
        }
        for refused in ["KVM_GET_REGS, other vCPU", "KVM_SET_SREGS, own vCPU", "KVM_SET_MSRS, own vCPU",
                        "KVM_SET_USER_MEMORY_REGION", "KVM_CREATE_VCPU", "KVM_CREATE_VM", "KVM_IRQFD",
                        "open /dev/null", "socket", "execve"] {
            #expect(r[refused] == EPERM, "\(refused)")
        }
    }

    @Test func deviceThreadMakesNoKVMRequestAndOpensNothing() throws {
        let t = try TestVM()
        defer { close(t.notifier) }
        let guestPage = UInt(bitPattern: try Self.page())
        t.mine.requestImmediateExit()
        let parent = getppid()
        let r = try underFilter(VMMSeccomp.deviceProfile()) {
            var r = Self.memoryCalls().merging(Self.otherCalls()) { a, _ in a }.merging(t.vmRequests(guestPage)) { a, _ in a }
                .merging(Self.signalCalls(other: parent)) { a, _ in a }
            var regs = kvm_regs()
            r["KVM_GET_REGS"] = Self.outcome(ckvm_get_regs(t.mine.fd.raw, &regs) == 0)
            r["KVM_RUN"] = Self.outcome(ckvm_run(t.mine.fd.raw) == 0)
            // Its two ioctls reach the kernel (an eventfd is neither a tap nor a terminal).
            r["TUNSETOFFLOAD"] = Self.outcome(sys_ioctl_int(t.notifier, UInt(VMMSeccomp.tunSetOffload), 0) == 0)
            var ws = winsize()
            r["TIOCGWINSZ"] = Self.outcome(sys_ioctl_ptr(t.notifier, sys_TIOCGWINSZ, &ws) == 0)
            // How a cold boot checks that stdin can be polled.
            let ep = epoll_create1(Int32(EPOLL_CLOEXEC))
            r["epoll_create1"] = Self.outcome(ep >= 0)
            if ep >= 0 { close(ep) }
            return r
        }
        expectNoExecutableMemory(r)
        expectSignalsToOwnProcessOnly(r)
        for refused in ["KVM_GET_REGS", "KVM_RUN", "KVM_SET_USER_MEMORY_REGION", "KVM_CREATE_VCPU", "KVM_CREATE_VM",
                        "KVM_IRQFD", "open /dev/null", "socket", "execve"] {
            #expect(r[refused] == EPERM, "\(refused)")
        }
        #expect(r["TUNSETOFFLOAD"] != EPERM && r["TUNSETOFFLOAD"] != 0)
        #expect(r["TIOCGWINSZ"] == ENOTTY)
        #expect(r["epoll_create1"] == 0)
    }

    @Test func shareServerThreadHasNoIoctlSocketOrExec() throws {
        let t = try TestVM()
        defer { close(t.notifier) }
        let parent = getppid()
        let r = try underFilter(VMMSeccomp.shareServerProfile()) {
            var r = Self.memoryCalls().merging(Self.otherCalls()) { a, _ in a }.merging(Self.signalCalls(other: parent)) { a, _ in a }
            var regs = kvm_regs()
            r["KVM_GET_REGS"] = Self.outcome(ckvm_get_regs(t.mine.fd.raw, &regs) == 0)
            r["TUNSETOFFLOAD"] = Self.outcome(sys_ioctl_int(t.notifier, UInt(VMMSeccomp.tunSetOffload), 0) == 0)
            return r
        }
        expectNoExecutableMemory(r)
        expectSignalsToOwnProcessOnly(r)
        for refused in ["KVM_GET_REGS", "TUNSETOFFLOAD", "socket", "execve"] {
            #expect(r[refused] == EPERM, "\(refused)")
        }
        // As its comment says: seccomp does not check paths, so an open of
        // an absolute path is not refused (the shares' jail is not a filter).
        #expect(r["open /dev/null"] == 0)
    }
}

#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import KVM
import Seccomp
import SwvmBase
import NativeThreads

extension Machine {
    /// The device thread, one thread per vCPU and the devices' service
    /// threads, each under its seccomp filter (a vCPU's names its own
    /// descriptor). A filter that cannot be
    /// loaded is fatal, as in Firecracker: the threads that handle what the
    /// guest does never run unconfined.
    struct ThreadFilters {
        var vcpus: [ThreadFilter]
        var device: ThreadFilter
        var services: [ThreadFilter]
    }

    func compileThreadFilters() throws -> ThreadFilters {
        ThreadFilters(
            vcpus: try vcpus.map { ThreadFilter(try VMMSeccomp.compile(VMMSeccomp.vcpuProfile(vcpuFD: $0.fd.raw))) },
            device: ThreadFilter(try VMMSeccomp.compile(VMMSeccomp.deviceProfile())),
            services: try services.map { ThreadFilter(try VMMSeccomp.compile($0.profile)) })
    }

    /// The vCPU and device threads keep no capability (capabilities are
    /// per thread); a service thread (9p) keeps what the process kept.
    func startThreads(_ filters: ThreadFilters) throws {
        let vcpuFilters = filters.vcpus, deviceFilter = filters.device
        try events.start(onThreadStart: { [weak self] in
            do {
                try VMMSeccomp.dropThreadCapabilities()
                try VMMSeccomp.confineCurrentThread(deviceFilter)
                self?.confinedThreads.with { $0.append(("device", deviceFilter.allowedSyscalls)) }
                VMMSeccomp.injectTestTrap(thread: "device")
            } catch {
                self?.stop(.failed(SwvmError(.systemCall, "the device thread's seccomp filter: \(error)")))
            }
        })
        for (vcpu, vcpuFilter) in zip(vcpus, vcpuFilters) {
            let thread = try NativeThread(name: "swvm-vcpu\(vcpu.id)") { [self] in
                do {
                    try VMMSeccomp.dropThreadCapabilities()
                    try VMMSeccomp.confineCurrentThread(vcpuFilter)
                    confinedThreads.with { $0.append(("vCPU \(vcpu.id)", vcpuFilter.allowedSyscalls)) }
                    if vcpu.id == 0 { VMMSeccomp.injectTestTrap(thread: "vcpu") }
                } catch {
                    stop(.failed(SwvmError(.systemCall, "vCPU \(vcpu.id)'s seccomp filter: \(error)")))
                    return
                }
                vcpuLoop(vcpu)
            }
            threads.with { $0.append(thread) }
        }
        // After the vCPUs: kickAll finds vCPU i at threads[i].
        for (service, filter) in zip(services, filters.services) {
            let thread = try NativeThread(name: "swvm-\(service.name)") { [self, exitEvent] in
                do {
                    try service.prepare()
                } catch {
                    stop(.failed(error as? SwvmError ?? SwvmError(.systemCall, "the \(service.name) thread: \(error)")))
                    return
                }
                do {
                    try VMMSeccomp.confineCurrentThread(filter)
                    confinedThreads.with { $0.append((service.name, filter.allowedSyscalls)) }
                } catch {
                    stop(.failed(SwvmError(.systemCall, "the \(service.name) thread's seccomp filter: \(error)")))
                    return
                }
                service.body(exitEvent.raw)
            }
            threads.with { $0.append(thread) }
        }
    }

    /// Until the VM ends: signals, host stdin for the serial console, pause
    /// requests, halt checks and profile samples.
    func mainLoop(signals sigfd: FileDescriptor, profileIntervalMs: Int?) throws {
        var stdinOpen = config.consoleInput
        let runStart = Clock.monotonicNanos()
        var trimmed = false
        let haltCheckEveryMs = 200
        var sinceHaltCheck = 0
        let tick = profileIntervalMs ?? haltCheckEveryMs
        while state.with({ $0.exit }) == nil {
            var fds = [pollfd(fd: exitEvent.raw, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: sigfd.raw, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: pauseEvent.raw, events: Int16(POLLIN), revents: 0)]
            if stdinOpen { fds.append(pollfd(fd: 0, events: Int16(POLLIN), revents: 0)) }
            let n = poll(&fds, nfds_t(fds.count), Int32(tick))
            if n < 0 {
                if errno == EINTR { continue }
                throw SwvmError.errno("poll in the VMM's main loop")
            }
            if fds[1].revents & Int16(POLLIN) != 0 {
                var info = signalfd_siginfo()
                if read(sigfd.raw, &info, MemoryLayout<signalfd_siginfo>.size) > 0 {
                    let sig = Int32(info.ssi_signo)
                    let handled = onSignal?(sig) ?? false
                    if !handled && [SIGINT, SIGTERM, SIGHUP, SIGQUIT].contains(sig) { stop(.signal(sig)) }
                }
            }
            if fds[2].revents & Int16(POLLIN) != 0 { servePauseRequest() }
            if stdinOpen, fds.count > 3, fds[3].revents != 0 {
                var buf = [UInt8](repeating: 0, count: 256)
                let got = read(0, &buf, buf.count)
                if got > 0 { serialInput(Array(buf[0..<got])) } else { stdinOpen = false }
            }
            if n == 0 {
                // Once the VM is past its first second, drop the code pages
                // the start-up paths touched (see ProcessMemory).
                if !trimmed && Clock.secondsSince(runStart) > 1 {
                    trimmed = true
                    ProcessMemory.mapOnlyWhatIsUsed()
                }
                sinceHaltCheck += tick
                if let _ = profileIntervalMs { requestProfileSample() }
                if sinceHaltCheck >= haltCheckEveryMs {
                    sinceHaltCheck = 0
                    requestHaltCheck()
                }
            }
        }
    }

    func kickAll() {
        let threads = self.threads.current
        for (i, vcpu) in vcpus.enumerated() {
            vcpu.requestImmediateExit()
            if i < threads.count { threads[i].signal(kickSignal) }
        }
    }

    func requestHaltCheck() {
        state.with { s in
            s.haltCheckPending = vcpus.count
            s.haltedVCPUs.removeAll()
        }
        kickAll()
    }

    func requestProfileSample() {
        state.with { s in s.profileRequested.insert(0) }
        vcpus[0].requestImmediateExit()
        threads.current.first?.signal(kickSignal)
    }

    func vcpuLoop(_ vcpu: VCPU) {
        var unblock = sigset_t()
        sigemptyset(&unblock)
        sigaddset(&unblock, kickSignal)
        pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
        while state.with({ $0.exit }) == nil {
            do {
                let exit = try vcpu.run()
                try handle(exit, on: vcpu)
            } catch let e as SwvmError {
                stop(.failed(e))
            } catch {
                stop(.failed(SwvmError(.vmFailed, "vCPU \(vcpu.id): \(error)")))
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
import KVM
import SwvmBase

extension Machine {
    /// Runs `work` on the main thread while every vCPU is parked outside
    /// KVM_RUN, with its pending I/O completed, and blocks the calling
    /// thread until it is done. Called from the device thread (one caller
    /// at a time), so that no device changes under `work` either. Returns
    /// at once, without running `work`, if the VM is ending.
    public func pause(_ work: @escaping @Sendable () -> Void) {
        let queued: Bool = state.with { s in
            guard s.exit == nil, s.pauseWork == nil else { return false }
            s.pauseWork = work
            return true
        }
        guard queued else { return }
        var one: UInt64 = 1
        _ = write(pauseEvent.raw, &one, 8)
        var v: UInt64 = 0
        while read(pauseDoneEvent.raw, &v, 8) < 0 && errno == EINTR {}
    }

    /// On the main thread: parks the vCPUs, runs the pause work, resumes
    /// them, unless a freeze asked them to stay parked. Frozen vCPUs are
    /// parked already: the work runs at once (kicking them again would
    /// wait for a "parked" they cannot send).
    func servePauseRequest() {
        var v: UInt64 = 0
        _ = read(pauseEvent.raw, &v, 8)
        guard let work = state.with({ $0.pauseWork }) else { return }
        let frozen = state.with { s -> Bool in
            defer { if s.frozenVCPUs > 0 { s.freezeRequested = false } }
            return s.frozenVCPUs > 0
        }
        let parked = frozen || parkVCPUs()
        if parked { work() }
        let freeze = state.with { s -> Bool in
            defer { s.freezeRequested = false }
            if parked && s.freezeRequested { s.frozenVCPUs = vcpus.count }
            return parked && s.freezeRequested || s.frozenVCPUs > 0
        }
        if !freeze { resumeVCPUs(parked ? vcpus.count : 0) }
        releasePauseWaiter()
    }

    /// Parks every vCPU until `thaw` (pause and resume of a running VM,
    /// OCI's pause): the guest runs no instruction meanwhile, and its
    /// devices keep serving what is queued. From a thread other than the
    /// main one; false if the VM is ending or another pause is under way.
    public func freeze() -> Bool {
        state.with { $0.freezeRequested = true }
        pause {}
        return state.with { s in
            s.freezeRequested = false
            return s.frozenVCPUs > 0 && s.exit == nil
        }
    }

    /// Lets frozen vCPUs run again (nothing if none are frozen).
    public func thaw() {
        let count = state.with { s -> Int in
            defer { s.frozenVCPUs = 0 }
            return s.frozenVCPUs
        }
        if count > 0 { resumeVCPUs(count) }
    }

    /// Whether a freeze holds the vCPUs.
    public var isFrozen: Bool { state.with { $0.frozenVCPUs > 0 } }

    func releasePauseWaiter() {
        let waiting: Bool = state.with { s in
            defer { s.pauseWork = nil }
            return s.pauseWork != nil
        }
        var one: UInt64 = 1
        if waiting { _ = write(pauseDoneEvent.raw, &one, 8) }
    }

    /// Kicks every vCPU and waits until each has parked; false if the VM
    /// ended first.
    func parkVCPUs() -> Bool {
        state.with { $0.pauseRequested = true }
        kickAll()
        var count = 0
        while count < vcpus.count {
            var p = pollfd(fd: parkedEvent.raw, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 100) > 0 {
                var v: UInt64 = 0
                if read(parkedEvent.raw, &v, 8) == 8 { count += 1 }
            } else if state.with({ $0.exit != nil }) {
                resumeVCPUs(count)
                return false
            } else {
                // A kick can be lost if it lands just as a vCPU clears its
                // immediate-exit flag after an earlier one: kick again.
                kickAll()
            }
        }
        return true
    }

    func resumeVCPUs(_ count: Int) {
        state.with { $0.pauseRequested = false }
        guard count > 0 else { return }
        var n = UInt64(count)
        _ = write(resumeEvent.raw, &n, 8)
    }

    /// On a vCPU thread after a kick: park until resumed, if asked to.
    func parkIfRequested() {
        guard state.with({ $0.pauseRequested }) else { return }
        var one: UInt64 = 1
        _ = write(parkedEvent.raw, &one, 8)
        var v: UInt64 = 0
        while read(resumeEvent.raw, &v, 8) < 0 && errno == EINTR {}
    }
}

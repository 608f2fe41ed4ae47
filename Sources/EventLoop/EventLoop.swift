#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import NativeThreads
import SwvmBase

/// An epoll loop on its own thread, the way Firecracker's event-manager
/// runs device work off the vCPU threads. Handlers run on the loop thread.
public final class EventLoop: Sendable {
    /// Handlers are added from any thread and run on the loop thread.
    public typealias Handler = @Sendable (_ events: UInt32) -> Void

    private let epfd: Int32
    private let wakeFD: Int32
    private let state = Locked(State())

    private struct State {
        var handlers: [Int32: Handler] = [:]
        var stopping = false
        var thread: NativeThread?
    }

    public init() throws {
        epfd = try sys("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) }
        wakeFD = try sys("eventfd") { eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK)) }
        try add(fd: wakeFD, events: UInt32(EPOLLIN.rawValue)) { [wakeFD] _ in
            var v: UInt64 = 0
            _ = read(wakeFD, &v, 8)
        }
    }

    deinit {
        close(epfd)
        close(wakeFD)
    }

    /// Watches `fd` for `events` (EPOLLIN, ...), calling `handler` on the loop thread.
    public func add(fd: Int32, events: UInt32, handler: @escaping Handler) throws {
        state.with { $0.handlers[fd] = handler }
        var ev = epoll_event()
        ev.events = events
        ev.data.fd = fd
        try sys("epoll_ctl add \(fd)") { epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) }
    }

    public func remove(fd: Int32) {
        state.with { $0.handlers[fd] = nil }
        epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nil)
    }

    /// Changes the events watched for `fd` (virtio-net asks for EPOLLOUT
    /// on its tap only while the tap is full).
    public func modify(fd: Int32, events: UInt32) {
        var ev = epoll_event()
        ev.events = events
        ev.data.fd = fd
        epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev)
    }

    /// Starts the loop thread; `onThreadStart` runs first on it (to confine
    /// it, for instance).
    public func start(name: String = "swvm-events", onThreadStart: (@Sendable () -> Void)? = nil) throws {
        let thread = try NativeThread(name: name) { [self] in
            onThreadStart?()
            loop()
        }
        state.with { $0.thread = thread }
    }

    /// Wakes the loop thread, so it sees `stop`.
    public func wake() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    public func stop() {
        state.with { $0.stopping = true }
        wake()
        let thread = state.with { s in
            defer { s.thread = nil }
            return s.thread
        }
        thread?.join()
    }

    private func loop() {
        var events = [epoll_event](repeating: epoll_event(), count: 32)
        while true {
            if state.with({ $0.stopping }) { return }
            let n = epoll_wait(epfd, &events, Int32(events.count), -1)
            if n < 0 {
                if errno == EINTR { continue }
                return
            }
            for i in 0..<Int(n) {
                let fd = events[i].data.fd
                let mask = events[i].events
                if let h = state.with({ $0.handlers[fd] }) { h(mask) }
            }
        }
    }
}

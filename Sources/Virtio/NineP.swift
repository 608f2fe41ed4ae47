#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import SharedDirectory
import SwvmBase
import NativeThreads

/// virtio-9p (device type 9): host directories for `-v` at
/// --isolation=vm, served over 9P2000.L by `NinePServer`.
///
/// The device is in every VM (so one snapshot serves runs with and
/// without volumes) and starts with no share; `attach` gives it the
/// run's shares after the snapshot point. Requests are served on a thread
/// of their own (`serve(until:)`, under its own seccomp filter), which
/// waits on the queue's ioeventfd: file operations can be slow, and must
/// not hold up the device thread.
// @unchecked: `notifier`, its only var, is set by `adoptNotifier` while the
// machine is built, before any thread that reads it starts; the server is
// behind its Locked.
public final class NinePDevice: VirtioDevice, @unchecked Sendable {
    public let deviceType: UInt32 = 9
    /// VIRTIO_9P_MOUNT_TAG: the config space names the mount tag.
    public let features: UInt64 = 1
    public let queueSizes: [UInt16] = [256]
    public let tag: [UInt8]
    private let requests = RequestQueue()
    private let server: Locked<NinePServer>
    /// Requests served and refused (for the run's report and tests).
    public var counters: (requests: Int, refusals: Int, byType: [UInt8: Int]) {
        server.with { ($0.requests, $0.refusals, $0.requestsByType) }
    }

    /// Host time spent answering requests (diagnostics).
    public let serviceNanos = Locked<UInt64>(0)

    public init(tag: String) throws {
        self.tag = Array(tag.utf8)
        server = Locked(try NinePServer(shares: []))
    }

    /// A server given to `prepare`, not yet serving.
    private let prepared = Locked<NinePServer?>(nil)

    /// Hands over the server `attachPrepared` will serve: made, with its
    /// directories open, where opening is allowed; passed over whole, so no
    /// other thread keeps a reference to it.
    public func prepare(_ newServer: sending NinePServer) {
        prepared.replace(newServer)
    }

    /// The VMM jailed itself (on the main thread, before the server's
    /// thread starts): the prepared server reopens fids through the jail's
    /// own procfs (`procDirectory`) and creates files as the jail's uid:
    /// the prepared one, or the one serving if it was attached already.
    public func enteredJail(procDirectory fd: Int32) {
        let applied = prepared.with { p -> Bool in
            p?.enteredJail(procDirectory: fd)
            return p != nil
        }
        if !applied { server.with { $0.enteredJail(procDirectory: fd) } }
    }

    /// Serves the prepared server's shares from now on (this may run on the
    /// device thread, whose filter allows no open).
    public func attachPrepared() {
        guard let newServer = prepared.with({ $0.take() }) else { return }
        server.replace(newServer)
    }

    public func readConfig(offset: Int, into data: UnsafeMutableRawBufferPointer) {
        let config = le16(UInt16(tag.count)) + tag
        for i in 0..<data.count { data[i] = offset + i < config.count ? config[offset + i] : 0 }
    }

    public func writeConfig(offset: Int, data: UnsafeRawBufferPointer) {}

    public func activate(queues: [VirtQueue], negotiated: UInt64, interrupt: @escaping @Sendable () -> Void) {
        requests.activate(queues.first, interrupt: interrupt)
    }

    public func reset() { requests.reset() }

    /// The queue's ioeventfd, waited on by the server thread itself: a
    /// request then costs one thread wake-up on the host, not two (the
    /// event loop's, then this thread's), and the guest, whose 9p client
    /// waits for each reply, gets it sooner.
    private var notifier: Int32 = -1

    public func adoptNotifier(_ eventfd: Int32, queue: Int) -> Bool {
        notifier = eventfd
        return true
    }

    /// A notification that did not go through the ioeventfd (on a vCPU's
    /// thread): signal the ioeventfd, which the server thread waits on.
    public func queueNotified(_ index: Int) {
        var one: UInt64 = 1
        _ = write(notifier, &one, 8)
    }

    /// The server thread's loop, until `stop` becomes readable.
    public func serve(until stop: Int32) {
        // No heap allocation while idle: this thread's first malloc makes
        // its glibc arena, which a VM without volumes need never have.
        var fds = (pollfd(fd: notifier, events: Int16(POLLIN), revents: 0), pollfd(fd: stop, events: Int16(POLLIN), revents: 0))
        while true {
            let n = withUnsafeMutableBytes(of: &fds) { poll($0.baseAddress!.assumingMemoryBound(to: pollfd.self), 2, -1) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 || fds.1.revents != 0 { return }
            var v: UInt64 = 0
            _ = read(notifier, &v, 8)
            serveQueue()
        }
    }

    /// Answers every request queued.
    public func serveQueue() {
        requests.serve { chain in
            let start = Clock.monotonicNanos()
            defer { serviceNanos.with { $0 += Clock.monotonicNanos() - start } }
            let request = chain.readAll(limit: Int(NinePServer.maxMessageSize) + 4096)
            let limit = chain.writableLength
            let reply = server.with { s in request.withUnsafeBytes { s.handle($0, replyLimit: limit) } }
            guard let reply else { return 0 }
            return UInt32(reply.withUnsafeBytes { chain.write($0) })
        }
    }
}

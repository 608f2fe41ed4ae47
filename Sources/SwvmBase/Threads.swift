#if canImport(Glibc)
import Glibc
#endif
import CSyscalls

/// A joinable POSIX thread running a closure (pthreads rather than
/// Dispatch: the thread count stays exact, which the VMM's per-thread
/// seccomp filters rely on).
public final class NativeThread {
    private var handle = pthread_t()
    private let box: Box

    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    public init(name: String? = nil, _ body: @escaping () -> Void) throws {
        box = Box(body)
        let ctx = Unmanaged.passRetained(box).toOpaque()
        let r = pthread_create(&handle, nil, { ctx in
            let box = Unmanaged<Box>.fromOpaque(ctx!).takeRetainedValue()
            box.body()
            return nil
        }, ctx)
        if r != 0 {
            Unmanaged<Box>.fromOpaque(ctx).release()
            throw SwvmError.errno("pthread_create", r)
        }
        if let name { _ = sys_set_thread_name(handle, String(name.prefix(15))) }
    }

    public var pthread: pthread_t { handle }

    public func join() { pthread_join(handle, nil) }

    /// Sends a signal to this thread (used to kick a vCPU out of KVM_RUN).
    public func signal(_ sig: Int32) { pthread_kill(handle, sig) }
}

/// A mutex-protected value.
public final class Locked<Value> {
    private var mutex = pthread_mutex_t()
    private var value: Value

    public init(_ value: Value) {
        self.value = value
        pthread_mutex_init(&mutex, nil)
    }

    deinit { pthread_mutex_destroy(&mutex) }

    @discardableResult
    public func with<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return try body(&value)
    }

    public var current: Value { with { $0 } }
}

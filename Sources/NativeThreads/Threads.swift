#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import SwvmBase

/// A joinable POSIX thread running a closure (pthreads rather than
/// Dispatch: the thread count stays exact, which the VMM's per-thread
/// seccomp filters rely on).
/// The body is @Sendable: it runs on the new thread, so the compiler
/// checks what it captures.
public final class NativeThread: Sendable {
    private let handle: pthread_t

    private final class Box: Sendable {
        let name: String?
        let body: @Sendable () -> Void
        init(_ name: String?, _ body: @escaping @Sendable () -> Void) {
            self.name = name
            self.body = body
        }
    }

    public init(name: String? = nil, _ body: @escaping @Sendable () -> Void) throws {
        var handle = pthread_t()
        let ctx = Unmanaged.passRetained(Box(name.map { String($0.prefix(15)) }, body)).toOpaque()
        let r = pthread_create(&handle, nil, { ctx in
            let box = Unmanaged<Box>.fromOpaque(ctx!).takeRetainedValue()
            // The thread names itself (prctl PR_SET_NAME): naming it from
            // outside writes /proc/self/task/TID/comm, which a jailed VMM
            // has no /proc for.
            if let name = box.name { _ = sys_set_thread_name(pthread_self(), name) }
            box.body()
            return nil
        }, ctx)
        if r != 0 {
            Unmanaged<Box>.fromOpaque(ctx).release()
            throw SwvmError.errno("pthread_create", r)
        }
        self.handle = handle
    }

    public var pthread: pthread_t { handle }

    public func join() { pthread_join(handle, nil) }

    /// Sends a signal to this thread (used to kick a vCPU out of KVM_RUN).
    public func signal(_ sig: Int32) { pthread_kill(handle, sig) }
}

/// A mutex-protected value, shared between threads, with the standard
/// library Mutex's rules: what goes in or comes out is `sending`, so the
/// compiler checks that no non-Sendable reference stays shared with a
/// caller. @unchecked because the compiler cannot see that the mutex
/// guards `value` (Mutex itself has no way to swap in a new value outside
/// a closure, which `replace` needs).
public final class Locked<Value>: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var value: Value

    public init(_ value: consuming sending Value) {
        self.value = value
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    @discardableResult
    public func with<R, E: Error>(_ body: (inout sending Value) throws(E) -> sending R) throws(E) -> sending R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }

    /// Puts `newValue` in place of the value.
    public func replace(_ newValue: consuming sending Value) {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        value = newValue
    }
}

extension Locked where Value: Sendable {
    public var current: Value { with { $0 } }
}

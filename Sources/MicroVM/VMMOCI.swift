#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import EventLoop
import NativeThreads
import RuntimeSpec
import SharedDirectory
import SwvmBase

/// The VMM of an OCI container at the VM level: `swvm create` exec's swvm
/// again as this process (`swvm vmm`), which outlives it and is the
/// container's pid. What differs from `swvm run --isolation=vm`, which
/// VMRunner asks of it at its hooks:
///
/// - the root is config.json's (VMMOCIPlan), not an image's disk;
/// - the process runs in the container's cgroup (cgroupsPath), where
///   `swvm create` put it right after the exec, not in a cgroup of its own;
/// - guest-init stops the workload at the start gate (MSG_CREATED); then
///   this process tells `swvm create` (the report descriptor) and waits for
///   `swvm start`, which reads the exec FIFO, then sends MSG_START.
///
/// The FIFO: the jailed VMM can open no path, so it opens the FIFO (both
/// ends: no open blocks) and an inotify watch on it before the jail. At the
/// gate it writes the byte `start` reads; the read is the inotify
/// IN_ACCESS event, which releases the guest. Every descriptor here is
/// close-on-exec, so the jail keeps it and no child inherits it.
///
/// @unchecked Sendable: its lets are set at init; `reported` is locked.
public final class VMMOCI: @unchecked Sendable {
    public let plan: VMMOCIPlan
    let report: Int32
    let fifo: FileDescriptor
    let watch: FileDescriptor
    private let reported = Locked(false)
    /// How the VM started, for state's annotations (startAnnotation).
    let start = Locked("")

    /// The annotation that says how the VM started: "template" (an OCI root
    /// template restored), "boot snapshot" (maybe "(saving a template)": set before the save, which may still fail), "cold".
    public static let startAnnotation = "swvm.vm-start"
    /// The annotation that skips the OCI root template: anything but "on".
    public static let templateAnnotation = "swvm.vm-template"

    /// Whether config.json's annotations skip the template.
    public static func templateSkipped(_ oci: OCISettings?) -> Bool {
        guard let value = oci?.annotations.last(where: { $0.key == templateAnnotation })?.value else { return false }
        return value != "on"
    }

    /// Opens what the jailed VMM needs of the host, before the jail.
    public init(plan: VMMOCIPlan, report: Int32, execFIFO: String) throws {
        self.plan = plan
        self.report = report
        guard fcntl(report, F_SETFD, FD_CLOEXEC) == 0 else { throw SwvmError.errno("the report descriptor \(report)") }
        fifo = try FileDescriptor.open(execFIFO, O_RDWR | O_NONBLOCK | O_CLOEXEC)
        let w = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard w >= 0 else { throw SwvmError.errno("inotify_init1 (the exec FIFO's watch)") }
        watch = FileDescriptor(w)
        guard inotify_add_watch(w, execFIFO, UInt32(IN_ACCESS)) >= 0 else { throw SwvmError.errno("inotify_add_watch \(execFIFO)") }
    }

    /// The workload waits at the start gate: let `swvm create` return, and
    /// send MSG_START (through `release`) once `swvm start` read the FIFO.
    /// A `swvm create` killed part-way cannot take the report: the VM ends
    /// (`abort`), nothing waits at a gate nobody will open.
    func reachedGate(events: EventLoop, release: @escaping @Sendable () -> Void, abort: (SwvmError) -> Void) {
        var zero: UInt8 = 0x30
        guard write(fifo.raw, &zero, 1) == 1 else {
            abort(SwvmError(.systemCall, "write the exec FIFO: \(errnoText(errno))"))
            return
        }
        let fd = watch.raw
        do {
            try events.add(fd: fd, events: UInt32(EPOLLIN.rawValue)) { _ in
                guard VMMOCI.drainWatch(fd) else { return }
                events.remove(fd: fd)
                release()
            }
        } catch {
            abort(SwvmError(.systemCall, "watch the exec FIFO: \(error)"))
            return
        }
        if !sendReport("created\n\(OCIRootDisk.annotation)=\(plan.root)\n\(VMMOCI.startAnnotation)=\(start.current)\n") { abort(SwvmError(.vmFailed, "swvm create ended before the container was created")) }
    }

    /// Whether the FIFO was read (the inotify events queued).
    static func drainWatch(_ fd: Int32) -> Bool {
        var buf = [UInt8](repeating: 0, count: 4096)
        var accessed = false
        while true {
            let n = read(fd, &buf, buf.count)
            guard n > 0 else { break }
            // struct inotify_event: i32 wd, u32 mask, u32 cookie, u32 len, name.
            var off = 0
            while off + 16 <= n {
                if le32(buf, off + 4) & UInt32(IN_ACCESS) != 0 { accessed = true }
                off += 16 + Int(le32(buf, off + 12))
            }
        }
        return accessed
    }

    /// Tells `swvm create` why the container could not be created (once;
    /// after the gate, `create` has returned and errors go to stderr).
    public func fail(_ message: String) {
        if !reported.current { sendReport("error\n" + message) } else { Log.error(message) }
    }

    /// Whether `text` went to `swvm create` (only the first report goes).
    @discardableResult
    private func sendReport(_ text: String) -> Bool {
        guard reported.with({ done in defer { done = true }; return !done }) else { return false }
        let bytes = Array(text.utf8)
        let sent = (try? bytes.withUnsafeBytes { try FileDescriptor.writeAll(report, $0) }) != nil
        close(report)
        return sent
    }
}

#if canImport(Glibc)
import Glibc
#endif
import CConfinement
import CSyscalls
import Cgroups
import RuntimeSpec
import SwvmBase

/// The OCI init between clone and the exec FIFO, seen from its parent.
extension OCIProcess {
    /// Clones the init (swvm_container_clone in OCI mode: config.json's
    /// namespaces); it waits on the sync pipe.
    static func clone(_ settings: inout swvm_settings, io: OCICreateIO, terminal: Bool) throws -> Container.Child {
        let sync = try makePipe()
        let errors = try makePipe()
        var fdSocket: [Int32] = [-1, -1]
        if terminal {
            try sys("socketpair to the container's init") { socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fdSocket) }
        }
        var cio = swvm_child_io(sync_fd: sync.read.raw, error_fd: errors.write.raw, socket_fd: fdSocket[1],
                                in: io.stdin, out: io.stdout, err: io.stderr, prepared_root: nil)
        let parentEnds = [sync.write.raw, errors.read.raw, fdSocket[0]]
        let pid = swvm_container_clone(&settings, 0, &cio, parentEnds, Int32(parentEnds.count))
        if fdSocket[1] >= 0 { close(fdSocket[1]) }
        if pid < 0 {
            let e = SwvmError.errno("clone the container's init (config.json's namespaces)")
            if fdSocket[0] >= 0 { close(fdSocket[0]) }
            throw e
        }
        return Container.Child(pid: pid, sync: sync.write, errors: errors.read, socket: fdSocket[0], flags: 0)
    }

    /// Places the init (cgroup, id maps, oom_score_adj, all with this
    /// process's credentials, as runc's nsexec), lets it go on, relays its
    /// terminal to the console socket and reads its reports until it is
    /// created. Any failure kills it.
    static func release(_ child: Container.Child, spec: RunSpec, cgroup: Cgroup, io: OCICreateIO) throws {
        do {
            try cgroup.add(pid: child.pid)
            if let oci = spec.oci {
                try writeIDMaps(pid: child.pid, oci)
                if let adj = oci.oomScoreAdj { try FS.writeControl("/proc/\(child.pid)/oom_score_adj", String(adj)) }
            }
            // With hooks the sync pipe stays open: the init asks for them.
            try child.sync.writeAll([io.hooks == nil ? 1 : UInt8(SWVM_GO_WITH_HOOKS)])
            if io.hooks == nil { child.sync.close() }
            if spec.terminal { try relayTerminal(child, to: io.consoleSocket) }
            try readUntilCreated(child.errors) {
                guard let hooks = io.hooks else { throw SwvmError(.internalError, "container create: the init asked for hooks") }
                try child.sync.writeAll(try hooks(child.pid).encoded())
                child.sync.close()
            }
        } catch {
            child.kill()
            throw error
        }
    }

    static func writeIDMaps(pid: pid_t, _ oci: OCISettings) throws {
        func lines(_ maps: [OCIIDMapping]) -> String { maps.map { "\($0.containerID) \($0.hostID) \($0.size)\n" }.joined() }
        if !oci.uidMappings.isEmpty { try FS.writeControl("/proc/\(pid)/uid_map", lines(oci.uidMappings)) }
        if !oci.gidMappings.isEmpty { try FS.writeControl("/proc/\(pid)/gid_map", lines(oci.gidMappings)) }
    }

    /// The pty master from the child, to --console-socket as runc sends it
    /// (SCM_RIGHTS, the terminal's name as the message). A child that
    /// failed first sends none: its report says why.
    static func relayTerminal(_ child: Container.Child, to socket: Int32?) throws {
        let master = swvm_recv_fd(child.socket)
        guard master >= 0 else { return }
        defer { close(master) }
        guard let socket, swvm_send_fd_named(socket, master, "/dev/ptmx") == 0 else {
            throw SwvmError.errno("send the container's terminal to the console socket")
        }
    }

    /// The init's frames until MSG_CREATED; an error frame, or its end
    /// before it, is a failed create. MSG_HOOKS: `onHooks` answers it.
    static func readUntilCreated(_ fd: FileDescriptor, onHooks: () throws -> Void = {}) throws {
        while true {
            var type: UInt32 = 0, length: UInt32 = 0
            guard let frame = swvm_frame_read_alloc(fd.raw, &type, &length, SWVM_MAX_GUEST_FRAME) else {
                if length == 0 { throw SwvmError(.internalError, "the container's init ended before it was created") }
                throw SwvmError(.internalError, "container create: a report of \(length) bytes from the init, over the limit")
            }
            defer { free(frame) }
            switch type {
            case MSG_CREATED.rawValue: return
            case MSG_CONFINED.rawValue: continue
            case MSG_HOOKS.rawValue: try onHooks()
            case MSG_ERROR.rawValue: throw Container.decodeError(Array(UnsafeBufferPointer(start: frame, count: Int(length))))
            default: throw SwvmError(.internalError, "container create: an unknown report (type \(type)) from the init")
            }
        }
    }
}

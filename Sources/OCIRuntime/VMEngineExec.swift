#if canImport(Glibc)
import Glibc
#endif
import RunRecords
import RuntimeSpec
import SwvmBase
import VMControl

/// exec at the VM level: the process runs in the guest through the VMM's
/// control socket (VMControl), which relays `io`'s descriptors; guest-init
/// gives it the workload's namespaces, cgroup and confinement. Docker's
/// `swvm exec` on a detached VM and OCI exec both come here (the
/// lifecycle's engine for the level).
extension VMEngine {
    func execThroughControl(into vmm: ProcessIdentity, spec: RunSpec, io: ProcessIO, detach: Bool, pidFile: String?) throws -> Int32 {
        if io.consoleSocket != nil || io.preserveFDs > 0 || pidFile != nil {
            throw SwvmError(.unsupported, "exec at the VM level: --console-socket, --preserve-fds and --pid-file are not supported yet")
        }
        let socket = try VMEngine.execSocket(vmm: vmm, id: spec.id)
        let stdio = ExecStdio(input: io.stdin, output: io.stdout, error: io.stderr)
        return try VMControl.exec(socket: socket, VMEngine.execRequest(spec, io: io), stdio: stdio, detach: detach)
    }

    /// The socket in the run record named by the container's id, whose
    /// owner is the container's VMM (not a reused pid).
    static func execSocket(vmm: ProcessIdentity, id: String) throws -> String {
        let dir = RunRecord.directory(for: id)
        let owner = (try? FS.readText(Path.join(dir, "owner"), limit: 4096)) ?? ""
        let path = VMControl.socketPath(recordDirectory: dir)
        guard vmm.isAlive, owner.split(separator: " ").first == Substring(String(vmm.pid)), FS.exists(path) else {
            throw SwvmError(.invalidArgument, "container \(id): container not running (no VMM control socket at \(path))")
        }
        return path
    }

    /// A RunSpec's process as an exec request: argv, environment, directory,
    /// user and groups; a terminal the size of `io`'s stdout (or 24x80).
    static func execRequest(_ spec: RunSpec, io: ProcessIO) -> ExecRequest {
        let p = spec.process
        var request = ExecRequest(args: p.args, env: p.env, cwd: p.cwd.isEmpty ? "/" : p.cwd, uid: p.uid, gid: p.gid,
                                  groups: p.additionalGids, interactive: spec.interactive)
        if spec.terminal {
            var ws = winsize()
            request.terminal = ioctl(io.stdout, UInt(TIOCGWINSZ), &ws) == 0 && ws.ws_row > 0 ? (ws.ws_row, ws.ws_col) : (24, 80)
        }
        return request
    }
}

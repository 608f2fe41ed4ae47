#if canImport(Glibc)
import Glibc
#endif
import Cgroups
import ContainerRuntime
import RuntimeSpec
import SwvmBase

/// The container level: a confined init cloned by ContainerRuntime (the
/// CConfinement child `swvm run` uses), its cgroups by Cgroups.
public struct ContainerEngine: IsolationEngine {
    public init() {}

    public func create(_ spec: RunSpec, io: ProcessIO, stateDir: String, execFIFO: String) throws -> CreatedInit {
        throw SwvmError(.unsupported, "swvm create: the container level's OCI create is not built in yet")
    }

    public func exec(into container: ProcessIdentity, cgroupPaths: [String], spec: RunSpec, io: ProcessIO,
                     detach: Bool, pidFile: String?) throws -> Int32 {
        throw SwvmError(.unsupported, "swvm exec: the container level's OCI exec is not built in yet")
    }

    public func isFrozen(_ cgroupPaths: [String]) -> Bool { false }

    public func freeze(_ cgroupPaths: [String]) throws {
        throw SwvmError(.unsupported, "swvm pause: not built in yet")
    }

    public func thaw(_ cgroupPaths: [String]) throws {
        throw SwvmError(.unsupported, "swvm resume: not built in yet")
    }

    public func update(_ cgroupPaths: [String], _ resources: ResourceUpdate) throws {
        throw SwvmError(.unsupported, "swvm update: not built in yet")
    }

    public func pids(_ cgroupPaths: [String]) -> [pid_t] {
        guard let dir = cgroupPaths.first, let text = Cgroups.read(Path.join(dir, "cgroup.procs")) else { return [] }
        return text.split(separator: "\n").compactMap { pid_t($0) }
    }

    public func destroy(cgroupPaths: [String], cgroupsPath: String?, id: String) {
        for dir in cgroupPaths { Cgroups.killAndRemove(dir) }
    }
}

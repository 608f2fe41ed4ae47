#if canImport(Glibc)
import Glibc
#endif
import ContainerRuntime
import RuntimeSpec
import SwvmBase

/// `create`'s hooks where runc runs them: once the init's mounts are made
/// and before pivot_root, prestart and createRuntime here, in swvm's
/// namespaces, with the init's pid in their state; then createContainer
/// in the init itself (the container's namespaces, the old root still
/// there), and startContainer in the init after `start` released it,
/// before the process execs (OCIHookBlob, swvm_oci_hooks.h).
public final class ContainerHooks: @unchecked Sendable {
    let hooks: OCIHooks
    let record: ContainerRecord
    /// Records the init before any hook runs, so a create killed in a hook
    /// leaves a container delete --force can end.
    let recordInit: (ProcessIdentity) throws -> Void
    /// Whether the engine stopped at that point. One that cannot (a test's
    /// engine) leaves this false: the lifecycle runs all of create's hooks
    /// after create, in swvm's namespaces. Set during create only.
    public private(set) var ran = false

    init(_ hooks: OCIHooks, record: ContainerRecord, recordInit: @escaping (ProcessIdentity) throws -> Void) {
        self.hooks = hooks
        self.record = record
        self.recordInit = recordInit
    }

    public func atCreate(pid: pid_t) throws -> OCIHookBlob {
        ran = true
        var r = record
        r.initProcess = ProcessIdentity(pid: pid, startTime: ProcessStat.read(pid)?.startTime ?? 0)
        try recordInit(r.initProcess!)
        let creating = ContainerState(id: r.id, record: r, status: .creating).specJSON
        try HookRunner.run(hooks.prestart, kind: "prestart", state: creating)
        try HookRunner.run(hooks.createRuntime, kind: "createRuntime", state: creating)
        // startContainer runs once the container is created (runc's state).
        let created = ContainerState(id: r.id, record: r, status: .created).specJSON
        return OCIHookBlob(createContainer: hooks.createContainer, startContainer: hooks.startContainer,
                           createState: creating.serialized(), startState: created.serialized())
    }
}

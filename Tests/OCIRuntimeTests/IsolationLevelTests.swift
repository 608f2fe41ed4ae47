import Testing
@testable import OCIRuntime
import RuntimeSpec
@testable import SwvmBase

@Suite struct IsolationLevelTests {
    @Test func theProgramNameChoosesTheDefault() {
        #expect(IsolationLevel.of(programName: "/usr/local/bin/swvm-vm") == .vm)
        #expect(IsolationLevel.of(programName: "swvm-vm") == .vm)
        #expect(IsolationLevel.of(programName: "/usr/local/bin/swvm") == .container)
        #expect(IsolationLevel.of(programName: "swvm-vmm") == .container)
    }

    @Test func theAnnotationOverridesIt() throws {
        let vm = [OCIAnnotation(key: "swvm.isolation", value: "vm")]
        let container = [OCIAnnotation(key: "other", value: "x"), OCIAnnotation(key: "swvm.isolation", value: "container")]
        #expect(try IsolationLevel.choose(vm, fallback: .container) == .vm)
        #expect(try IsolationLevel.choose(container, fallback: .vm) == .container)
        #expect(try IsolationLevel.choose([], fallback: .vm) == .vm)
    }

    /// A CRI pod's sandbox (the pause container) stays a container under
    /// a `swvm-vm` handler and with the pod's annotation; its workloads are
    /// VMs.
    @Test func aPodSandboxStaysAContainer() throws {
        let containerd = [OCIAnnotation(key: "io.kubernetes.cri.container-type", value: "sandbox")]
        let crio = [OCIAnnotation(key: "io.kubernetes.cri-o.ContainerType", value: "sandbox")]
        let workload = [OCIAnnotation(key: "io.kubernetes.cri.container-type", value: "container")]
        #expect(try IsolationLevel.choose(containerd, fallback: .vm) == .container)
        #expect(try IsolationLevel.choose(crio, fallback: .vm) == .container)
        #expect(try IsolationLevel.choose(workload, fallback: .vm) == .vm)
        #expect(try IsolationLevel.choose(containerd + [OCIAnnotation(key: "swvm.isolation", value: "vm")], fallback: .container) == .container)
        #expect(throws: SwvmError.self) { try IsolationLevel.choose(containerd + [OCIAnnotation(key: "swvm.isolation", value: "x")], fallback: .vm) }
    }

    @Test func anUnknownValueIsAnErrorNamingTheAnnotation() {
        #expect {
            try IsolationLevel.choose([OCIAnnotation(key: "swvm.isolation", value: "VM\u{1b}")], fallback: .container)
        } throws: { e in
            let m = (e as? SwvmError)?.message ?? ""
            return m.contains("swvm.isolation") && m.contains("expected container or vm") && !m.contains("\u{1b}")
        }
    }

    @Test func theRecordedLevel() {
        var record = ContainerRecord(id: "c", bundle: "/b", rootfs: "/b/r", creator: ProcessIdentity(pid: 1, startTime: 1), created: "")
        #expect(IsolationLevel.of(record) == .container)
        record.annotations = [OCIAnnotation(key: "swvm.isolation", value: "vm")]
        #expect(IsolationLevel.of(record) == .vm)
        #expect(IsolationLevel.of(nil) == .container)
    }
}

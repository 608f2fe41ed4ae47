import RuntimeSpec
import SwvmBase

/// The isolation level of an OCI container: chosen by the name swvm is
/// called with (a `swvm-vm` link selects the VM level: the binary a
/// containerd handler or `podman --runtime` names) and, over that, by the
/// annotation `swvm.isolation` in config.json (podman --annotation, a
/// Kubernetes pod annotation). `create` records it in the container's
/// annotations, so `state` and `list` show it and later commands use it.
public enum IsolationLevel: String, Sendable {
    case container, vm

    public static let annotation = "swvm.isolation"

    /// The level a program name selects when config.json does not say.
    public static func of(programName: String) -> IsolationLevel {
        Path.basename(programName) == "swvm-vm" ? .vm : .container
    }

    /// What CRI engines call a pod's sandbox container (containerd's and
    /// CRI-O's annotations): the pause process that only holds the pod's
    /// namespaces for its containers.
    static let sandboxTypes = [("io.kubernetes.cri.container-type", "sandbox"), ("io.kubernetes.cri-o.ContainerType", "sandbox")]

    /// config.json's annotation over `fallback`; an unknown value is an
    /// error. A pod's sandbox stays at the container level whatever the
    /// handler or the pod's annotations (which reach the sandbox as well as
    /// its containers) say: a VM of its own would run nothing of the pod's,
    /// cost a second VM per pod, and take the pod network's interface that
    /// the workloads' VMs need.
    public static func choose(_ annotations: [OCIAnnotation], fallback: IsolationLevel) throws -> IsolationLevel {
        var level = fallback
        if let given = annotations.last(where: { $0.key == annotation })?.value {
            guard let chosen = IsolationLevel(rawValue: given) else {
                throw SwvmError(.invalidArgument, "config.json annotations \(annotation)=\"\(UntrustedText.escaped(given))\": expected container or vm")
            }
            level = chosen
        }
        let sandbox = annotations.contains { a in sandboxTypes.contains { $0 == (a.key, a.value) } }
        return sandbox ? .container : level
    }

    /// A recorded container's level (one from before levels: container).
    public static func of(_ record: ContainerRecord?) -> IsolationLevel {
        record?.annotations.last { $0.key == annotation }.flatMap { IsolationLevel(rawValue: $0.value) } ?? .container
    }
}

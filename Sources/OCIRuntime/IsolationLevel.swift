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

    /// config.json's annotation over `fallback`; an unknown value is an error.
    public static func choose(_ annotations: [OCIAnnotation], fallback: IsolationLevel) throws -> IsolationLevel {
        guard let given = annotations.last(where: { $0.key == annotation })?.value else { return fallback }
        guard let level = IsolationLevel(rawValue: given) else {
            throw SwvmError(.invalidArgument, "config.json annotations \(annotation)=\"\(UntrustedText.escaped(given))\": expected container or vm")
        }
        return level
    }

    /// A recorded container's level (one from before levels: container).
    public static func of(_ record: ContainerRecord?) -> IsolationLevel {
        record?.annotations.last { $0.key == annotation }.flatMap { IsolationLevel(rawValue: $0.value) } ?? .container
    }
}

import CConfinement
import RuntimeSpec
import SharedDirectory

/// A run's -v/--mount bind volumes at --isolation=vm: each host directory
/// becomes share N of the virtio-9p server, and the guest binds
/// SWVM_VOLUMES_DIR/N to the volume's target with the same confinement
/// code (and mount flags) a container uses.
struct VMVolumes {
    let shares: [Share]

    init(shares: [Share]) { self.shares = shares }

    init(_ spec: RunSpec) {
        shares = spec.mounts.compactMap { m in
            guard case .bind(let source) = m.kind else { return nil }
            return Share(hostPath: source, readOnly: m.readOnly)
        }
    }

    /// The spec the guest gets: each bind's source is its share in the guest.
    func apply(to spec: inout RunSpec) {
        var n = 0
        for i in spec.mounts.indices {
            guard case .bind = spec.mounts[i].kind else { continue }
            spec.mounts[i].kind = .bind(source: "\(SWVM_VOLUMES_DIR)/\(n)")
            n += 1
        }
    }

    /// For the run's posture: what the guest can reach on the host.
    var description: String {
        let ro = shares.filter(\.readOnly).count
        return "virtio-9p (\(shares.count) host \(shares.count == 1 ? "directory" : "directories"), \(ro) read-only; server thread confined)"
    }
}

// swift-tools-version:6.0
import PackageDescription

// One target per concern, in the spirit of rust-vmm's crates and crun's
// libcrun files. The C targets hold what Swift cannot express (the kvm.h
// ioctls, variadic and raw system calls, the system libraries) and what
// must be C: CConfinement, the run settings' wire format and the
// confinement, which guest-init compiles too and the container child runs
// between clone and execve, where no Swift may run.
let package = Package(
    name: "swvm",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "swvm", targets: ["swvm"]),
        .executable(name: "swvm-vmm-keeper", targets: ["swvm-vmm-keeper"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // MARK: C shims and system libraries
        .target(name: "CKVM"),
        .target(name: "CSyscalls"),
        .target(name: "CAtomics"),
        // The VMM's jail: the system calls it applies to itself, in order;
        // the wire to its keeper and the posture read from /proc.
        .target(name: "CVMMJail"),
        // The keeper of a jailed VMM: C only (it waits for the whole run, so
        // it carries no Swift runtime); the clean-up is swvm's, exec'd.
        // SwiftPM links it with swiftc, which names the Swift runtime and
        // libstdc++ as shared libraries: linked statically, only what it
        // calls is in it (no loader, no relocations of unused libraries).
        .executableTarget(name: "swvm-vmm-keeper", dependencies: ["CVMMJail"],
                          linkerSettings: [.unsafeFlags(["-static-executable"])]),
        // The run settings' wire format and the confinement both levels apply
        // (compiled into swvm and into guest-init).
        .target(name: "CConfinement"),
        .target(name: "CSeccomp", linkerSettings: [.linkedLibrary("seccomp")]),
        .systemLibrary(name: "CZlib"),
        .systemLibrary(name: "CZstd"),
        .systemLibrary(name: "CLibcrypto"),

        // MARK: shared foundation
        // SwvmBase: errors, paths, files, JSON, logging, subprocesses.
        .target(name: "SwvmBase", dependencies: ["CSyscalls", "CLibcrypto", "CConfinement"]),
        // NativeThreads: pthreads with @Sendable bodies, and Locked.
        .target(name: "NativeThreads", dependencies: ["SwvmBase", "CSyscalls"]),
        // EventLoop: an epoll loop on its own thread (the VMM's device thread).
        .target(name: "EventLoop", dependencies: ["SwvmBase", "NativeThreads", "CSyscalls"]),
        // Terminal: swvm's own terminal under -t (size, raw mode), at both levels.
        .target(name: "Terminal", dependencies: ["CSyscalls"]),

        // MARK: images and process settings (both isolation levels)
        .target(name: "OCIImage", dependencies: ["SwvmBase", "CSyscalls", "CZlib", "CZstd"]),
        // Seccomp: the profile model and its compiler (libseccomp); the VMM's
        // thread filters use it without the run's settings.
        .target(name: "Seccomp", dependencies: ["SwvmBase", "CSeccomp"]),
        .target(name: "RuntimeSpec", dependencies: ["SwvmBase", "OCIImage", "Seccomp", "CSyscalls", "CConfinement"]),
        // RunSettingsWire: a RunSpec in swvm_run_settings.h's wire form (the
        // C confinement decodes it), and the child's report of what it confined.
        .target(name: "RunSettingsWire", dependencies: ["SwvmBase", "RuntimeSpec", "CConfinement"]),
        // CommandLineOptions: `swvm run`'s options, each declared once, and
        // SpecBuilder, which reads them (Docker's syntax) into a RunSpec.
        .target(name: "CommandLineOptions",
                dependencies: ["SwvmBase", "OCIImage", "RuntimeSpec", "Seccomp",
                               .product(name: "ArgumentParser", package: "swift-argument-parser")]),

        // MARK: host networking (the bridge, leases, nftables, veth and tap)
        .target(name: "Network", dependencies: ["SwvmBase", "NativeThreads", "RuntimeSpec", "CSyscalls", "CConfinement"]),

        // MARK: container isolation
        .target(name: "Cgroups", dependencies: ["SwvmBase", "RuntimeSpec", "CSyscalls"]),
        // RunRecords: what a live run holds on the host (cgroups, network), so
        // the next swvm cleans up after one killed with SIGKILL.
        .target(name: "RunRecords", dependencies: ["SwvmBase", "Cgroups", "Network"]),
        .target(name: "ContainerRuntime",
                dependencies: ["SwvmBase", "Terminal", "RuntimeSpec", "RunSettingsWire", "Seccomp", "Cgroups", "RunRecords", "Network", "CSyscalls", "CConfinement"]),

        // OCIRuntime: the OCI lifecycle (runc's create/start/kill/delete...)
        // over a state store under --root, for either isolation level.
        .target(name: "OCIRuntime",
                dependencies: ["SwvmBase", "RuntimeSpec", "Cgroups", "ContainerRuntime", "RunRecords", "NativeThreads", "VMMJail", "CSyscalls",
                              "VMControl", "Terminal", "SnapshotCache"]),

        // MARK: VM isolation (kvm-ioctls, vm-memory, linux-loader, devices, vmm)
        // Snapshot: the saved-state encoding and the snapshot file format.
        .target(name: "Snapshot", dependencies: ["SwvmBase", "CZlib"]),
        // SnapshotCache: where snapshots live, lookup, locking and publishing (warm starts).
        .target(name: "SnapshotCache", dependencies: ["SwvmBase", "NativeThreads", "Snapshot"]),
        .target(name: "KVM", dependencies: ["SwvmBase", "CKVM"]),
        .target(name: "GuestMemory", dependencies: ["SwvmBase", "CAtomics"]),
        .target(name: "BootLoader", dependencies: ["SwvmBase", "GuestMemory", "CKVM"]),
        .target(name: "Devices", dependencies: ["SwvmBase", "NativeThreads", "GuestMemory", "Snapshot"]),
        // SharedDirectory: the 9P2000.L file server behind virtio-9p (-v at --isolation=vm).
        .target(name: "SharedDirectory", dependencies: ["SwvmBase", "CSyscalls"]),
        .target(name: "Virtio", dependencies: ["SwvmBase", "NativeThreads", "EventLoop", "GuestMemory", "Devices", "Snapshot", "SharedDirectory", "CAtomics", "CSyscalls"]),
        .target(name: "VMM",
                dependencies: ["SwvmBase", "NativeThreads", "EventLoop", "KVM", "GuestMemory", "BootLoader", "Devices", "Virtio", "Snapshot", "Seccomp", "CKVM", "CSyscalls", "CVMMJail"]),
        // VMMJail: the VMM's jail (Firecracker's jailer), its uid lease, the
        // keeper that cleans up after a jailed VMM, and the posture read back.
        .target(name: "VMMJail",
                dependencies: ["SwvmBase", "NativeThreads", "Seccomp", "Cgroups", "RunRecords", "Snapshot", "SnapshotCache", "CVMMJail", "CSyscalls"]),
        // VMControl: the client of a running VMM's control socket (exec,
        // kill --all, pause, resume, ps) and the exec frames in Swift.
        .target(name: "VMControl", dependencies: ["SwvmBase", "RunSettingsWire", "RunRecords", "CConfinement", "CSyscalls", "NativeThreads"]),
        .target(name: "MicroVM",
                dependencies: ["SwvmBase", "NativeThreads", "Terminal", "RuntimeSpec", "RunSettingsWire", "Seccomp", "Cgroups", "RunRecords", "Network", "KVM", "VMM", "Virtio", "SharedDirectory", "Snapshot", "SnapshotCache", "OCIImage",
                              "VMMJail", "VMControl", "EventLoop", "CConfinement", "CSyscalls", "CacheStore"]),

        // MARK: what swvm caches (swvm cache ls/rm/prune)
        .target(name: "CacheStore", dependencies: ["SwvmBase"]),

        // MARK: comparison
        .target(name: "Compare",
                dependencies: ["SwvmBase", "NativeThreads", "CSyscalls", "Network"]),

        // MARK: the command-line tool
        .executableTarget(
            name: "swvm",
            dependencies: [
                "SwvmBase", "OCIImage", "RuntimeSpec", "CommandLineOptions", "Seccomp", "ContainerRuntime", "OCIRuntime", "KVM", "VMM", "VMMJail", "MicroVM", "VMControl", "Compare", "CacheStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        // MARK: tests
        .target(name: "TestSupport", dependencies: ["SwvmBase"], path: "Tests/TestSupport"),
        .testTarget(name: "SwvmBaseTests", dependencies: ["SwvmBase", "NativeThreads", "CConfinement"]),
        .testTarget(name: "OCIImageTests", dependencies: ["OCIImage", "SwvmBase", "TestSupport"]),
        .testTarget(name: "RuntimeSpecTests", dependencies: ["RuntimeSpec", "OCIImage", "Seccomp", "SwvmBase", "CConfinement"]),
        .testTarget(name: "RunSettingsWireTests", dependencies: ["RunSettingsWire", "RuntimeSpec", "SwvmBase", "CConfinement"]),
        .testTarget(name: "CommandLineOptionsTests", dependencies: ["CommandLineOptions", "RuntimeSpec", "OCIImage", "Seccomp", "SwvmBase"]),
        .testTarget(name: "ContainerRuntimeTests", dependencies: ["ContainerRuntime", "RuntimeSpec", "Cgroups", "SwvmBase", "CSyscalls", "CConfinement"]),
        .testTarget(name: "OCIRuntimeTests", dependencies: ["OCIRuntime", "RuntimeSpec", "SwvmBase", "NativeThreads", "TestSupport", "CSyscalls"]),
        .testTarget(name: "BootLoaderTests", dependencies: ["BootLoader", "GuestMemory", "SwvmBase", "CKVM"]),
        .testTarget(name: "SharedDirectoryTests", dependencies: ["SharedDirectory", "SwvmBase", "NativeThreads"]),
        .testTarget(name: "VMMTests", dependencies: ["VMM", "KVM", "Devices", "Virtio", "GuestMemory", "SwvmBase", "NativeThreads", "EventLoop", "CKVM", "MicroVM", "Snapshot", "SnapshotCache",
                                                 "Seccomp", "CSyscalls", "CConfinement", "VMControl", "RunSettingsWire"]),
        .testTarget(name: "IntegrationTests", dependencies: ["SwvmBase", "NativeThreads", "OCIImage", "ContainerRuntime", "MicroVM", "Cgroups", "RuntimeSpec", "CommandLineOptions", "Snapshot", "Network", "VMMJail", "VMControl", "Compare", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)

// libFuzzer harnesses (fuzz/), only when scripts/fuzz.sh builds them
// (SWVM_FUZZ=1, with --sanitize=fuzzer): each compiles the real targets.
if Context.environment["SWVM_FUZZ"] != nil {
    let harnesses: [(String, [Target.Dependency])] = [
        ("FuzzTar", ["OCIImage", "SwvmBase"]),
        ("FuzzJSON", ["OCIImage", "RuntimeSpec", "Seccomp", "SwvmBase"]),
        ("FuzzVirtqueue", ["Virtio", "GuestMemory", "SwvmBase"]),
        ("FuzzVirtioDevice", ["Virtio", "GuestMemory", "SwvmBase"]),
        ("FuzzGuestProtocol", ["MicroVM", "VMControl", "SwvmBase"]),
        ("FuzzBootLoader", ["BootLoader", "GuestMemory", "SwvmBase"]),
        ("FuzzNineP", ["SharedDirectory", "SwvmBase"]),
        ("FuzzOCIConfig", ["RuntimeSpec", "Seccomp", "SwvmBase"]),
        ("FuzzOCIState", ["OCIRuntime", "SwvmBase"]),
    ]
    for (name, deps) in harnesses {
        package.targets.append(.executableTarget(name: name, dependencies: deps, path: "fuzz/harnesses/\(name)",
                                                 swiftSettings: [.unsafeFlags(["-parse-as-library"])]))
    }
}

// swift-tools-version:6.0
import PackageDescription

// One target per concern, in the spirit of rust-vmm's crates and crun's
// libcrun files. The C targets hold only what Swift cannot express: the
// kvm.h ioctls, variadic/raw syscalls, and the system libraries.
let package = Package(
    name: "swvm",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "swvm", targets: ["swvm"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // MARK: C shims and system libraries
        .target(name: "CKVM"),
        .target(name: "CSyscalls"),
        .target(name: "CAtomics"),
        // The run settings' wire format and the confinement both levels apply
        // (compiled into swvm and into guest-init).
        .target(name: "CConfinement"),
        .target(name: "CSeccomp", linkerSettings: [.linkedLibrary("seccomp")]),
        .systemLibrary(name: "CZlib"),
        .systemLibrary(name: "CZstd"),
        .systemLibrary(name: "CLibcrypto"),

        // MARK: shared foundation
        .target(name: "SwvmBase", dependencies: ["CSyscalls", "CLibcrypto"]),

        // MARK: images and process settings (both isolation levels)
        .target(name: "OCIImage", dependencies: ["SwvmBase", "CSyscalls", "CZlib", "CZstd"]),
        .target(name: "RuntimeSpec", dependencies: ["SwvmBase", "OCIImage", "CSyscalls", "CConfinement"]),
        .target(name: "Seccomp", dependencies: ["SwvmBase", "RuntimeSpec", "CSeccomp"]),

        // MARK: host networking (the bridge, leases, nftables, veth and tap)
        .target(name: "Network", dependencies: ["SwvmBase", "RuntimeSpec", "CSyscalls"]),

        // MARK: container isolation
        .target(name: "Cgroups", dependencies: ["SwvmBase", "RuntimeSpec", "Network", "CSyscalls"]),
        .target(name: "ContainerRuntime",
                dependencies: ["SwvmBase", "RuntimeSpec", "Seccomp", "Cgroups", "Network", "CSyscalls", "CConfinement"]),

        // MARK: VM isolation (kvm-ioctls, vm-memory, linux-loader, devices, vmm)
        // Snapshot: the saved-state encoding and the snapshot cache (warm starts).
        .target(name: "Snapshot", dependencies: ["SwvmBase", "CZlib"]),
        .target(name: "KVM", dependencies: ["SwvmBase", "Snapshot", "CKVM"]),
        .target(name: "GuestMemory", dependencies: ["SwvmBase"]),
        .target(name: "BootLoader", dependencies: ["SwvmBase", "GuestMemory", "CKVM"]),
        .target(name: "Devices", dependencies: ["SwvmBase", "GuestMemory", "Snapshot"]),
        // SharedDirectory: the 9P2000.L file server behind virtio-9p (-v at --isolation=vm).
        .target(name: "SharedDirectory", dependencies: ["SwvmBase", "CSyscalls"]),
        .target(name: "Virtio", dependencies: ["SwvmBase", "GuestMemory", "Devices", "Snapshot", "SharedDirectory", "CAtomics", "CSyscalls"]),
        .target(name: "VMM",
                dependencies: ["SwvmBase", "KVM", "GuestMemory", "BootLoader", "Devices", "Virtio", "Snapshot", "Seccomp", "RuntimeSpec", "CKVM", "CSyscalls"]),
        .target(name: "MicroVM",
                dependencies: ["SwvmBase", "RuntimeSpec", "Seccomp", "Cgroups", "Network", "VMM", "Virtio", "SharedDirectory", "Snapshot", "OCIImage", "CConfinement"]),

        // MARK: what swvm caches (swvm cache ls/rm/prune)
        .target(name: "CacheStore", dependencies: ["SwvmBase"]),

        // MARK: comparison
        .target(name: "Compare",
                dependencies: ["SwvmBase", "CSyscalls", "Network"]),

        // MARK: the command-line tool
        .executableTarget(
            name: "swvm",
            dependencies: [
                "SwvmBase", "OCIImage", "RuntimeSpec", "ContainerRuntime", "VMM", "MicroVM", "Compare", "CacheStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        // MARK: tests
        .target(name: "TestSupport", dependencies: ["SwvmBase"], path: "Tests/TestSupport"),
        .testTarget(name: "SwvmBaseTests", dependencies: ["SwvmBase"]),
        .testTarget(name: "OCIImageTests", dependencies: ["OCIImage", "SwvmBase", "TestSupport"]),
        .testTarget(name: "RuntimeSpecTests", dependencies: ["RuntimeSpec", "Seccomp", "SwvmBase", "CConfinement"]),
        .testTarget(name: "ContainerRuntimeTests", dependencies: ["ContainerRuntime", "SwvmBase", "CSyscalls"]),
        .testTarget(name: "BootLoaderTests", dependencies: ["BootLoader", "GuestMemory", "SwvmBase", "CKVM"]),
        .testTarget(name: "SharedDirectoryTests", dependencies: ["SharedDirectory", "SwvmBase"]),
        .testTarget(name: "VMMTests", dependencies: ["VMM", "KVM", "Devices", "Virtio", "GuestMemory", "SwvmBase", "CKVM", "MicroVM", "Snapshot",
                                                 "Seccomp", "RuntimeSpec", "CSyscalls"]),
        .testTarget(name: "IntegrationTests", dependencies: ["SwvmBase", "OCIImage", "MicroVM", "Cgroups", "RuntimeSpec", "Snapshot", "Network", "TestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)

// libFuzzer harnesses (fuzz/), only when scripts/fuzz.sh builds them
// (SWVM_FUZZ=1, with --sanitize=fuzzer): each compiles the real targets.
if Context.environment["SWVM_FUZZ"] != nil {
    let harnesses: [(String, [Target.Dependency])] = [
        ("FuzzTar", ["OCIImage", "SwvmBase"]),
        ("FuzzJSON", ["OCIImage", "RuntimeSpec", "SwvmBase"]),
        ("FuzzVirtqueue", ["Virtio", "GuestMemory", "SwvmBase"]),
        ("FuzzGuestProtocol", ["MicroVM", "SwvmBase"]),
        ("FuzzBootLoader", ["BootLoader", "GuestMemory", "SwvmBase"]),
        ("FuzzNineP", ["SharedDirectory", "SwvmBase"]),
    ]
    for (name, deps) in harnesses {
        package.targets.append(.executableTarget(name: name, dependencies: deps, path: "fuzz/harnesses/\(name)",
                                                 swiftSettings: [.unsafeFlags(["-parse-as-library"])]))
    }
}

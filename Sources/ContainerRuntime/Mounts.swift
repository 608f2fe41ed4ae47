#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import Cgroups
import RuntimeSpec
import SwvmBase

/// The container's filesystem, built inside its own mount namespace (so
/// every mount here vanishes with the container, even if swvm is killed):
/// an overlay of the cached image root under a tmpfs upper layer, then the
/// kernel filesystems, devices, volumes, masked and read-only paths, and a
/// pivot_root into it.
///
/// Every path inside the root is resolved with openat2(RESOLVE_IN_ROOT)
/// and mounted through its /proc/self/fd link, so a symlink in the image
/// can never redirect a mount onto the host.
struct Mounts {
    let spec: RunSpec
    /// A directory of the parent's (in /run/swvm), shadowed by a tmpfs here.
    let stateDir: String
    let cgroupVersion: CgroupVersion
    /// With --userns: the image root, id-mapped into the container's user
    /// namespace by the parent (a detached mount to attach here).
    let idmappedLower: Int32?
    /// The container's cgroup directories (bound in with --userns on v1,
    /// where a user namespace may not mount cgroup v1 hierarchies).
    let cgroupPaths: [String]
    var rootFD: Int32 = -1

    init(spec: RunSpec, stateDir: String, cgroupVersion: CgroupVersion, idmappedLower: Int32? = nil, cgroupPaths: [String] = []) {
        self.spec = spec
        self.stateDir = stateDir
        self.cgroupVersion = cgroupVersion
        self.idmappedLower = idmappedLower
        self.cgroupPaths = cgroupPaths
    }

    var newRoot: String { Path.join(stateDir, "root") }

    // MARK: mount(2) wrappers

    static func mount(_ source: String?, _ target: String, _ type: String?, _ flags: UInt, _ data: String? = nil,
                      what: String) throws {
        let r: Int32 = data.map { d in Glibc.mount(source, target, type, flags, d) } ?? Glibc.mount(source, target, type, flags, nil)
        guard r == 0 else { throw SwvmError(.systemCall, "mount \(what): \(errnoText(errno))") }
    }

    static let bind = UInt(MS_BIND), rec = UInt(MS_REC), rdonly = UInt(MS_RDONLY)
    static let nosuid = UInt(MS_NOSUID), nodev = UInt(MS_NODEV), noexec = UInt(MS_NOEXEC)
    static let remount = UInt(MS_REMOUNT), priv = UInt(MS_PRIVATE), strictatime = UInt(MS_STRICTATIME)
    static let relatime = UInt(MS_RELATIME)

    // MARK: the root

    /// Stops mounts from propagating to the host, then assembles the root.
    mutating func prepareRoot() throws {
        try Mounts.mount(nil, "/", nil, Mounts.rec | Mounts.priv, what: "make / private")
        try Mounts.mount("tmpfs", stateDir, "tmpfs", Mounts.nodev | Mounts.nosuid, "mode=0700", what: "scratch tmpfs")
        for d in ["lower", "upper", "work", "root"] {
            guard mkdir(Path.join(stateDir, d), 0o755) == 0 else { throw SwvmError.errno("mkdir \(d)") }
        }
        // The image root is bound read-only to a fixed path first, so its
        // own path needs no escaping in the overlay options.
        let lower = Path.join(stateDir, "lower")
        if let tree = idmappedLower {
            try sys("attach the id-mapped image root") { sys_move_mount_fd(tree, lower) }
            close(tree)
        } else {
            try Mounts.mount(spec.rootfs, lower, nil, Mounts.bind | Mounts.rec, what: "image root \(spec.rootfs)")
            try Mounts.mount(nil, lower, nil, Mounts.remount | Mounts.bind | Mounts.rdonly, what: "image root read-only")
        }
        var opts = "lowerdir=\(lower),upperdir=\(stateDir)/upper,workdir=\(stateDir)/work"
        // In a user namespace overlayfs keeps its metadata in user.* xattrs.
        if spec.userNamespace != nil { opts += ",userxattr" }
        // nodev: device nodes in the image (or made by mknod) cannot be opened.
        try Mounts.mount("overlay", newRoot, "overlay", Mounts.nodev, opts, what: "overlay root")
        rootFD = try sys("open new root") { open(newRoot, sys_O_PATH | O_DIRECTORY | O_CLOEXEC) }
    }

    // MARK: resolving paths inside the root

    /// An O_PATH descriptor for `path` inside the root, creating it (and
    /// missing parents) as a directory or an empty file.
    func target(_ path: String, directory: Bool) throws -> FileDescriptor {
        do {
            return try RootedPath.open(rootFD: rootFD, path, flags: sys_O_PATH)
        } catch let e as SwvmError where e.code == .notFound {
            let parent = Path.dirname(path)
            let name = Path.basename(path)
            guard !name.isEmpty, name != "/", name != "..", name != "." else { throw e }
            _ = try target(parent, directory: true)   // creates missing parents
            let dirFD = try RootedPath.open(rootFD: rootFD, parent, flags: O_RDONLY | O_DIRECTORY)
            if directory {
                if mkdirat(dirFD.raw, name, 0o755) != 0 && errno != EEXIST { throw SwvmError.errno("mkdir \(path)") }
            } else {
                let fd = openat(dirFD.raw, name, O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0o644)
                if fd < 0 && errno != EEXIST { throw SwvmError.errno("create \(path)") }
                if fd >= 0 { close(fd) }
            }
            return try RootedPath.open(rootFD: rootFD, path, flags: sys_O_PATH)
        }
    }

    static func fdPath(_ fd: FileDescriptor) -> String { "/proc/self/fd/\(fd.raw)" }

    func mountInside(_ source: String?, _ path: String, _ type: String?, _ flags: UInt, _ data: String? = nil,
                     directory: Bool = true) throws {
        let t = try target(path, directory: directory)
        try Mounts.mount(source, Mounts.fdPath(t), type, flags, data, what: path)
    }

    // MARK: the standard mounts

    func mountKernelFilesystems() throws {
        try mountInside("proc", "/proc", "proc", Mounts.nosuid | Mounts.noexec | Mounts.nodev)
        try mountInside("tmpfs", "/dev", "tmpfs", Mounts.nosuid | Mounts.strictatime | Mounts.nodev, "mode=755,size=65536k")
        try mountInside("devpts", "/dev/pts", "devpts", Mounts.nosuid | Mounts.noexec,
                        "newinstance,ptmxmode=0666,mode=0620,gid=5")
        try mountInside("shm", "/dev/shm", "tmpfs", Mounts.nosuid | Mounts.noexec | Mounts.nodev, "mode=1777,size=65536k")
        try mountInside("mqueue", "/dev/mqueue", "mqueue", Mounts.nosuid | Mounts.noexec | Mounts.nodev)
        if spec.network != .host {
            try mountInside("sysfs", "/sys", "sysfs", Mounts.nosuid | Mounts.noexec | Mounts.nodev | Mounts.rdonly)
        } else {
            // sysfs belongs to a network namespace; with the host's, bind it.
            try mountInside("/sys", "/sys", nil, Mounts.bind | Mounts.rec)
            try mountInside(nil, "/sys", nil, Mounts.remount | Mounts.bind | Mounts.rdonly | Mounts.nosuid | Mounts.noexec | Mounts.nodev)
        }
        try mountCgroups()
    }

    /// /sys/fs/cgroup, read-only, showing the container's own cgroup (the
    /// process is in a new cgroup namespace by now).
    func mountCgroups() throws {
        let ro = Mounts.nosuid | Mounts.noexec | Mounts.nodev | Mounts.rdonly
        switch cgroupVersion {
        case .v2:
            try mountInside("cgroup2", "/sys/fs/cgroup", "cgroup2", ro)
        case .v1(let root):
            try mountInside("tmpfs", "/sys/fs/cgroup", "tmpfs", Mounts.nosuid | Mounts.noexec | Mounts.nodev, "mode=755")
            if spec.userNamespace != nil {
                // A user namespace cannot mount v1 hierarchies: bind the
                // container's own cgroup directories, read-only.
                for dir in cgroupPaths {
                    let controller = Path.basename(Path.dirname(Path.dirname(dir)))
                    try mountInside(dir, "/sys/fs/cgroup/\(controller)", nil, Mounts.bind)
                    try mountInside(nil, "/sys/fs/cgroup/\(controller)", nil, Mounts.remount | Mounts.bind | ro)
                }
            } else {
                for c in CgroupV1.controllers where FS.isDirectory(Path.join(root, c)) && FS.exists(Path.join(root, c, "cgroup.procs")) {
                    try mountInside("cgroup", "/sys/fs/cgroup/\(c)", "cgroup", ro, c)
                }
            }
            try mountInside(nil, "/sys/fs/cgroup", nil, Mounts.remount | ro, "mode=755")
        }
    }

    /// The standard device nodes, bound from the host's /dev (the /dev
    /// tmpfs is nodev, so a node made with mknod there cannot be opened).
    func populateDevices(consolePath: String?) throws {
        for dev in ["null", "zero", "full", "random", "urandom", "tty"] {
            try mountInside("/dev/\(dev)", "/dev/\(dev)", nil, Mounts.bind, directory: false)
        }
        let links: [(String, String)] = [
            ("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"), ("/proc/self/fd/1", "/dev/stdout"),
            ("/proc/self/fd/2", "/dev/stderr"), ("pts/ptmx", "/dev/ptmx"), ("/proc/kcore", "/dev/core"),
        ]
        let devFD = try RootedPath.open(rootFD: rootFD, "/dev", flags: O_RDONLY | O_DIRECTORY)
        for (target, link) in links {
            if symlinkat(target, devFD.raw, Path.basename(link)) != 0 && errno != EEXIST {
                throw SwvmError.errno("symlink \(link)")
            }
        }
        if let console = consolePath {
            try mountInside(console, "/dev/console", nil, Mounts.bind, directory: false)
        }
    }

    func mountUserMounts() throws {
        if let probe = spec.probe {
            try mountInside(probe, RunSpec.probePath, nil, Mounts.bind, directory: false)
            let t = try RootedPath.open(rootFD: rootFD, RunSpec.probePath, flags: sys_O_PATH)
            try Mounts.mount(nil, Mounts.fdPath(t), nil, Mounts.remount | Mounts.bind | Mounts.rdonly | Mounts.nodev, what: "probe read-only")
        }
        for m in spec.mounts {
            switch m.kind {
            case .bind(let source):
                guard let st = FS.stat(source) else { throw SwvmError(.notFound, "volume source \(source): no such file or directory") }
                let isDir = (st.st_mode & S_IFMT) == S_IFDIR
                let t = try target(m.destination, directory: isDir)
                try Mounts.mount(source, Mounts.fdPath(t), nil, Mounts.bind | Mounts.rec, what: "volume \(source):\(m.destination)")
                var flags = Mounts.remount | Mounts.bind | Mounts.nodev
                if m.readOnly { flags |= Mounts.rdonly }
                // Reopen: the old descriptor still points below the new mount.
                let mounted = try RootedPath.open(rootFD: rootFD, m.destination, flags: sys_O_PATH)
                try Mounts.mount(nil, Mounts.fdPath(mounted), nil, flags, what: "volume \(m.destination) options")
            case .tmpfs:
                var flags = m.readOnly ? Mounts.rdonly : 0
                var data: [String] = []
                for o in m.options {
                    switch o {
                    case "noexec": flags |= Mounts.noexec
                    case "nosuid": flags |= Mounts.nosuid
                    case "nodev": flags |= Mounts.nodev
                    default: data.append(o)
                    }
                }
                try mountInside("tmpfs", m.destination, "tmpfs", flags | Mounts.nodev, data.joined(separator: ","))
            }
        }
    }

    /// Masked paths: /dev/null over files, an empty read-only tmpfs over
    /// directories. Read-only paths: bound onto themselves, read-only.
    func maskAndProtect() throws {
        for p in spec.maskedPaths {
            guard let fd = try? RootedPath.open(rootFD: rootFD, p, flags: sys_O_PATH) else { continue }
            var st = stat()
            guard fstat(fd.raw, &st) == 0 else { continue }
            if (st.st_mode & S_IFMT) == S_IFDIR {
                try Mounts.mount("tmpfs", Mounts.fdPath(fd), "tmpfs", Mounts.rdonly | Mounts.nosuid | Mounts.nodev | Mounts.noexec, "size=0", what: "mask \(p)")
            } else {
                try Mounts.mount("/dev/null", Mounts.fdPath(fd), nil, Mounts.bind, what: "mask \(p)")
            }
        }
        for p in spec.readonlyPaths {
            guard let fd = try? RootedPath.open(rootFD: rootFD, p, flags: sys_O_PATH) else { continue }
            try Mounts.mount(Mounts.fdPath(fd), Mounts.fdPath(fd), nil, Mounts.bind | Mounts.rec, what: "read-only \(p)")
            let mounted = try RootedPath.open(rootFD: rootFD, p, flags: sys_O_PATH)
            try Mounts.mount(nil, Mounts.fdPath(mounted), nil, Mounts.remount | Mounts.bind | Mounts.rdonly | Mounts.nosuid | Mounts.nodev | Mounts.noexec,
                             what: "read-only \(p)")
        }
    }

    /// /etc/hostname and /etc/hosts for the container's name, as Docker
    /// writes them (into the overlay's upper layer, never the image).
    func writeHostFiles() {
        guard let etc = try? RootedPath.open(rootFD: rootFD, "/etc", flags: O_RDONLY | O_DIRECTORY) else { return }
        func put(_ name: String, _ text: String) {
            unlinkat(etc.raw, name, 0)
            let fd = openat(etc.raw, name, O_CREAT | O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o644)
            guard fd >= 0 else { return }
            _ = try? Array(text.utf8).withUnsafeBytes { try FileDescriptor.writeAll(fd, $0) }
            close(fd)
        }
        put("hostname", spec.hostname + "\n")
        put("hosts", spec.etcHosts)
        if let r = spec.resolvConf { put("resolv.conf", r) }
    }

    /// pivot_root into the new root and detach the old one (runc's
    /// pivot_root(".", ".") idiom: no directory for the old root needed).
    func pivot() throws {
        try sys("chdir new root") { chdir(newRoot) }
        try sys("pivot_root") { sys_pivot_root(".", ".") }
        try sys("umount old root") { umount2(".", Int32(MNT_DETACH)) }
        try sys("chdir /") { chdir("/") }
        if spec.readOnlyRoot {
            try Mounts.mount(nil, "/", nil, Mounts.remount | Mounts.bind | Mounts.rdonly | Mounts.nodev, what: "read-only root")
        }
    }
}

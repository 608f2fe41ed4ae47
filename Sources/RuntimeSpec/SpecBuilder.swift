#if canImport(Glibc)
import Glibc
#endif
import Seccomp
import SwvmBase
import OCIImage

/// The options of `swvm run`, as the user typed them (Docker's names).
public struct RunOptions {
    public var command: [String] = []
    public var entrypoint: String?
    public var env: [String] = []
    public var envFiles: [String] = []
    public var workdir: String?
    public var user: String?
    public var hostname: String?
    public var readOnly = false
    public var tmpfs: [String] = []
    public var volumes: [String] = []
    /// --mount type=bind|tmpfs,... (Docker's long form).
    public var mounts: [String] = []
    public var tty = false
    public var interactive = false
    public var memory: String?
    public var cpus: String?
    public var pidsLimit: Int64?
    public var ulimits: [String] = []
    public var capAdd: [String] = []
    public var capDrop: [String] = []
    public var securityOpts: [String] = []
    public var network = "none"
    public var publish: [String] = []
    public var dns: [String] = []
    public var addHosts: [String] = []
    public var userns: String?
    public var initProcess = false
    public var stopTimeout: String?

    public init() {}
}

/// Turns an image and the command line into a RunSpec, with Docker's
/// precedence rules: COMMAND replaces the image's Cmd, --entrypoint
/// replaces its Entrypoint (and drops its Cmd), -e and --env-file add to
/// and override its Env, -w and -u replace WorkingDir and User.
public enum SpecBuilder {
    public static let defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    public static func build(image: ResolvedImage, options o: RunOptions,
                             hostEnvironment: (String) -> String? = FS.environment) throws -> RunSpec {
        let id = randomHex(32)
        let bundle = try image.bundleConfig.map { try BundleProcess(json: $0) }

        // Arguments.
        var args: [String]
        if let ep = o.entrypoint {
            args = (ep.isEmpty ? [] : [ep]) + o.command
        } else if !o.command.isEmpty {
            args = image.config.entrypoint + o.command
        } else if let b = bundle, !b.args.isEmpty {
            args = b.args
        } else {
            args = image.config.entrypoint + image.config.cmd
        }
        guard !args.isEmpty else {
            throw SwvmError(.invalidArgument, "no command specified: the image \(image.name) has no Entrypoint or Cmd; give one after '--'")
        }

        // User.
        let (userText, userSource) = o.user.map { ($0, "-u") }
            ?? (bundle?.user.isEmpty == false ? (bundle!.user, "config.json process.user.username") : (image.config.user, "the image's User"))
        let users = try UserDatabase(rootfs: image.rootfs)
        var resolved: UserDatabase.Resolved
        if o.user == nil, let b = bundle, let uid = b.uid {
            resolved = .init(uid: uid, gid: b.gid ?? 0, additionalGids: b.additionalGids, home: "/")
        } else {
            resolved = try users.resolve(userText, source: userSource)
        }

        // Hostname.
        let hostname = o.hostname ?? bundle?.hostname ?? String(id.prefix(12))
        guard hostname.utf8.count <= 64, !hostname.contains("/"), !hostname.contains("\0") else {
            throw SwvmError(.invalidArgument, "--hostname '\(hostname)' is not a valid host name")
        }

        // Environment.
        var env = bundle?.env.isEmpty == false ? bundle!.env : image.config.env
        func set(_ entry: String) {
            let key = entry.split(separator: "=", maxSplits: 1).first.map(String.init) ?? entry
            env.removeAll { $0 == key || $0.hasPrefix(key + "=") }
            env.append(entry)
        }
        if !env.contains(where: { $0.hasPrefix("PATH=") }) { env.insert(defaultPath, at: 0) }
        set("HOSTNAME=\(hostname)")
        for file in o.envFiles {
            for line in try readEnvFile(file).split(separator: "\n", omittingEmptySubsequences: true) {
                let l = String(line).trimmingCharacters(in: " ")
                if l.isEmpty || l.hasPrefix("#") { continue }
                if let e = try envEntry(l, hostEnvironment: hostEnvironment, source: "--env-file \(file)") { set(e) }
            }
        }
        for e in o.env {
            if let entry = try envEntry(e, hostEnvironment: hostEnvironment, source: "-e") { set(entry) }
        }
        if o.tty && !env.contains(where: { $0.hasPrefix("TERM=") }) { set("TERM=xterm") }
        if !env.contains(where: { $0.hasPrefix("HOME=") }) { set("HOME=\(resolved.home)") }

        // Working directory.
        let cwd = o.workdir ?? (bundle?.cwd.isEmpty == false ? bundle!.cwd : image.config.workingDir)
        let workdir = cwd.isEmpty ? "/" : cwd
        guard workdir.hasPrefix("/") else {
            throw SwvmError(.invalidArgument, "the working directory '\(workdir)' is invalid, it needs to be an absolute path")
        }

        var process = ProcessSpec(args: args, env: env, cwd: workdir, uid: resolved.uid, gid: resolved.gid,
                                  additionalGids: resolved.additionalGids, user: userText.isEmpty ? "0" : userText)
        process.rlimits = (bundle?.rlimits ?? []) + (try o.ulimits.map(Rlimit.init(docker:)))

        // Confinement.
        let caps = try Capabilities.apply(base: bundle?.capabilities ?? Capabilities.dockerDefault, add: o.capAdd, drop: o.capDrop)
        var seccomp: SeccompProfile? = DefaultSeccompProfile.profile(capabilities: caps)
        if let s = bundle?.seccomp {
            seccomp = try SeccompProfile.parse(s, capabilities: caps, context: "config.json linux.seccomp")
        }
        var noNewPrivileges = bundle?.noNewPrivileges ?? true
        for opt in o.securityOpts {
            let sep = opt.contains("=") ? "=" : ":"
            let parts = opt.split(separator: Character(sep), maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            switch parts[0] {
            case "seccomp":
                guard parts.count == 2, !parts[1].isEmpty else { throw SwvmError(.invalidArgument, "--security-opt seccomp needs =PROFILE.json or =unconfined") }
                if parts[1] == "unconfined" {
                    seccomp = nil
                } else {
                    let text = try readOptionFile(parts[1], option: "--security-opt seccomp=")
                    let json: JSON
                    do { json = try JSON.parse(text) } catch let e as JSON.ParseError {
                        throw SwvmError(.invalidArgument, "seccomp profile \(parts[1]): invalid JSON: \(e)")
                    }
                    seccomp = try SeccompProfile.parse(json, capabilities: caps, context: "seccomp profile \(parts[1])")
                }
            case "no-new-privileges":
                guard parts.count == 1 || ["true", "false"].contains(parts[1]) else {
                    throw SwvmError(.invalidArgument, "--security-opt '\(opt)': no-new-privileges takes true or false")
                }
                noNewPrivileges = parts.count == 1 || parts[1] == "true"
            case "":
                throw SwvmError(.invalidArgument, "--security-opt '\(opt)': empty option (swvm knows seccomp= and no-new-privileges)")
            default:
                throw SwvmError(.unsupported, "--security-opt '\(opt)' is not supported (swvm knows seccomp= and no-new-privileges)")
            }
        }

        var spec = RunSpec(id: id, rootfs: image.rootfs, process: process, hostname: hostname,
                           capabilities: caps, seccomp: seccomp)
        spec.noNewPrivileges = noNewPrivileges
        spec.readOnlyRoot = o.readOnly || (bundle?.readOnlyRoot ?? false)
        spec.terminal = o.tty
        spec.interactive = o.interactive
        if let b = bundle {
            if let m = b.maskedPaths { spec.maskedPaths = m }
            if let r = b.readonlyPaths { spec.readonlyPaths = r }
            spec.resources = b.resources
            spec.mounts = b.mounts
        }

        // Mounts.
        for v in o.volumes { spec.mounts.append(try volume(v)) }
        for m in o.mounts { spec.mounts.append(try mount(m)) }
        for t in o.tmpfs { spec.mounts.append(try tmpfs(t)) }

        // Limits.
        try applyLimits(o, to: &spec.resources)

        guard let mode = NetworkMode(rawValue: o.network) else {
            throw SwvmError(.invalidArgument, "--network '\(o.network)': swvm supports none, bridge and host")
        }
        spec.network = mode
        spec.networkSettings.publish = try o.publish.map(PortMapping.init(parsing:))
        spec.networkSettings.dns = try o.dns.map(NetworkSettings.parseDNS)
        spec.networkSettings.extraHosts = try o.addHosts.map(NetworkSettings.parseHost)
        if !spec.networkSettings.publish.isEmpty && mode != .bridge {
            throw SwvmError(.invalidArgument, "-p needs --network bridge (the run has no address to publish from with --network \(o.network))")
        }
        if let u = o.userns {
            spec.userNamespace = try userNamespace(u)
        }
        spec.initProcess = o.initProcess
        if let t = o.stopTimeout {
            guard let v = Double(t), v >= 0, v <= 86400 else {
                throw SwvmError(.invalidArgument, "--stop-timeout '\(t)': expected a number of seconds")
            }
            spec.stopTimeout = v
        }
        return spec
    }

    /// The kernel's PID_MAX_LIMIT: pids.max takes nothing larger.
    static let maxPids: Int64 = 4_194_304
    /// The smallest CPU quota the kernel takes is 1 ms per period.
    static let minCPUs = 0.01

    /// --memory, --cpus and --pids-limit, checked against what the kernel
    /// and the host accept, so a bad value names its option instead of
    /// failing later in a cgroup write.
    static func applyLimits(_ o: RunOptions, to r: inout ResourceLimits) throws {
        if let m = o.memory {
            let bytes: UInt64
            do { bytes = try ByteSize.parse(m) } catch let e as SwvmError { throw SwvmError(e.code, "--memory: \(e.message)") }
            guard bytes >= 6 << 20 else { throw SwvmError(.invalidArgument, "--memory \(m): the minimum is 6 MiB") }
            r.memory = bytes
        }
        if let c = o.cpus {
            let host = HostResources.onlineCPUs
            guard let v = Double(c), v.isFinite, v >= minCPUs else {
                throw SwvmError(.invalidArgument, "--cpus '\(c)': expected a number of CPUs from \(minCPUs) to \(host) (the host's online CPUs)")
            }
            guard v <= Double(host) else {
                throw SwvmError(.invalidArgument, "--cpus \(c): the host has \(host) online CPU\(host == 1 ? "" : "s")")
            }
            r.cpuQuota = Int64((v * Double(r.cpuPeriod)).rounded())
        }
        if let p = o.pidsLimit {
            guard p >= -1, p <= maxPids else {
                throw SwvmError(.invalidArgument, "--pids-limit \(p): expected 1 to \(maxPids) (the kernel's limit), or 0 or -1 for unlimited")
            }
            r.pids = p > 0 ? p : nil
        }
    }

    /// A file named by an option, read with the option and the file in any error.
    static func readOptionFile(_ path: String, option: String) throws -> [UInt8] {
        guard let st = FS.stat(path) else { throw SwvmError(.notFound, "\(option)\(path): no such file") }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw SwvmError(.invalidArgument, "\(option)\(path): is \(RootedPath.fileTypeName(st.st_mode & S_IFMT)), not a file")
        }
        do { return try FS.readFile(path, limit: 4 << 20) } catch let e as SwvmError {
            throw SwvmError(e.code, "\(option)\(path): \(e.message)")
        }
    }

    static func readEnvFile(_ path: String) throws -> String {
        String(decoding: try readOptionFile(path, option: "--env-file "), as: UTF8.self)
    }

    static func envEntry(_ text: String, hostEnvironment: (String) -> String?, source: String) throws -> String? {
        let parts = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        let key = String(parts[0])
        guard !key.isEmpty, !key.contains(" "), !key.contains("\0") else {
            throw SwvmError(.invalidArgument, "\(source): invalid environment variable '\(text)'")
        }
        if parts.count == 2 { return text }
        // KEY alone: the host's value, or nothing if it is unset (Docker).
        return hostEnvironment(key).map { "\(key)=\($0)" }
    }

    /// -v HOST:CONTAINER[:ro|rw]
    static func volume(_ text: String) throws -> MountSpec {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2 || parts.count == 3 else {
            throw SwvmError(.invalidArgument, "-v '\(text)': expected HOST:CONTAINER[:ro]")
        }
        let (host, dest) = (parts[0], parts[1])
        guard host.hasPrefix("/") else {
            throw SwvmError(.unsupported, "-v '\(text)': named volumes are not supported; give an absolute host path")
        }
        guard dest.hasPrefix("/") else { throw SwvmError(.invalidArgument, "-v '\(text)': the container path must be absolute") }
        var ro = false
        if parts.count == 3 {
            for opt in parts[2].split(separator: ",") {
                switch opt {
                case "ro": ro = true
                case "rw": ro = false
                case "z", "Z", "private", "rprivate": break
                default: throw SwvmError(.invalidArgument, "-v '\(text)': unknown option '\(opt)'")
                }
            }
        }
        if !FS.exists(host) { try FS.makeDirectories(host) }   // as Docker does for -v
        return MountSpec(kind: .bind(source: try FS.realPath(host)), destination: dest, readOnly: ro)
    }

    /// --mount type=bind,source=HOST,target=CTR[,readonly] or
    /// --mount type=tmpfs,target=CTR[,tmpfs-size=N][,tmpfs-mode=M][,readonly]
    /// (Docker's keys and aliases). Unlike -v, a bind source must exist.
    static func mount(_ text: String) throws -> MountSpec {
        var type: String?, source: String?, target: String?, readOnly = false
        var tmpfsOptions: [String] = []
        for field in text.split(separator: ",", omittingEmptySubsequences: false).map(String.init) {
            let kv = field.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            let key = kv[0], value = kv.count == 2 ? kv[1] : nil
            switch key {
            case "type": type = value
            case "source", "src": source = value
            case "target", "destination", "dst": target = value
            case "readonly", "ro":
                switch value {
                case nil, "true", "1": readOnly = true
                case "false", "0": readOnly = false
                default: throw SwvmError(.invalidArgument, "--mount '\(text)': \(key) takes true or false, not '\(value!)'")
                }
            case "bind-propagation" where ["private", "rprivate"].contains(value ?? ""): break
            case "tmpfs-size" where value != nil: tmpfsOptions.append("size=\(value!)")
            case "tmpfs-mode" where value != nil: tmpfsOptions.append("mode=\(value!)")
            default: throw SwvmError(.invalidArgument, "--mount '\(text)': unknown or unsupported field '\(field)'")
            }
        }
        guard let target, target.hasPrefix("/") else {
            throw SwvmError(.invalidArgument, "--mount '\(text)': target= must be an absolute path")
        }
        switch type {
        case "bind":
            guard let source, source.hasPrefix("/") else {
                throw SwvmError(.invalidArgument, "--mount '\(text)': source= must be an absolute host path")
            }
            guard FS.exists(source) else { throw SwvmError(.notFound, "--mount '\(text)': bind source path does not exist: \(source)") }
            guard tmpfsOptions.isEmpty else { throw SwvmError(.invalidArgument, "--mount '\(text)': tmpfs-* fields need type=tmpfs") }
            return MountSpec(kind: .bind(source: try FS.realPath(source)), destination: target, readOnly: readOnly)
        case "tmpfs":
            guard source == nil else { throw SwvmError(.invalidArgument, "--mount '\(text)': a tmpfs has no source") }
            let options = tmpfsOptions + (readOnly ? ["ro"] : [])
            return try tmpfs(options.isEmpty ? target : "\(target):\(options.joined(separator: ","))")
        default:
            throw SwvmError(.unsupported, "--mount '\(text)': type must be bind or tmpfs (named volumes are not supported)")
        }
    }

    /// --tmpfs PATH[:OPTIONS]; Docker's defaults are rw,noexec,nosuid,size=64m.
    static func tmpfs(_ text: String) throws -> MountSpec {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let dest = parts[0]
        guard dest.hasPrefix("/") else { throw SwvmError(.invalidArgument, "--tmpfs '\(text)': the path must be absolute") }
        var opts = ["noexec", "nosuid", "nodev", "size=65536k"]
        var ro = false
        if parts.count == 2 {
            for o in parts[1].split(separator: ",").map(String.init) {
                switch o {
                case "ro": ro = true
                case "rw": ro = false
                case "exec": opts.removeAll { $0 == "noexec" }
                case "suid": opts.removeAll { $0 == "nosuid" }
                case "dev": opts.removeAll { $0 == "nodev" }
                case "noexec", "nosuid", "nodev": if !opts.contains(o) { opts.append(o) }
                default:
                    guard o.hasPrefix("size=") || o.hasPrefix("mode=") || o.hasPrefix("uid=") || o.hasPrefix("gid=") || o.hasPrefix("nr_inodes=") else {
                        throw SwvmError(.invalidArgument, "--tmpfs '\(text)': unknown option '\(o)'")
                    }
                    let key = o.split(separator: "=").first!
                    opts.removeAll { $0.hasPrefix(key + "=") }
                    opts.append(o)
                }
            }
        }
        return MountSpec(kind: .tmpfs, destination: dest, readOnly: ro, options: opts)
    }

    /// --userns host | auto | UID:GID:SIZE (container root -> host UID).
    static func userNamespace(_ text: String) throws -> UserNamespaceMapping? {
        switch text {
        case "", "host": return nil
        case "auto": return UserNamespaceMapping(hostUID: 100_000, hostGID: 100_000, size: 65536)
        default:
            let p = text.split(separator: ":").compactMap { UInt32($0) }
            guard p.count == 3, p[2] > 0 else {
                throw SwvmError(.invalidArgument, "--userns '\(text)': expected host, auto or HOSTUID:HOSTGID:SIZE")
            }
            // The last host id mapped: no wrap, and never (uid_t)-1.
            guard UInt64(max(p[0], p[1])) + UInt64(p[2]) <= UInt64(IDNumber.max) + 1 else {
                throw SwvmError(.invalidArgument, "--userns '\(text)': the mapped host ids go past \(IDNumber.max)")
            }
            return UserNamespaceMapping(hostUID: p[0], hostGID: p[1], size: p[2])
        }
    }
}

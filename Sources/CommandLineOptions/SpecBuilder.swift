#if canImport(Glibc)
import Glibc
#endif
import OCIImage
import RuntimeSpec
import Seccomp
import SwvmBase

/// Turns an image and the command line into a RunSpec, with Docker's
/// precedence rules: COMMAND replaces the image's Cmd, --entrypoint
/// replaces its Entrypoint (and drops its Cmd), -e and --env-file add to
/// and override its Env, -w and -u replace WorkingDir and User.
public enum SpecBuilder {
    public static let defaultPath = DefaultSearchPath.environment

    /// The spec of one run: each step below reads the options of one job,
    /// in the order their errors are reported.
    /// `id`: a detached run's, chosen before its monitor builds the spec again.
    public static func build(image: ResolvedImage, command: [String] = [], options o: RunOptions, id: String = randomHex(32),
                             hostEnvironment: (String) -> String? = FS.environment) throws -> RunSpec {
        let bundle = try image.bundleConfig.map { try BundleProcess(json: $0) }
        let args = try arguments(image: image, bundle: bundle, command: command, options: o)
        let (user, userText) = try user(image: image, bundle: bundle, options: o)
        let hostname = try hostname(id: id, bundle: bundle, options: o)
        let env = try environment(image: image, bundle: bundle, hostname: hostname, home: user.home, options: o,
                                  hostEnvironment: hostEnvironment)
        var process = ProcessSpec(args: args, env: env, cwd: try workdir(image: image, bundle: bundle, options: o),
                                  uid: user.uid, gid: user.gid, additionalGids: user.additionalGids,
                                  user: userText.isEmpty ? "0" : userText)
        process.rlimits = (bundle?.rlimits ?? []) + (try o.ulimit.map(Rlimit.init(docker:)))

        let caps = try Capabilities.apply(base: bundle?.capabilities ?? Capabilities.dockerDefault, add: o.capAdd, drop: o.capDrop)
        let security = try securityOptions(bundle: bundle, capabilities: caps, options: o)
        var spec = RunSpec(id: id, rootfs: image.rootfs, process: process, hostname: hostname,
                           capabilities: caps, seccomp: security.seccomp)
        spec.noNewPrivileges = security.noNewPrivileges
        spec.readOnlyRoot = o.readOnly || (bundle?.readOnlyRoot ?? false)
        spec.terminal = o.tty
        spec.interactive = o.interactive
        if let b = bundle {
            if let m = b.maskedPaths { spec.maskedPaths = m }
            if let r = b.readonlyPaths { spec.readonlyPaths = r }
            spec.resources = b.resources
            spec.mounts = b.mounts
        }
        spec.mounts += try mounts(o)
        try applyLimits(o, to: &spec.resources)
        try applyNetwork(o, to: &spec)
        try applyProcessHandling(o, to: &spec)
        return spec
    }

    /// COMMAND, --entrypoint, then a bundle's args, then the image's Entrypoint and Cmd.
    static func arguments(image: ResolvedImage, bundle: BundleProcess?, command: [String], options o: RunOptions) throws -> [String] {
        let args: [String]
        if let ep = o.entrypoint {
            args = (ep.isEmpty ? [] : [ep]) + command
        } else if !command.isEmpty {
            args = image.config.entrypoint + command
        } else if let b = bundle, !b.args.isEmpty {
            args = b.args
        } else {
            args = image.config.entrypoint + image.config.cmd
        }
        guard !args.isEmpty else {
            throw SwvmError(.invalidArgument, "no command specified: the image \(image.name) has no Entrypoint or Cmd; give one after '--'")
        }
        return args
    }

    /// -u, else a bundle's user, else the image's User, resolved against the
    /// image's /etc/passwd and /etc/group; also the text the user gave.
    static func user(image: ResolvedImage, bundle: BundleProcess?, options o: RunOptions) throws -> (UserDatabase.Resolved, String) {
        let (userText, userSource) = o.user.map { ($0, "-u") }
            ?? (bundle?.user.isEmpty == false ? (bundle!.user, "config.json process.user.username") : (image.config.user, "the image's User"))
        let users = try UserDatabase(rootfs: image.rootfs)
        if o.user == nil, let b = bundle, let uid = b.uid {
            return (.init(uid: uid, gid: b.gid ?? 0, additionalGids: b.additionalGids, home: "/"), userText)
        }
        return (try users.resolve(userText, source: userSource), userText)
    }

    static func hostname(id: String, bundle: BundleProcess?, options o: RunOptions) throws -> String {
        let hostname = o.hostname ?? bundle?.hostname ?? String(id.prefix(12))
        guard hostname.utf8.count <= 64, !hostname.contains("/"), !hostname.contains("\0") else {
            throw SwvmError(.invalidArgument, "--hostname '\(hostname)' is not a valid host name")
        }
        return hostname
    }

    /// The image's (or bundle's) Env, then HOSTNAME, --env-file and -e in
    /// that order (a later entry replaces an earlier one of the same key),
    /// then TERM (with -t) and HOME where the image set none.
    static func environment(image: ResolvedImage, bundle: BundleProcess?, hostname: String, home: String,
                            options o: RunOptions, hostEnvironment: (String) -> String?) throws -> [String] {
        var env = bundle?.env.isEmpty == false ? bundle!.env : image.config.env
        func set(_ entry: String) {
            let key = entry.split(separator: "=", maxSplits: 1).first.map(String.init) ?? entry
            env.removeAll { $0 == key || $0.hasPrefix(key + "=") }
            env.append(entry)
        }
        if !env.contains(where: { $0.hasPrefix("PATH=") }) { env.insert(defaultPath, at: 0) }
        set("HOSTNAME=\(hostname)")
        for file in o.envFile {
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
        if !env.contains(where: { $0.hasPrefix("HOME=") }) { set("HOME=\(home)") }
        return env
    }

    static func workdir(image: ResolvedImage, bundle: BundleProcess?, options o: RunOptions) throws -> String {
        let cwd = o.workdir ?? (bundle?.cwd.isEmpty == false ? bundle!.cwd : image.config.workingDir)
        let workdir = cwd.isEmpty ? "/" : cwd
        guard workdir.hasPrefix("/") else {
            throw SwvmError(.invalidArgument, "the working directory '\(workdir)' is invalid, it needs to be an absolute path")
        }
        return workdir
    }

    /// The seccomp profile (the default for the capabilities, a bundle's,
    /// or --security-opt seccomp=) and no_new_privs.
    static func securityOptions(bundle: BundleProcess?, capabilities caps: Set<String>,
                                options o: RunOptions) throws -> (seccomp: SeccompProfile?, noNewPrivileges: Bool) {
        var seccomp: SeccompProfile? = DefaultSeccompProfile.profile(capabilities: caps)
        if let s = bundle?.seccomp {
            seccomp = try SeccompProfile.parse(s, capabilities: caps, context: "config.json linux.seccomp")
        }
        var noNewPrivileges = bundle?.noNewPrivileges ?? true
        for opt in o.securityOpt {
            switch try securityOpt(opt, capabilities: caps) {
            case .seccomp(let profile): seccomp = profile
            case .noNewPrivileges(let on): noNewPrivileges = on
            }
        }
        return (seccomp, noNewPrivileges)
    }

    /// -v, --mount and --tmpfs, in that order.
    static func mounts(_ o: RunOptions) throws -> [MountSpec] {
        try o.volume.map(volume) + o.mount.map(mount) + o.tmpfs.map(tmpfs)
    }

    /// --network, -p, --dns and --add-host.
    static func applyNetwork(_ o: RunOptions, to spec: inout RunSpec) throws {
        if o.network.hasPrefix("ns:") {
            // podman's form: a network namespace by path (VMs only).
            let path = String(o.network.dropFirst(3))
            guard path.hasPrefix("/") else {
                throw SwvmError(.invalidArgument, "--network '\(o.network)': ns: takes the absolute path of a network namespace, e.g. ns:/run/netns/NAME")
            }
            spec.network = .namespace
            spec.networkNamespace = path
        } else if let mode = NetworkMode(rawValue: o.network), mode != .namespace {
            spec.network = mode
        } else {
            throw SwvmError(.invalidArgument, "--network '\(o.network)': swvm supports none, bridge, host and ns:PATH")
        }
        let mode = spec.network
        spec.networkSettings.publish = try o.publish.map(PortMapping.init(parsing:))
        spec.networkSettings.dns = try o.dns.map(NetworkSettings.parseDNS)
        spec.networkSettings.extraHosts = try o.addHost.map(NetworkSettings.parseHost)
        if !spec.networkSettings.publish.isEmpty && mode != .bridge {
            throw SwvmError(.invalidArgument, "-p needs --network bridge (the run has no address to publish from with --network \(o.network))")
        }
    }

    /// --userns, --init and --stop-timeout.
    static func applyProcessHandling(_ o: RunOptions, to spec: inout RunSpec) throws {
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
    }

    /// The kernel's PID_MAX_LIMIT: pids.max takes nothing larger.
    static let maxPids: Int64 = 4_194_304

    /// --memory, --cpus and --pids-limit, checked against what the kernel
    /// and the host accept, so a bad value names its option instead of
    /// failing later in a cgroup write.
    static func applyLimits(_ o: RunOptions, to r: inout ResourceLimits) throws {
        if let bytes = try o.size.memoryBytes() { r.memory = bytes }
        if let v = try o.size.cpuCount() { r.cpuQuota = Int64((v * Double(r.cpuPeriod)).rounded()) }
        if let p = o.pidsLimit {
            guard p >= -1, p <= maxPids else {
                throw SwvmError(.invalidArgument, "--pids-limit \(p): expected 1 to \(maxPids) (the kernel's limit), or 0 or -1 for unlimited")
            }
            r.pids = p > 0 ? p : nil
        }
    }
}

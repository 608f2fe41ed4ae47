#if canImport(Glibc)
import Glibc
#endif
import RuntimeSpec
import Seccomp
import SwvmBase

/// Each option's value read into the spec's terms: Docker's syntax, and a
/// clear error naming the option and the value.
extension SpecBuilder {
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

extension SpecBuilder {
    enum SecurityOpt {
        case seccomp(SeccompProfile?)
        case noNewPrivileges(Bool)
    }

    /// --security-opt seccomp=PROFILE.json|unconfined, no-new-privileges[=true|false]
    /// (Docker also takes ':' as the separator).
    static func securityOpt(_ opt: String, capabilities caps: Set<String>) throws -> SecurityOpt {
        let sep = opt.contains("=") ? "=" : ":"
        let parts = opt.split(separator: Character(sep), maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        switch parts[0] {
        case "seccomp":
            guard parts.count == 2, !parts[1].isEmpty else { throw SwvmError(.invalidArgument, "--security-opt seccomp needs =PROFILE.json or =unconfined") }
            if parts[1] == "unconfined" { return .seccomp(nil) }
            let text = try readOptionFile(parts[1], option: "--security-opt seccomp=")
            let json: JSON
            do { json = try JSON.parse(text) } catch let e as JSON.ParseError {
                throw SwvmError(.invalidArgument, "seccomp profile \(parts[1]): invalid JSON: \(e)")
            }
            return .seccomp(try SeccompProfile.parse(json, capabilities: caps, context: "seccomp profile \(parts[1])"))
        case "no-new-privileges":
            guard parts.count == 1 || ["true", "false"].contains(parts[1]) else {
                throw SwvmError(.invalidArgument, "--security-opt '\(opt)': no-new-privileges takes true or false")
            }
            return .noNewPrivileges(parts.count == 1 || parts[1] == "true")
        case "":
            throw SwvmError(.invalidArgument, "--security-opt '\(opt)': empty option (swvm knows seccomp= and no-new-privileges)")
        default:
            throw SwvmError(.unsupported, "--security-opt '\(opt)' is not supported (swvm knows seccomp= and no-new-privileges)")
        }
    }
}

extension SizeOptions {
    /// The smallest CPU quota the kernel takes is 1 ms per period.
    static let minCPUs = 0.01

    /// --memory in bytes, at least 6 MiB (less cannot start a run).
    public func memoryBytes() throws -> UInt64? {
        guard let m = memory else { return nil }
        let bytes: UInt64
        do { bytes = try ByteSize.parse(m) } catch let e as SwvmError { throw SwvmError(e.code, "--memory: \(e.message)") }
        guard bytes >= 6 << 20 else { throw SwvmError(.invalidArgument, "--memory \(m): the minimum is 6 MiB") }
        return bytes
    }

    /// --cpus as a number of CPUs, at most the host's online CPUs.
    public func cpuCount() throws -> Double? {
        guard let c = cpus else { return nil }
        let host = HostResources.onlineCPUs
        guard let v = Double(c), v.isFinite, v >= Self.minCPUs else {
            throw SwvmError(.invalidArgument, "--cpus '\(c)': expected a number of CPUs from \(Self.minCPUs) to \(host) (the host's online CPUs)")
        }
        guard v <= Double(host) else {
            throw SwvmError(.invalidArgument, "--cpus \(c): the host has \(host) online CPU\(host == 1 ? "" : "s")")
        }
        return v
    }
}

extension PortMapping {
    /// -p [IP:]HOSTPORT:PORT[/tcp|udp]
    public init(parsing text: String) throws {
        func bad(_ why: String) -> SwvmError {
            SwvmError(.invalidArgument, "-p '\(text)': \(why); expected [IP:]HOSTPORT:PORT[/tcp|udp]")
        }
        var body = Substring(text)
        var proto = Proto.tcp
        if let slash = body.lastIndex(of: "/") {
            guard let p = Proto(rawValue: String(body[body.index(after: slash)...])) else { throw bad("the protocol must be tcp or udp") }
            proto = p
            body = body[..<slash]
        }
        let parts = body.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2 || parts.count == 3 else { throw bad("a host port and a port are needed") }
        func number(_ s: String, _ what: String) throws -> UInt16 {
            guard !s.isEmpty, s.allSatisfy({ $0.isASCII && $0.isNumber }), let v = UInt16(s), v > 0 else { throw bad("\(what) '\(s)' is not a port number (1-65535)") }
            return v
        }
        var hostAddress: IPv4Address?
        if parts.count == 3 {
            guard let a = IPv4Address(parts[0]) else { throw bad("'\(parts[0])' is not an IPv4 address") }
            hostAddress = a.value == 0 ? nil : a
        }
        self.init(hostAddress: hostAddress, hostPort: try number(parts[parts.count - 2], "the host port"),
                  port: try number(parts[parts.count - 1], "the port"), proto: proto)
    }
}

extension NetworkSettings {
    public static func parseDNS(_ text: String) throws -> IPv4Address {
        guard let a = IPv4Address(text) else { throw SwvmError(.invalidArgument, "--dns '\(text)': expected an IPv4 address") }
        return a
    }

    /// NAME:IP, as Docker's --add-host.
    public static func parseHost(_ text: String) throws -> (name: String, address: IPv4Address) {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2, let a = IPv4Address(parts[1]) else {
            throw SwvmError(.invalidArgument, "--add-host '\(text)': expected NAME:IPV4")
        }
        let name = parts[0]
        guard !name.isEmpty, name.utf8.count <= 253,
              name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == ".") }) else {
            throw SwvmError(.invalidArgument, "--add-host '\(text)': '\(name)' is not a host name")
        }
        return (name, a)
    }
}

extension Rlimit {
    /// --ulimit in Docker's syntax: NAME=SOFT[:HARD], values a number or "unlimited"/-1.
    public init(docker text: String) throws {
        let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { throw SwvmError(.invalidArgument, "--ulimit '\(text)': expected NAME=SOFT[:HARD]") }
        let (name, res) = try Rlimit.lookup(parts[0])
        let values = parts[1].split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard values.count == 1 || values.count == 2 else {
            throw SwvmError(.invalidArgument, "--ulimit '\(text)': expected NAME=SOFT[:HARD]")
        }
        func value(_ s: String) throws -> UInt64 {
            if s == "unlimited" || s == "-1" { return UInt64.max }
            guard let v = UInt64(s) else { throw SwvmError(.invalidArgument, "--ulimit '\(text)': '\(s)' is not a number") }
            return v
        }
        let soft = try value(values[0])
        let hard = values.count == 2 ? try value(values[1]) : soft
        guard soft <= hard else { throw SwvmError(.invalidArgument, "--ulimit '\(text)': soft limit above hard limit") }
        self.init(resource: res, name: name, soft: soft, hard: hard)
    }
}

extension Capabilities {
    /// Applies --cap-add/--cap-drop to a base set, Docker's way ("ALL" in
    /// either list; drops win over adds except when "ALL" is dropped).
    public static func apply(base: Set<String>, add: [String], drop: [String]) throws -> Set<String> {
        func named(_ option: String) -> (String) throws -> String {
            { name in
                do { return try canonical(name) } catch let e as SwvmError { throw SwvmError(e.code, "\(option): \(e.message)") }
            }
        }
        let adds = try add.map(named("--cap-add"))
        let drops = try drop.map(named("--cap-drop"))
        var set = base
        if drops.contains("ALL") { set = [] }
        if adds.contains("ALL") { set = Set(names.prefix(lastCapability + 1)) }
        for a in adds where a != "ALL" { set.insert(a) }
        for d in drops where d != "ALL" { set.remove(d) }
        return set
    }
}

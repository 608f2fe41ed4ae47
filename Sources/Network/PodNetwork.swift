#if canImport(Glibc)
import Glibc
#endif
import CConfinement
import CSyscalls
import NativeThreads
import RuntimeSpec
import SwvmBase

/// A VM in a network namespace that a network plugin made (podman's
/// netavark, CNI, a Kubernetes pod): `--network ns:PATH`, or config.json's
/// network namespace path. As Kata does, the VMM makes a tap in that
/// namespace and joins it to the namespace's interface with tc (an
/// ingress qdisc on each, a mirred redirect each way), and the guest's eth0
/// takes that interface's MAC, addresses, routes and MTU. The interface
/// itself stays as the plugin made it, so the plugin's teardown works.
///
/// What is added is recorded in the run's network record first; the
/// keeper (or the next swvm, after a SIGKILL) removes it by the same code.
/// The tap needs no removal: it is not persistent, so it goes with the
/// VMM's descriptor.
public final class PodNetwork {
    public let namespacePath: String
    /// The tap, open with virtio's header (as NetworkAttachment.openTap).
    public let tap: FileDescriptor
    public let tapName: String
    /// The plugin's interface, as it was found.
    public let interface: PodInterface
    public let settings: NetworkSettings
    public let resolvConf: String

    init(namespacePath: String, tap: FileDescriptor, tapName: String, interface: PodInterface, settings: NetworkSettings) {
        self.namespacePath = namespacePath
        self.tap = tap
        self.tapName = tapName
        self.interface = interface
        self.settings = settings
        resolvConf = settings.resolvConf(hostResolvConf: try? FS.readText("/etc/resolv.conf"))
    }

    /// Joins the namespace at `namespacePath`: its one interface (other
    /// than loopback) is read, a tap named `tapName` is made there and the
    /// two are joined. Call before the VMM's jail (it enters a namespace
    /// and talks netlink). Undone by the run's cleanup (`runDir`'s record).
    public static func attach(namespacePath: String, tapName: String, runDir: String,
                              settings: NetworkSettings = NetworkSettings()) throws -> PodNetwork {
        let ns = try NetworkNamespace(path: namespacePath)
        let (nlFD, tun) = try ns.openSockets()
        let nl = Netlink(nlFD, place: "the network namespace \(namespacePath)")
        let interface = try PodInterface.read(nl, namespace: namespacePath)
        try TapDevice.create(tun, name: tapName)
        do {
            try connect(nl, interface, tapName: tapName, ns: ns, runDir: runDir)
        } catch {
            NetworkAttachment.removeRecorded(runDir: runDir)
            throw error
        }
        return PodNetwork(namespacePath: namespacePath, tap: tun, tapName: tapName, interface: interface, settings: settings)
    }

    /// The tap up with the interface's MTU, then the redirects both ways;
    /// the interface's ingress qdisc is recorded as added only when it
    /// was not there before (a plugin's stays).
    static func connect(_ nl: Netlink, _ i: PodInterface, tapName: String, ns: NetworkNamespace, runDir: String) throws {
        let tapIndex = try Links.index(nl, name: tapName)
        try Links.setUp(nl, index: tapIndex, name: tapName, mtu: i.mtu)
        try TrafficControl.addIngress(nl, ifindex: tapIndex, name: tapName)
        try TrafficControl.addRedirect(nl, from: tapIndex, fromName: tapName, to: i.index, toName: i.name)
        if try !TrafficControl.hasIngress(nl, ifindex: i.index) {
            try NetworkAttachment.append(runDir, "podqdisc \(ns.identity) \(i.index) \(ns.path)")
            try TrafficControl.addIngress(nl, ifindex: i.index, name: i.name)
        }
        try NetworkAttachment.append(runDir, "podfilter \(ns.identity) \(i.index) \(ns.path)")
        try TrafficControl.addRedirect(nl, from: i.index, fromName: i.name, to: tapIndex, toName: tapName)
    }

    // MARK: the guest's eth0

    /// eth0 as the run settings carry it (CFG_NET_IF): the first address,
    /// the default route's gateway (0.0.0.0: none), MTU and MAC.
    public var guestInterface: swvm_net_if {
        var n = swvm_net_if()
        let first = interface.addresses[0]
        withUnsafeMutableBytes(of: &n.addr) { $0.copyBytes(from: first.address.bytes) }
        n.prefix = UInt8(first.prefix)
        withUnsafeMutableBytes(of: &n.gateway) { $0.copyBytes(from: (interface.defaultGateway ?? IPv4Address(0)).bytes) }
        n.mtu = UInt16(clamping: interface.mtu)
        withUnsafeMutableBytes(of: &n.mac) { $0.copyBytes(from: interface.mac.prefix(6)) }
        return n
    }

    /// The address, further addresses, routes and resolv.conf in `spec`,
    /// for the run settings.
    public func apply(to spec: inout RunSpec) {
        spec.networkAddress = interface.addresses[0].address
        spec.podAddresses = Array(interface.addresses.dropFirst())
        spec.podRoutes = interface.routes
        spec.resolvConf = resolvConf
    }

    // MARK: cleanup

    /// Removes what a `podqdisc` or `podfilter` record line names, if the
    /// namespace at its path is still the same one (a namespace gone takes
    /// its qdiscs with it). Failures are warnings: cleanup goes on.
    static func removeRecorded(_ fields: [String]) {
        guard fields.count >= 5, let index = Int32(fields[3]) else { return }
        let path = fields[4...].joined(separator: " ")
        guard let ns = try? NetworkNamespace(path: path), ns.identity == "\(fields[1]) \(fields[2])" else { return }
        do {
            let (nlFD, _) = try ns.openSockets(tun: false)
            let nl = Netlink(nlFD, place: "the network namespace \(path)")
            if fields[0] == "podfilter" {
                try TrafficControl.removeRedirect(nl, ifindex: index)
            } else {
                try TrafficControl.removeIngress(nl, ifindex: index)
            }
        } catch {
            Log.warning("cleaning up the pod network in \(path): \(error)")
        }
    }
}

/// The interface a network plugin put in the namespace.
public struct PodInterface: Sendable {
    public var index: Int32
    public var name: String
    public var mac: [UInt8]
    public var mtu: UInt32
    /// IPv4 addresses, the first being the primary.
    public var addresses: [IPv4InterfaceAddress] = []
    public var defaultGateway: IPv4Address?
    /// Routes other than the default and the addresses' own subnets:
    /// those on the link first, so that a gateway they reach can be used.
    public var routes: [IPv4Route] = []

    static func read(_ nl: Netlink, namespace: String) throws -> PodInterface {
        var i = try Links.theInterface(nl, namespace: namespace)
        let (v4, v6) = try Addresses.of(nl, index: i.index)
        guard !v4.isEmpty else {
            throw SwvmError(.invalidArgument, "the network namespace \(namespace): its interface \(i.name) has no IPv4 address (a VM's guest kernel has IPv4 only)")
        }
        if v6 > 0 {
            Log.warning("the network namespace \(namespace): \(i.name)'s IPv6 addresses are not given to the VM (its guest kernel has IPv4 only)")
        }
        guard v4.count <= Int(SWVM_MAX_NET_ADDRS) else {
            throw SwvmError(.unsupported, "the network namespace \(namespace): \(i.name) has \(v4.count) IPv4 addresses; a VM takes at most \(SWVM_MAX_NET_ADDRS)")
        }
        i.addresses = v4
        (i.defaultGateway, i.routes) = try Routes.of(nl, index: i.index, namespace: namespace)
        guard i.routes.count <= Int(SWVM_MAX_NET_ROUTES) else {
            throw SwvmError(.unsupported, "the network namespace \(namespace): \(i.name) has \(i.routes.count) routes; a VM takes at most \(SWVM_MAX_NET_ROUTES)")
        }
        return i
    }
}

/// A network namespace file (/run/netns/NAME, /proc/PID/ns/net), open.
struct NetworkNamespace {
    let path: String
    let fd: FileDescriptor
    /// Its st_dev and st_ino: the namespace's identity, so that cleanup
    /// never acts on another namespace mounted at the same path later.
    let identity: String

    init(path: String) throws {
        self.path = path
        let raw = open(path, O_RDONLY | O_CLOEXEC)
        guard raw >= 0 else {
            let e = errno
            if e == ENOENT { throw SwvmError(.notFound, "the network namespace \(path) does not exist") }
            throw SwvmError.errno("open the network namespace \(path)", e)
        }
        fd = FileDescriptor(raw, name: path)
        // NS_GET_NSTYPE: only an nsfs file answers it.
        let type = sys_ioctl_int(raw, 0xb703, 0)
        guard type == 0x4000_0000 /* CLONE_NEWNET */ else {
            throw SwvmError(.invalidArgument, "\(path) is not a network namespace (expected a file such as /run/netns/NAME or /proc/PID/ns/net)")
        }
        var st = stat()
        try sys("fstat \(path)") { fstat(raw, &st) }
        identity = "\(st.st_dev) \(st.st_ino)"
    }

    /// Runs `body` on a thread of its own that joins this namespace (setns
    /// moves only the calling thread) and then ends, so nothing else of
    /// swvm ever runs in the namespace. `body` returns its error's text.
    func onThreadInside(_ body: @escaping @Sendable () -> String?) throws {
        let failure = Locked<String?>(nil)
        let nsfd = fd.raw, path = self.path
        let thread = try NativeThread(name: "netns") {
            guard sys_setns(nsfd, 0x4000_0000 /* CLONE_NEWNET */) == 0 else {
                let e = errno
                failure.with { $0 = "setns to the network namespace \(path): \(String(cString: strerror(e)))" }
                return
            }
            let error = body()
            failure.with { $0 = error }
        }
        thread.join()
        if let error = failure.current { throw SwvmError(.systemCall, error) }
    }

    /// A netlink socket and (with `tun`) an open /dev/net/tun, both in this
    /// namespace (opened on a thread inside it). A tun descriptor belongs
    /// to the namespace it was opened in, wherever TUNSETIFF is called.
    func openSockets(tun: Bool = true) throws -> (FileDescriptor, FileDescriptor) {
        let opened = Locked<(netlink: Int32, tun: Int32)>((-1, -1))
        let path = self.path
        let error: SwvmError?
        do {
            try onThreadInside {
                let nl = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0 /* NETLINK_ROUTE */)
                let e1 = errno
                let t = tun ? open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK) : -1
                let e2 = errno
                opened.with { $0 = (nl, t) }
                if nl < 0 { return "a netlink socket in \(path): \(String(cString: strerror(e1)))" }
                if tun && t < 0 { return "open /dev/net/tun in \(path): \(String(cString: strerror(e2)))" }
                return nil
            }
            error = nil
        } catch let e as SwvmError { error = e }
        let r = opened.current
        let netlink = FileDescriptor(r.netlink, name: "a netlink socket in \(path)"), tunFD = FileDescriptor(r.tun, name: "/dev/net/tun")
        if let error { throw error }
        return (netlink, tunFD)
    }

    /// Writes `text` to a file of /proc/sys/net as this namespace has it
    /// (/proc/sys/net shows the namespace of the thread that looks).
    func writeSysctl(_ file: String, _ text: String) throws {
        let path = self.path
        try onThreadInside {
            let fd = open(file, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { return "open \(file) in \(path): \(String(cString: strerror(errno)))" }
            defer { close(fd) }
            let bytes = Array(text.utf8)
            let n = write(fd, bytes, bytes.count)
            return n == bytes.count ? nil : "write \(file) in \(path): \(n < 0 ? String(cString: strerror(errno)) : "short write")"
        }
    }
}

/// What a VM's run settings take from its network, whichever kind it is.
public protocol GuestNetwork: AnyObject {
    /// eth0 (CFG_NET_IF).
    var guestInterface: swvm_net_if { get }
    /// The address and resolv.conf (and a pod's further addresses and
    /// routes) in the RunSpec, for the run settings.
    func apply(to spec: inout RunSpec)
}

extension NetworkAttachment: GuestNetwork {}
extension PodNetwork: GuestNetwork {}

/// A VM's network: with --network bridge an address on swvm0, with
/// ns:PATH the pod's namespace; each with the tap for the VM's virtio-net.
public enum VMNetwork {
    /// nil for --network none. `linkName` is the tap's name.
    public static func prepare(_ spec: RunSpec, runDir: String) throws -> (network: GuestNetwork, tap: FileDescriptor)? {
        if spec.network == .namespace {
            guard let path = spec.networkNamespace else {
                throw SwvmError(.internalError, "a namespace network without the namespace's path")
            }
            let pod = try PodNetwork.attach(namespacePath: path, tapName: "swvm" + spec.id.prefix(8), runDir: runDir,
                                            settings: spec.networkSettings)
            return (pod, pod.tap)
        }
        guard let bridge = try NetworkAttachment.prepare(spec, runDir: runDir) else { return nil }
        return (bridge, try bridge.openTap())
    }
}

#if canImport(Glibc)
import Glibc
#endif
import CacheStore
import CConfinement
import RunSettingsWire
import RuntimeSpec
import Snapshot
import SnapshotCache
import SwvmBase
import Virtio
import VMM
import VMMJail

/// Image templates (issue 22): a second snapshot of a VM, taken at
/// guest-init's template point, after the image's disk is mounted and the
/// workload's namespaces and the fixed mounts of its root (kernel
/// filesystems, devices, tmpfs, masked and read-only paths) are built,
/// before anything of the run itself. A later run whose fixed settings are
/// the same restores it and sends only the per-run ones (MSG_RUN): the
/// command, environment, working directory, host name, entropy, clock,
/// eth0, /etc files, cgroup and rlimits.
///
/// The split of the settings is swvm_config_tag_per_run's (C, one list for
/// both sides); the template's key is a hash of the fixed fields as sent,
/// with the boot snapshot's key (kernel, guest-init, swvm, memory, vCPUs,
/// CPU profile, host CPU) and the image's disk. Templates live beside boot
/// snapshots, as the same files under the same locks and atomic publish
/// (SnapshotCache with another root), and are cache items of kind
/// "template", evicted least recently used first beyond a size bound.
struct Template {
    /// MSG_CONFIG's payload in template mode: the fixed fields and CFG_TEMPLATE.
    let fixedConfig: [UInt8]
    let key: String
    /// Whether the workload's child loads its seccomp filter before the
    /// template point: a plain template (no volume or terminal after it),
    /// a root that stays writable, and a filter that allows every step
    /// after the point. guest-init decides the same with the same C
    /// function on the same fixed settings (swvm_confine_template_exec).
    let seccompInTemplate: Bool
    /// CFG_TEMPLATE's flags, which say how the settings split (MSG_RUN's part).
    let flags: UInt8
    /// The key under which the run that saves this template records the
    /// files its workload reads (RecordedReads); nil when they are recorded.
    var recordReadsKey: String?

    static var root: String { SwvmPaths.templatesDir }

    /// What all templates may take on disk (SWVM_TEMPLATE_CACHE_BYTES, else 2 GiB).
    static var cacheBound: UInt64 {
        FS.environment("SWVM_TEMPLATE_CACHE_BYTES").flatMap { UInt64($0) } ?? (2 << 30)
    }

    /// Why a run cannot use a template, or nil. Volumes (-v), a terminal
    /// (-t) and a pod's network (--network ns:PATH) are the run's: their
    /// share, pty and eth0 come after the restore, so they take templates.
    static func skipReason(_ spec: RunSpec, _ options: VMOptions) -> String? {
        if options.coldBoot { return "--cold-boot" }
        if options.noTemplate { return "--no-template (or an OCI bundle's annotation swvm.vm-template)" }
        return nil
    }

    /// A plain template: no volume (-v) and no terminal (-t) in its runs,
    /// so nothing is mounted in the workload's root after its point.
    static func isPlain(_ spec: RunSpec) -> Bool {
        !spec.terminal && !spec.mounts.contains(where: { if case .bind = $0.kind { return true } else { return false } })
    }

    /// The template a run with these settings uses. `settings`: the run's
    /// MSG_CONFIG payload as it would be sent without a template.
    init(settings: [UInt8], sharedNetwork: Bool, plain: Bool, filter: [UInt8]?, readOnly: Bool, terminal: Bool, initProcess: Bool,
         warmFiles: [String], bootKey: String, disk: String, image: String) {
        var fixed = RunSettings.Fields()
        for f in warmFiles { fixed.add(CFG_WARM_FILE, f) }
        let flags = UInt8((sharedNetwork ? SWVM_TEMPLATE_SHARED_NET : 0) | (plain ? SWVM_TEMPLATE_PLAIN : 0))
        fixed.add(CFG_TEMPLATE, [flags])
        self.flags = flags
        seccompInTemplate = plain && !readOnly && (filter.map { f in
            f.withUnsafeBufferPointer { swvm_seccomp_allows_template_setup($0.baseAddress, UInt32($0.count), terminal ? 1 : 0, initProcess ? 1 : 0) == 1 }
        } ?? false)
        fixedConfig = RunSettings.splitForTemplate(settings).fixed + fixed.bytes
        key = SnapshotCache.key([
            "swvm image template \(SnapshotFile.version) protocol \(GuestProtocol.version)",
            bootKey,
            image,
            Template.diskIdentity(disk),
            SHA256.hash(fixedConfig),
        ])
    }

    /// The files whose page cache a template holds (CFG_WARM_FILE): the
    /// image's own command, found as the child finds it with the default
    /// PATH, and the shell. From the image's config, which its digest
    /// fixes; nothing of the run. SWVM_TEMPLATE_WARM=0: none.
    static func warmFiles(entrypoint: [String], cmd: [String]) -> [String] {
        guard FS.environment("SWVM_TEMPLATE_WARM") != "0" else { return [] }
        var files = ["/bin/sh"]
        if let exe = (entrypoint + cmd).first, !exe.isEmpty {
            if exe.hasPrefix("/") {
                files.append(exe)
            } else if !exe.contains("/") {
                files += DefaultSearchPath.directories.map { $0 + "/" + exe }
            }
        }
        var seen = Set<String>()
        return files.filter { seen.insert($0).inserted }
    }

    /// The image's disk as a template depends on it: the guest has it
    /// mounted, so only that very ext4 will do. Its file, and the
    /// filesystem's UUID (random per mkfs), not its mtime: every run's
    /// CacheItemLock stamps that.
    static func diskIdentity(_ path: String) -> String {
        guard let st = FS.stat(path) else { return "missing \(path)" }
        var uuid = [UInt8](repeating: 0, count: 16)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            _ = pread(fd, &uuid, 16, 1024 + 0x68)   // the superblock's s_uuid
            close(fd)
        }
        return "\(path) \(st.st_dev) \(st.st_ino) \(st.st_size) uuid \(uuid.map { String($0, radix: 16) }.joined())"
    }

    /// An OCI bundle's root template (SWVM_TEMPLATE_OCI_ROOT, `swvm create`
    /// at the VM level): the VM with the bundle's image layers disk mounted,
    /// its upper layer made and `warmFiles` read, before anything of the
    /// container. Its key: the boot snapshot's, the layers disk (as an
    /// image's disk: its file and filesystem UUID, and the layers' key in
    /// its name) and the fixed fields (the upper layer's entries, the warm
    /// files). Every other setting is the run's, so runs that differ in
    /// any of them share it. `settings`: the run's MSG_CONFIG payload as it
    /// would be sent without a template.
    init(ociRoot settings: [UInt8], warmFiles: [String], bootKey: String, disk: String) {
        var fixed = RunSettings.Fields()
        for f in warmFiles { fixed.add(CFG_WARM_FILE, f) }
        flags = UInt8(SWVM_TEMPLATE_OCI_ROOT)
        fixed.add(CFG_TEMPLATE, [flags])
        seccompInTemplate = false
        fixedConfig = RunSettings.splitForTemplate(settings, flags: flags).fixed + fixed.bytes
        key = SnapshotCache.key([
            "swvm OCI root template \(SnapshotFile.version) protocol \(GuestProtocol.version)",
            bootKey,
            Template.diskIdentity(disk),
            SHA256.hash(fixedConfig),
        ])
    }

    /// MSG_RUN's frame: the per-run fields of `settings`.
    func runFrame(_ settings: [UInt8]) -> [UInt8] {
        GuestProtocol.frame(GuestProtocol.run, RunSettings.splitForTemplate(settings, flags: flags).perRun)
    }

    /// Restores the template when there is a good one. A damaged or
    /// mismatched one is reported, removed and rebuilt by this run; one
    /// this host cannot restore is removed too.
    func restore(_ config: MachineConfig) -> (VMRunner.Instance, CacheItemLock)? {
        SnapshotCache.removeStaleTemporaries(root: Template.root)
        let found = SnapshotCache.lookup(key: key, root: Template.root) {
            Log.warning("image template: \($0); making a new one")
        }
        // After the lookup: the one this run holds is in use, never evicted.
        for item in CacheStore.evict(kind: "template", toAtMost: Template.cacheBound) {
            Log.debug("image template evicted (least recently used): \(item.path)")
        }
        var unusable: String?
        if let (snapshot, inUse) = found {
            do {
                let instance = try VMRunner.Instance(config, snapshot: snapshot)
                try instance.machine.restore(snapshot.state, source: "template \(snapshot.directory)")
                Log.debug("restored from template: \(snapshot.directory)")
                return (instance, inUse)
            } catch {
                Log.warning("cannot restore template \(snapshot.directory): \(error); making a new one")
                unusable = snapshot.directory
            }
        }
        // Our hold ended with the scope above.
        if let dir = unusable { SnapshotCache.remove(dir) }
        return nil
    }
}

extension VMRunner {
    /// A session that uses `template`: the disk at READY (or at once, when
    /// restored from the template: the guest has it mounted), the tap and
    /// the volumes' share only after the template point (nothing of them
    /// in a template), the template saved there when this run writes it.
    func wire(_ template: Template, session: Session, disk: BlockDevice.DiskImage, tap: FileDescriptor?,
              volumes: VMVolumes, output: SnapshotOutput?, restored: Bool) {
        let instance = session.instance, none = VMVolumes(shares: [])
        session.template = template
        session.attach = attachDevices(instance, disk: disk, tap: nil, sharing: false, volumes: none)
        session.attachLate = attachDevices(instance, disk: nil, tap: tap, sharing: !volumes.shares.isEmpty, volumes: volumes)
        session.saveTemplate = output.map { saveSnapshot(of: instance, to: $0, label: "template") }
        if restored { instance.disk.attach(disk) }
    }
}

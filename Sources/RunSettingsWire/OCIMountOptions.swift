import CConfinement
import RuntimeSpec
import SwvmBase

/// config.json's mount options as mount(2) and mount_setattr(2) take them,
/// as runc's parseMountOptions reads them: flag words set or clear MS_*
/// flags, propagation words are applied after the mount in order, the
/// recursive words ("rro", "rnosuid"...) become mount attributes, and
/// every other word is filesystem data ("mode=755", "size=64m").
public struct OCIMountOptions: Equatable, Sendable {
    public var flags: UInt32 = 0
    public var propagation: [UInt32] = []
    public var attrSet: UInt32 = 0
    public var attrClear: UInt32 = 0
    public var data: [String] = []

    /// The most propagation words a mount may carry (the wire's limit).
    public static let maxPropagation = Int(SWVM_OCI_MAX_PROP)

    // Linux's values (sys/mount.h, linux/mount.h).
    public static let rdonly: UInt32 = 1, nosuid: UInt32 = 2, nodev: UInt32 = 4, noexec: UInt32 = 8
    public static let synchronous: UInt32 = 16, remount: UInt32 = 32, mandlock: UInt32 = 64, dirsync: UInt32 = 128
    public static let nosymfollow: UInt32 = 256, noatime: UInt32 = 1024, nodiratime: UInt32 = 2048
    public static let bind: UInt32 = 4096, rec: UInt32 = 16384, silent: UInt32 = 32768, posixACL: UInt32 = 1 << 16
    public static let unbindable: UInt32 = 1 << 17, `private`: UInt32 = 1 << 18, slave: UInt32 = 1 << 19
    public static let shared: UInt32 = 1 << 20, relatime: UInt32 = 1 << 21, iversion: UInt32 = 1 << 23
    public static let strictatime: UInt32 = 1 << 24, lazytime: UInt32 = 1 << 25

    /// Words that set (true) or clear (false) a flag.
    static let flagWords: [String: (set: Bool, flag: UInt32)] = [
        "acl": (true, posixACL), "async": (false, synchronous), "atime": (false, noatime), "bind": (true, bind),
        "defaults": (true, 0), "dev": (false, nodev), "diratime": (false, nodiratime), "dirsync": (true, dirsync),
        "exec": (false, noexec), "iversion": (true, iversion), "lazytime": (true, lazytime), "loud": (false, silent),
        "mand": (true, mandlock), "noacl": (false, posixACL), "noatime": (true, noatime), "nodev": (true, nodev),
        "nodiratime": (true, nodiratime), "noexec": (true, noexec), "noiversion": (false, iversion),
        "nolazytime": (false, lazytime), "nomand": (false, mandlock), "norelatime": (false, relatime),
        "nostrictatime": (false, strictatime), "nosuid": (true, nosuid), "nosymfollow": (true, nosymfollow),
        "rbind": (true, bind | rec), "relatime": (true, relatime), "remount": (true, remount), "ro": (true, rdonly),
        "rw": (false, rdonly), "silent": (true, silent), "strictatime": (true, strictatime), "suid": (false, nosuid),
        "symfollow": (false, nosymfollow), "sync": (true, synchronous),
    ]

    static let propagationWords: [String: UInt32] = [
        "private": `private`, "rprivate": `private` | rec, "shared": shared, "rshared": shared | rec,
        "slave": slave, "rslave": slave | rec, "unbindable": unbindable, "runbindable": unbindable | rec,
    ]

    // MOUNT_ATTR_* (linux/mount.h).
    static let attrRdonly: UInt32 = 1, attrNosuid: UInt32 = 2, attrNodev: UInt32 = 4, attrNoexec: UInt32 = 8
    static let attrAtimeMask: UInt32 = 0x70, attrNoatime: UInt32 = 0x10, attrStrictatime: UInt32 = 0x20
    static let attrNodiratime: UInt32 = 0x80, attrNosymfollow: UInt32 = 0x20_0000

    /// Recursive words: (attributes to set, attributes to clear).
    static let recursiveWords: [String: (set: UInt32, clear: UInt32)] = [
        "rro": (attrRdonly, 0), "rrw": (0, attrRdonly), "rnosuid": (attrNosuid, 0), "rsuid": (0, attrNosuid),
        "rnodev": (attrNodev, 0), "rdev": (0, attrNodev), "rnoexec": (attrNoexec, 0), "rexec": (0, attrNoexec),
        "rnodiratime": (attrNodiratime, 0), "rdiratime": (0, attrNodiratime),
        "rrelatime": (0, attrAtimeMask), "rnorelatime": (0, 0), "rnoatime": (attrNoatime, attrAtimeMask),
        "ratime": (0, attrNoatime), "rstrictatime": (attrStrictatime, attrAtimeMask), "rnostrictatime": (0, attrStrictatime),
        "rnosymfollow": (attrNosymfollow, 0), "rsymfollow": (0, attrNosymfollow),
    ]

    /// runc's extensions that swvm accepts without acting on them:
    /// "tmpcopyup" (podman adds it to its tmpfs mounts; swvm's tmpfs
    /// starts empty, as crun's without the option).
    static let ignoredWords: Set<String> = ["tmpcopyup", "notmpcopyup"]

    public init() {}

    /// Parses `options`; `what` names the mount in errors ("mounts[3]").
    public init(_ options: [String], what: String) throws {
        for word in options {
            if let f = Self.flagWords[word] {
                if f.set { flags |= f.flag } else { flags &= ~f.flag }
            } else if let p = Self.propagationWords[word] {
                propagation.append(p)
            } else if let r = Self.recursiveWords[word] {
                attrSet = (attrSet & ~r.clear) | r.set
                attrClear = (attrClear & ~r.set) | r.clear
            } else if !Self.ignoredWords.contains(word) {
                guard !word.isEmpty, !word.contains(",") else {
                    throw SwvmError(.invalidArgument, "config.json \(what).options: the option \"\(word)\" is empty or holds a comma")
                }
                data.append(word)
            }
        }
        guard propagation.count <= Self.maxPropagation else {
            throw SwvmError(.invalidArgument, "config.json \(what).options: \(propagation.count) propagation options, at most \(Self.maxPropagation)")
        }
    }

    /// CFG_OCI_MOUNT's value for a mount of `type` from `source` on `destination`.
    func encoded(type: String, source: String, destination: String) -> [UInt8] {
        var bytes = le32(flags) + le32(attrSet) + le32(attrClear) + le32(UInt32(propagation.count))
        for p in propagation { bytes += le32(p) }
        for (i, text) in [type, source, destination, data.joined(separator: ",")].enumerated() {
            bytes += Array(text.utf8) + (i < 3 ? [0] : [])
        }
        return bytes
    }
}

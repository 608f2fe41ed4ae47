import SwvmBase

/// The image's /etc/passwd and /etc/group, read inside its root, to turn
/// `-u name[:group]` into ids the way Docker does.
public struct UserDatabase {
    public struct User: Equatable { public let name: String; public let uid: UInt32; public let gid: UInt32; public let home: String }
    public struct Group: Equatable { public let name: String; public let gid: UInt32; public let members: [String] }

    public let users: [User]
    public let groups: [Group]
    /// Entries whose uid or gid is out of range or (uid_t)-1, with the
    /// error, thrown only when a run names the entry, its uid, or (for a
    /// group) is a member.
    public private(set) var rejectedUsers: [(name: String, uid: UInt64?, error: SwvmError)] = []
    public private(set) var rejectedGroups: [(name: String, members: [String], error: SwvmError)] = []

    public init(users: [User], groups: [Group]) {
        self.users = users
        self.groups = groups
    }

    /// The most either file may hold (a real one is a few KiB).
    public static let maxFileSize: Int64 = 4 << 20

    /// Reads both files inside the image root; each must be a regular file
    /// (RootedPath.readRegularFile: a FIFO or device node is an error).
    public init(rootfs: String) throws {
        func read(_ path: String) throws -> String {
            let bytes = try RootedPath.readRegularFile(root: rootfs, path, limit: UserDatabase.maxFileSize, name: "the image's \(path)")
            return bytes.map { String(decoding: $0, as: UTF8.self) } ?? ""
        }
        self.init(passwd: try read("/etc/passwd"), group: try read("/etc/group"))
    }

    public init(passwd: String, group: String) {
        var users: [User] = [], groups: [Group] = []
        var rejectedUsers: [(name: String, uid: UInt64?, error: SwvmError)] = []
        var rejectedGroups: [(name: String, members: [String], error: SwvmError)] = []
        for line in passwd.split(separator: "\n") {
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            guard f.count >= 6 else { continue }
            let source = "the image's /etc/passwd, user '\(UntrustedText.escaped(String(f[0])))'"
            do {
                guard let uid = try IDNumber.parse(f[2], "uid", source: source, code: .invalidImage),
                      let gid = try IDNumber.parse(f[3], "gid", source: source, code: .invalidImage) else { continue }
                users.append(User(name: String(f[0]), uid: uid, gid: gid, home: String(f[5])))
            } catch let e as SwvmError { rejectedUsers.append((String(f[0]), UInt64(f[2]), e)) } catch {}
        }
        for line in group.split(separator: "\n") {
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            guard f.count >= 3 else { continue }
            let members = f.count >= 4 ? f[3].split(separator: ",").map(String.init) : []
            do {
                guard let gid = try IDNumber.parse(f[2], "gid", source: "the image's /etc/group, group '\(UntrustedText.escaped(String(f[0])))'", code: .invalidImage) else { continue }
                groups.append(Group(name: String(f[0]), gid: gid, members: members))
            } catch let e as SwvmError { rejectedGroups.append((String(f[0]), members, e)) } catch {}
        }
        self.users = users
        self.groups = groups
        self.rejectedUsers = rejectedUsers
        self.rejectedGroups = rejectedGroups
    }

    public struct Resolved: Equatable {
        public let uid: UInt32
        public let gid: UInt32
        public let additionalGids: [UInt32]
        public let home: String

        public init(uid: UInt32, gid: UInt32, additionalGids: [UInt32], home: String) {
            self.uid = uid
            self.gid = gid
            self.additionalGids = additionalGids
            self.home = home
        }
    }

    /// Resolves "user", "uid", "user:group", "uid:gid" (empty means root);
    /// `source` names where the text came from ("-u", "the image's User").
    public func resolve(_ spec: String, source: String = "-u") throws -> Resolved {
        if spec.isEmpty { return try resolve("0", source: source) }
        let parts = spec.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let from = "\(source) '\(spec)'"
        var (uid, gid, home, name) = try user(parts[0], from: from)
        if parts.count == 2 { gid = try group(parts[1], from: from) }
        var extra: [UInt32] = []
        if let name {
            if let bad = rejectedGroups.first(where: { $0.members.contains(name) }) { throw bad.error }
            for g in groups where g.members.contains(name) && g.gid != gid && !extra.contains(g.gid) { extra.append(g.gid) }
        }
        return Resolved(uid: uid, gid: gid, additionalGids: extra, home: home.isEmpty ? "/" : home)
    }

    /// The user part: a name in /etc/passwd, or a number (gid 0 and home /
    /// unless /etc/passwd has that uid).
    private func user(_ text: String, from: String) throws -> (UInt32, UInt32, String, String?) {
        if let u = users.first(where: { $0.name == text }) { return (u.uid, u.gid, u.home, u.name) }
        if let bad = rejectedUsers.first(where: { $0.name == text }) { throw bad.error }
        guard let n = try IDNumber.parse(text, "uid", source: from) else {
            throw SwvmError(.unknownUser, "unable to find user \(text): no matching entries in the image's /etc/passwd")
        }
        if let u = users.first(where: { $0.uid == n }) { return (n, u.gid, u.home, u.name) }
        if let bad = rejectedUsers.first(where: { $0.uid == UInt64(n) }) { throw bad.error }
        return (n, 0, "/", nil)
    }

    /// The group part: a name in /etc/group, or a number.
    private func group(_ text: String, from: String) throws -> UInt32 {
        if let g = groups.first(where: { $0.name == text }) { return g.gid }
        if let bad = rejectedGroups.first(where: { $0.name == text }) { throw bad.error }
        guard let n = try IDNumber.parse(text, "gid", source: from) else {
            throw SwvmError(.unknownUser, "unable to find group \(text): no matching entries in the image's /etc/group")
        }
        return n
    }
}

import SwvmBase

/// The image's /etc/passwd and /etc/group, read inside its root, to turn
/// `-u name[:group]` into ids the way Docker does.
public struct UserDatabase {
    public struct User: Equatable { public let name: String; public let uid: UInt32; public let gid: UInt32; public let home: String }
    public struct Group: Equatable { public let name: String; public let gid: UInt32; public let members: [String] }

    public let users: [User]
    public let groups: [Group]

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
        users = passwd.split(separator: "\n").compactMap { line in
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            guard f.count >= 6, let uid = UInt32(f[2]), let gid = UInt32(f[3]) else { return nil }
            return User(name: String(f[0]), uid: uid, gid: gid, home: String(f[5]))
        }
        groups = group.split(separator: "\n").compactMap { line in
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            guard f.count >= 3, let gid = UInt32(f[2]) else { return nil }
            let members = f.count >= 4 ? f[3].split(separator: ",").map(String.init) : []
            return Group(name: String(f[0]), gid: gid, members: members)
        }
    }

    public struct Resolved: Equatable {
        public let uid: UInt32
        public let gid: UInt32
        public let additionalGids: [UInt32]
        public let home: String
    }

    /// Resolves "user", "uid", "user:group", "uid:gid" (empty means root).
    public func resolve(_ spec: String) throws -> Resolved {
        if spec.isEmpty { return try resolve("0") }
        let parts = spec.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let userPart = parts[0]
        var uid: UInt32
        var gid: UInt32
        var home = "/"
        var name: String?
        if let u = users.first(where: { $0.name == userPart }) {
            uid = u.uid; gid = u.gid; home = u.home; name = u.name
        } else if let n = UInt32(userPart) {
            uid = n
            if let u = users.first(where: { $0.uid == n }) { gid = u.gid; home = u.home; name = u.name } else { gid = 0 }
        } else {
            throw SwvmError(.unknownUser, "unable to find user \(userPart): no matching entries in the image's /etc/passwd")
        }
        if parts.count == 2 {
            let g = parts[1]
            if let grp = groups.first(where: { $0.name == g }) {
                gid = grp.gid
            } else if let n = UInt32(g) {
                gid = n
            } else {
                throw SwvmError(.unknownUser, "unable to find group \(g): no matching entries in the image's /etc/group")
            }
        }
        var extra: [UInt32] = []
        if let name {
            for g in groups where g.members.contains(name) && g.gid != gid && !extra.contains(g.gid) { extra.append(g.gid) }
        }
        return Resolved(uid: uid, gid: gid, additionalGids: extra, home: home.isEmpty ? "/" : home)
    }
}

#if canImport(Glibc)
import Glibc
#endif
import SwvmBase
import Virtio

/// The files an image template's first run read (issue 22): the run that
/// saves a template records the disk blocks its workload read after the
/// template point (BlockDevice.recordReads); the next run maps them to
/// the image's files (debugfs on the host's read-only disk image) and
/// adds those to the template's warmed files (CFG_WARM_FILE), which makes
/// a new template whose page cache holds them. Kept beside the templates,
/// per key of the template that recorded them, not a cache item (a
/// template evicted keeps its list; at most `keptBound` lists, the oldest
/// removed first): `.recorded/KEY.blocks` (block numbers, as the VMM saw
/// them) and `.recorded/KEY.files` (their paths, once mapped).
///
/// A path here is only ever a name inside the image: guest-init opens it
/// under the image's root (openat2 RESOLVE_IN_ROOT), reads at most
/// `fileBound` bytes of a regular file, and stops after `totalBound`.
enum RecordedReads {
    /// At most this many files, each path at most `pathBound` bytes.
    static let countBound = 512
    static let pathBound = 1024
    static let header = "swvm recorded reads 1"
    static let keptBound = 256

    static var directory: String { Path.join(Template.root, ".recorded") }
    static func blocksPath(_ key: String) -> String { Path.join(directory, key + ".blocks") }
    static func filesPath(_ key: String) -> String { Path.join(directory, key + ".files") }

    /// The files recorded for the template `key`, mapping its blocks on
    /// `disk` first when only they are there; nil when nothing was recorded
    /// (or the record is unusable: then it is removed, and recorded again).
    static func load(key: String, disk: String) -> [String]? {
        if let text = try? FS.readText(filesPath(key), limit: 1 << 20) {
            if let files = parse(text) { return files }
            Log.warning("recorded reads \(filesPath(key)): not a list of files; recording again")
            unlink(filesPath(key))
            return nil
        }
        guard let text = try? FS.readText(blocksPath(key), limit: 4 << 20) else { return nil }
        unlink(blocksPath(key))
        guard let blocks = parseBlocks(text) else {
            if text.isEmpty { return nil }   // its run failed before its end
            Log.warning("recorded reads \(blocksPath(key)): not a list of blocks; recording again")
            return nil
        }
        let files = filesOfBlocks(blocks, disk: disk)
        Log.debug("recorded reads: \(blocks.count) blocks, \(files.count) files")
        try? FS.writeText(filesPath(key), format(files))
        return files
    }

    /// A descriptor the run writes its blocks to at its end (`save`),
    /// opened now: the jailed VMM opens nothing. nil when the template has
    /// its files recorded already.
    static func output(key: String) -> FileDescriptor? {
        guard !FS.exists(filesPath(key)) else { return nil }
        try? FS.makeDirectories(directory, mode: 0o700)
        removeOldest()
        return try? FileDescriptor.open(blocksPath(key), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode: 0o600)
    }

    /// Keeps fewer than `keptBound` lists: the least recently changed go.
    static func removeOldest() {
        let names = ((try? FS.listDirectory(directory)) ?? []).filter { $0.hasSuffix(".files") || $0.hasSuffix(".blocks") }
        guard names.count >= keptBound else { return }
        let byAge = names.map { ($0, FS.stat(Path.join(directory, $0))?.st_mtim.tv_sec ?? 0) }.sorted { $0.1 < $1.1 }
        for (name, _) in byAge.prefix(names.count - keptBound + 1) { unlink(Path.join(directory, name)) }
    }

    static func save(_ blocks: [UInt64], to fd: FileDescriptor) {
        let text = header + "\n" + blocks.map { String($0) }.joined(separator: "\n") + "\nend\n"
        try? fd.writeAll(Array(text.utf8))
        fd.close()
    }

    static func format(_ files: [String]) -> String {
        header + "\n" + files.map { $0 + "\n" }.joined() + "end\n"
    }

    /// The list of files, or nil unless every line is a good path and the
    /// list is complete (its header and `end`) and within the bounds.
    static func parse(_ text: String) -> [String]? {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.first == header, lines.popLast() == "", lines.popLast() == "end" else { return nil }
        let files = Array(lines.dropFirst())
        guard files.count <= countBound, files.allSatisfy(isGoodPath) else { return nil }
        return files
    }

    static func parseBlocks(_ text: String) -> [UInt64]? {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.first.map(String.init) == header, lines.popLast() == "", lines.popLast() == "end" else { return nil }
        let blocks = lines.dropFirst().compactMap { UInt64($0) }
        guard blocks.count == lines.count - 1, blocks.count <= BlockDevice.readLogBound else { return nil }
        return blocks
    }

    /// An absolute path of at most `pathBound` bytes, without empty, "."
    /// or ".." components or control characters.
    static func isGoodPath(_ path: String) -> Bool {
        guard path.hasPrefix("/"), path.utf8.count <= pathBound, path.utf8.count > 1,
              !path.utf8.contains(where: { $0 < 0x20 || $0 == 0x7f }) else { return false }
        return path.dropFirst().split(separator: "/", omittingEmptySubsequences: false).allSatisfy { !$0.isEmpty && $0 != "." && $0 != ".." }
    }

    /// The image's files that hold `blocks`, in the order of their first
    /// block, at most `countBound` (debugfs reads the disk image, which is
    /// read-only to the guest; names it prints that are not good paths are
    /// left out).
    static func filesOfBlocks(_ blocks: [UInt64], disk: String) -> [String] {
        guard !blocks.isEmpty else { return [] }
        let inodeLines = debugfs("icheck " + blocks.map { String($0) }.joined(separator: " "), disk: disk)
        var inodes: [UInt64] = [], seen = Set<UInt64>()
        for line in inodeLines {
            let f = line.split(separator: "\t")
            if f.count == 2, UInt64(f[0]) != nil, let inode = UInt64(f[1]), seen.insert(inode).inserted { inodes.append(inode) }
        }
        guard !inodes.isEmpty else { return [] }
        var paths: [UInt64: String] = [:]
        for line in debugfs("ncheck " + inodes.map { String($0) }.joined(separator: " "), disk: disk) {
            guard let tab = line.firstIndex(of: "\t"), let inode = UInt64(line[..<tab]) else { continue }
            let path = String(line[line.index(after: tab)...])
            if paths[inode] == nil, isGoodPath(path) { paths[inode] = path }
        }
        // Directories and other files' blocks map too: guest-init skips what is not a regular file.
        return Array(inodes.compactMap { paths[$0] }.prefix(countBound))
    }

    /// debugfs's output lines for one command, read-only (-c), from a command file.
    private static func debugfs(_ command: String, disk: String) -> [String] {
        let file = Path.join(directory, "debugfs.\(hostPID).cmd")
        defer { unlink(file) }
        guard (try? FS.writeText(file, command + "\n")) != nil,
              let r = try? Subprocess.run(["debugfs", "-c", "-f", file, disk]), r.status == 0 else {
            Log.debug("recorded reads: debugfs failed on \(disk)")
            return []
        }
        return r.output.split(separator: "\n").map(String.init)
    }
}

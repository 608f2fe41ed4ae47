#if canImport(Glibc)
import Glibc
#endif
import CSyscalls

/// Small file-system helpers over the raw system calls (swvm's own targets
/// do not use Foundation; swift-argument-parser brings in
/// FoundationEssentials for the command line).
public enum FS {
    public static func readFile(_ path: String, limit: Int = 1 << 30) throws -> [UInt8] {
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(path, O_RDONLY)
        } catch {
            if errno == ENOENT { throw SwvmError(.notFound, "\(path): no such file") }
            throw error
        }
        return try fd.readAll(limit: limit)
    }

    public static func readText(_ path: String, limit: Int = 1 << 26) throws -> String {
        String(decoding: try readFile(path, limit: limit), as: UTF8.self)
    }

    /// Writes through a temporary file and rename(2), so readers never see
    /// a partial file.
    public static func writeFile(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws {
        let tmp = "\(path).tmp-\(hostPID)"
        let fd = try FileDescriptor.open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode: mode)
        do {
            try fd.writeAll(bytes)
            fd.close()
            try sys("rename \(tmp)") { rename(tmp, path) }
        } catch {
            unlink(tmp)
            throw error
        }
    }

    public static func writeText(_ path: String, _ text: String, mode: mode_t = 0o644) throws {
        try writeFile(path, Array(text.utf8), mode: mode)
    }

    /// Writes a small value to an existing file (sysfs, cgroupfs, procfs).
    public static func writeControl(_ path: String, _ text: String) throws {
        let fd = try FileDescriptor.open(path, O_WRONLY)
        do {
            try fd.writeAll(text)
        } catch let e as SwvmError {
            throw SwvmError(e.code, "\(path): \(e.message)")
        }
    }

    public static func lstat(_ path: String) -> Glibc.stat? {
        var st = Glibc.stat()
        return Glibc.lstat(path, &st) == 0 ? st : nil
    }

    public static func stat(_ path: String) -> Glibc.stat? {
        var st = Glibc.stat()
        return statFollowing(path, &st) == 0 ? st : nil
    }

    public static func exists(_ path: String) -> Bool { lstat(path) != nil }

    public static func isDirectory(_ path: String) -> Bool {
        guard let st = stat(path) else { return false }
        return (st.st_mode & S_IFMT) == S_IFDIR
    }

    public static func isRegularFile(_ path: String) -> Bool {
        guard let st = stat(path) else { return false }
        return (st.st_mode & S_IFMT) == S_IFREG
    }

    public static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws {
        if isDirectory(path) { return }
        let parent = Path.dirname(path)
        if parent != path && !parent.isEmpty { try makeDirectories(parent, mode: mode) }
        if mkdir(path, mode) != 0 && errno != EEXIST {
            throw SwvmError.errno("mkdir \(path)")
        }
    }

    public static func listDirectory(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else { throw SwvmError.errno("opendir \(path)") }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Removes `path` and everything below it without following symlinks
    /// and without crossing into other mounts.
    public static func removeTree(_ path: String) throws {
        guard let st = lstat(path) else { return }
        if (st.st_mode & S_IFMT) != S_IFDIR {
            try sys("unlink \(path)") { unlink(path) }
            return
        }
        let fd = try sys("open \(path)") { open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        try removeContents(dirfd: fd, device: st.st_dev, path: path)
        close(fd)
        try sys("rmdir \(path)") { rmdir(path) }
    }

    /// Removes every entry inside the directory `dirfd` (which it closes
    /// not). Entries on another device (mount points) are an error.
    public static func removeContents(dirfd: Int32, device: dev_t, path: String) throws {
        let dupfd = dup(dirfd)
        guard dupfd >= 0, let dir = fdopendir(dupfd) else { throw SwvmError.errno("opendir \(path)") }
        defer { closedir(dir) }
        var names: [(String, UInt8)] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { names.append((name, entry.pointee.d_type)) }
        }
        for (name, _) in names {
            var st = Glibc.stat()
            guard fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            if (st.st_mode & S_IFMT) == S_IFDIR {
                if st.st_dev != device {
                    throw SwvmError(.systemCall, "refusing to remove \(path)/\(name): it is a mount point")
                }
                let child = try sys("open \(path)/\(name)") {
                    openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                }
                defer { close(child) }
                try removeContents(dirfd: child, device: device, path: "\(path)/\(name)")
                try sys("rmdir \(path)/\(name)") { unlinkat(dirfd, name, AT_REMOVEDIR) }
            } else {
                try sys("unlink \(path)/\(name)") { unlinkat(dirfd, name, 0) }
            }
        }
    }

    /// The absolute, symlink-free form of an existing path.
    public static func realPath(_ path: String) throws -> String {
        guard let p = realpath(path, nil) else {
            if errno == ENOENT { throw SwvmError(.notFound, "\(path): no such file or directory") }
            throw SwvmError.errno("realpath \(path)")
        }
        defer { free(p) }
        return String(cString: p)
    }

    /// The directory holding the running executable.
    public static func executableDirectory() -> String { Path.dirname(executablePath()) }

    /// The running executable's path (/proc/self/exe resolved).
    /// Read once: a jailed VMM has no /proc to read it from later.
    public static func executablePath() -> String { cachedExecutablePath }
    private static let cachedExecutablePath = readLink("/proc/self/exe") ?? "/proc/self/exe"

    /// What the symbolic link at `path` holds; nil if it is not one.
    public static func readLink(_ path: String) -> String? {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink(path, &buf, buf.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public static func environment(_ name: String) -> String? {
        guard let v = getenv(name) else { return nil }
        return String(cString: v)
    }
}

/// stat(2), out of FS's scope where `stat` names FS.stat.
private func statFollowing(_ path: String, _ st: inout Glibc.stat) -> Int32 { stat(path, &st) }

/// Memory hygiene for a long-running VMM or runtime process.
public enum ProcessMemory {
    /// Keeps only the code this process runs resident. The static binary is
    /// 28 MB; the Swift runtime's start-up and the kernel's fault-around
    /// (16 pages per fault) leave megabytes of it mapped that a VMM never
    /// executes. Read-only mappings of the executable are dropped (they are
    /// clean page cache: what is used faults back in, one page at a time,
    /// with fault-around off). Writable mappings are left alone.
    public static func mapOnlyWhatIsUsed() {
        guard let smaps = ProcSelf.readText("smaps", limit: 8 << 20) else { return }
        let exe = FS.executablePath()
        var current: (lo: UInt, hi: UInt, writable: Bool)?
        var touched = false
        func finish() {
            guard let m = current, let p = UnsafeMutableRawPointer(bitPattern: m.lo) else { return }
            madvise(p, Int(m.hi - m.lo), MADV_RANDOM)
            // Only mappings with no private (copied-on-write) pages may be
            // dropped: a relocated (RELRO) or written page would lose its
            // contents.
            if !m.writable && !touched { madvise(p, Int(m.hi - m.lo), MADV_DONTNEED) }
        }
        for line in smaps.split(separator: "\n") {
            if let first = line.first, first.isHexDigit, line.contains("-"), !line.hasPrefix("VmFlags") {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                let range = fields[0].split(separator: "-")
                if current != nil { finish() }
                current = nil
                touched = false
                if line.hasSuffix(exe), fields.count > 1, range.count == 2,
                   let lo = UInt(range[0], radix: 16), let hi = UInt(range[1], radix: 16) {
                    current = (lo, hi, fields[1].contains("w"))
                }
            } else if current != nil, line.hasPrefix("Anonymous:") {
                let kb = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Int($0) } ?? 1
                if kb != 0 { touched = true }
            }
        }
        if current != nil { finish() }
        // And the heap pages that what ran before (image handling, argument
        // parsing) freed: glibc keeps them until asked.
        _ = sys_malloc_trim()
    }
}

/// /proc/self files a process reads after it lost /proc (the VMM's jail
/// has no /proc): `hold` opens them beforehand (a file, not a directory, so
/// nothing else is reached through it) and `readText` rereads them from
/// the start. Without `hold`, /proc/self as usual.
public enum ProcSelf {
    nonisolated(unsafe) private static var held: [String: Int32] = [:]

    /// Opens /proc/self/NAME for each name; call before other threads exist.
    public static func hold(_ names: [String]) throws {
        for name in names where held[name] == nil {
            held[name] = try sys("open /proc/self/\(name)") { open("/proc/self/\(name)", O_RDONLY | O_CLOEXEC) }
        }
    }

    /// Takes `fd` as /proc/self/NAME (opened in some special way).
    public static func adopt(_ name: String, descriptor fd: Int32) {
        if let old = held[name] { close(old) }
        held[name] = fd
    }

    /// Reads `count` bytes at `offset` of /proc/self/NAME (a binary file:
    /// pagemap) into `into`; the bytes read, or nil.
    public static func readBytes(_ name: String, at offset: UInt64, into p: UnsafeMutableRawBufferPointer) -> Int? {
        let own = held[name] == nil ? open("/proc/self/\(name)", O_RDONLY | O_CLOEXEC) : -1
        defer { if own >= 0 { close(own) } }
        guard let fd = held[name] ?? (own >= 0 ? own : nil) else { return nil }
        var done = 0
        while done < p.count {
            let n = pread(fd, p.baseAddress! + done, p.count - done, off_t(offset) + off_t(done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            done += n
        }
        return done
    }

    public static func readText(_ name: String, limit: Int = 1 << 26) -> String? {
        guard let fd = held[name] else { return try? FS.readText("/proc/self/\(name)", limit: limit) }
        guard lseek(fd, 0, SEEK_SET) == 0 else { return nil }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while out.count < limit {
            let n = read(fd, &buf, buf.count)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            out += buf[0..<n]
        }
        return String(decoding: out.prefix(limit), as: UTF8.self)
    }
}

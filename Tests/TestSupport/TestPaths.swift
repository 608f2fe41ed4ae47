import SwvmBase

/// Where the tests find the repository and the swvm binary they run.
public enum TestPaths {
    /// The directory holding Package.swift, above the test binary.
    public static let repo: String = {
        var dir = FS.executableDirectory()
        while dir != "/" && !FS.exists(Path.join(dir, "Package.swift")) { dir = Path.dirname(dir) }
        return dir
    }()

    /// SWVM_BINARY, or the swvm built beside the tests, or the debug build.
    public static let swvm: String = {
        if let p = FS.environment("SWVM_BINARY") { return p }
        let beside = Path.join(FS.executableDirectory(), "swvm")
        return FS.exists(beside) ? beside : Path.join(repo, ".build/debug/swvm")
    }()
}

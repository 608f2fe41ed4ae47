import CConfinement

/// The PATH a process gets when nothing else sets one, and the directories
/// the confinement's exec searches without a PATH: one list, in C
/// (SWVM_DEFAULT_PATH), so that what swvm expects the child to find (an
/// image template's warm files) is what the child finds.
public enum DefaultSearchPath {
    public static let value: String = SWVM_DEFAULT_PATH
    /// "PATH=..." for an environment.
    public static var environment: String { "PATH=" + value }
    public static var directories: [String] { value.split(separator: ":").map(String.init) }
}

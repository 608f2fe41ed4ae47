/// Lexical path operations (no file-system access).
public enum Path {
    public static func join(_ parts: String...) -> String { join(parts) }

    public static func join(_ parts: [String]) -> String {
        var out = ""
        for part in parts where !part.isEmpty {
            if part.hasPrefix("/") || out.isEmpty {
                out = out.isEmpty ? part : (out.hasSuffix("/") ? out + part.dropFirst() : out + part)
                if out.isEmpty { out = part }
            } else {
                out += out.hasSuffix("/") ? part : "/" + part
            }
        }
        return out
    }

    public static func dirname(_ path: String) -> String {
        var p = Substring(path)
        while p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
        guard let slash = p.lastIndex(of: "/") else { return "." }
        if slash == p.startIndex { return "/" }
        var d = p[..<slash]
        while d.count > 1 && d.hasSuffix("/") { d = d.dropLast() }
        return String(d)
    }

    public static func basename(_ path: String) -> String {
        var p = Substring(path)
        while p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
        guard let slash = p.lastIndex(of: "/") else { return String(p) }
        return String(p[p.index(after: slash)...])
    }

    /// Splits a path into its components, dropping empty ones and ".".
    public static func components(_ path: String) -> [String] {
        path.split(separator: "/", omittingEmptySubsequences: true)
            .map(String.init)
            .filter { $0 != "." }
    }

    /// Resolves "." and ".." lexically inside a root: the result never goes
    /// above "/"; `escaped` tells whether a ".." tried to.
    public static func normalizeInRoot(_ path: String) -> (path: String, escaped: Bool) {
        var stack: [String] = []
        var escaped = false
        for c in components(path) {
            if c == ".." {
                if stack.isEmpty { escaped = true } else { stack.removeLast() }
            } else {
                stack.append(c)
            }
        }
        return ("/" + stack.joined(separator: "/"), escaped)
    }
}

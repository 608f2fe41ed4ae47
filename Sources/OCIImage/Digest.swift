import SwvmBase

/// An OCI content digest, "sha256:" + 64 lower-case hex digits. Anything
/// else is refused, so a digest can be used as a file name safely.
public struct Digest: Hashable, CustomStringConvertible, Sendable {
    public let algorithm: String
    public let hex: String

    public init(_ text: String) throws {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw SwvmError(.invalidImage, "invalid digest '\(text)': expected 'sha256:<hex>'") }
        let alg = String(parts[0]), hex = String(parts[1])
        guard alg == "sha256" else {
            throw SwvmError(.invalidImage, "unsupported digest algorithm '\(alg)' in '\(text)' (swvm verifies sha256)")
        }
        guard hex.utf8.count == 64, hex.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else {
            throw SwvmError(.invalidImage, "invalid digest '\(text)': expected 64 lower-case hex digits")
        }
        algorithm = alg
        self.hex = hex
    }

    public init(sha256Hex: String) { algorithm = "sha256"; hex = sha256Hex }

    public var description: String { "\(algorithm):\(hex)" }
    /// First 12 hex digits, as Docker shows image ids.
    public var short: String { String(hex.prefix(12)) }
}

/// A content descriptor (mediaType, digest, size, annotations, platform).
public struct Descriptor {
    public let mediaType: String
    public let digest: Digest
    public let size: Int64
    public let annotations: [String: String]
    public let platform: (os: String, architecture: String, variant: String?)?

    public init(json: JSON, context: String) throws {
        guard let obj = json.dictionary else { throw SwvmError(.invalidImage, "\(context): descriptor is not an object") }
        guard let d = obj["digest"]?.string else { throw SwvmError(.invalidImage, "\(context): descriptor has no digest") }
        guard let size = obj["size"]?.int64, size >= 0 else {
            throw SwvmError(.invalidImage, "\(context): descriptor for \(d) has no valid size")
        }
        do { digest = try Digest(d) } catch let e as SwvmError { throw SwvmError(.invalidImage, "\(context): \(e.message)") }
        mediaType = obj["mediaType"]?.string ?? ""
        self.size = size
        var ann: [String: String] = [:]
        for (k, v) in obj["annotations"]?.object ?? [] { if let s = v.string { ann[k] = s } }
        annotations = ann
        if let p = obj["platform"]?.dictionary, let os = p["os"]?.string, let arch = p["architecture"]?.string {
            platform = (os, arch, p["variant"]?.string)
        } else {
            platform = nil
        }
    }
}

public enum MediaType {
    public static let index = "application/vnd.oci.image.index.v1+json"
    public static let manifest = "application/vnd.oci.image.manifest.v1+json"
    public static let config = "application/vnd.oci.image.config.v1+json"
    public static let dockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
    public static let nondistributable = ".nondistributable."

    public static func isIndex(_ t: String) -> Bool { t == index || t == dockerManifestList }
}

import CLibcrypto

/// SHA-256, incremental, through libcrypto. OCI blobs are addressed by it;
/// swvm verifies every blob it reads. A copy of a value continues
/// independently (the context is a plain struct).
public struct SHA256 {
    private var context = SHA256_CTX()

    public init() { SHA256_Init(&context) }

    public mutating func update(_ data: UnsafeRawBufferPointer) {
        guard let p = data.baseAddress, data.count > 0 else { return }
        SHA256_Update(&context, p, data.count)
    }

    public mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    /// The digest; the value is spent afterwards.
    public mutating func finalize() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(SHA256_DIGEST_LENGTH))
        SHA256_Final(&out, &context)
        return out
    }

    public mutating func finalizeHex() -> String { hex(finalize()) }

    public static func hash(_ bytes: [UInt8]) -> String {
        var s = SHA256()
        s.update(bytes)
        return s.finalizeHex()
    }
}

/// Lower-case hexadecimal.
public func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out = [UInt8]()
    out.reserveCapacity(bytes.count * 2)
    for b in bytes {
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 0xf)])
    }
    return String(decoding: out, as: UTF8.self)
}

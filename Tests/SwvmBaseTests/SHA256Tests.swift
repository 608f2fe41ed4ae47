import Testing
@testable import SwvmBase

@Suite struct SHA256Tests {
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    ])
    func knownVectors(_ input: String, _ digest: String) {
        #expect(SHA256.hash(Array(input.utf8)) == digest)
    }

    @Test func millionAs() {
        var h = SHA256()
        let chunk = [UInt8](repeating: 0x61, count: 1000)
        for _ in 0..<1000 { h.update(chunk) }
        #expect(h.finalizeHex() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func incrementalMatchesOneShot() {
        let data = (0..<1000).map { UInt8($0 % 251) }
        var h = SHA256()
        var i = 0
        for size in [1, 63, 64, 65, 100, 7] where i < data.count {
            h.update(Array(data[i..<min(data.count, i + size)]))
            i += size
        }
        h.update(Array(data[i...]))
        #expect(h.finalizeHex() == SHA256.hash(data))
    }

    /// A copy continues on its own: FileSource hands out a copy of its
    /// running hasher to be finalized while the original goes on.
    @Test func copiesAreIndependent() {
        var a = SHA256()
        a.update(Array("ab".utf8))
        var b = a
        #expect(b.finalizeHex() == SHA256.hash(Array("ab".utf8)))
        a.update(Array("c".utf8))
        #expect(a.finalizeHex() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }
}

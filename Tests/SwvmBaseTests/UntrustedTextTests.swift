import Testing
@testable import SwvmBase

/// Guest and image text on the user's terminal (issue 23): no escape
/// sequence, no line of its own.
@Suite struct UntrustedTextTests {
    @Test func controlCharactersAreEscaped() {
        #expect(UntrustedText.escaped("a\u{1b}[2J\nswvm: fake\r\t\u{7f}\u{0}") == #"a\x1b[2J\nswvm: fake\r\t\x7f\x00"#)
        // C1 controls (CSI alone is 0x9b) and invalid UTF-8.
        #expect(UntrustedText.escaped([0x61, 0xc2, 0x9b, 0x32, 0x4a, 0xff]) == "a\\u{9b}2J\u{fffd}")
        // Printable text, backslashes and non-ASCII letters are kept.
        #expect(UntrustedText.escaped(#"exec: "é\x" ok"#) == #"exec: "é\x" ok"#)
    }

    @Test func decodedErrorsAreEscaped() throws {
        let report = le32(5) + le32(0) + Array("exec: \"\u{1b}]0;t\u{7}\nswvm: x\"".utf8)   // SWVM_ERR_COMMAND_NOT_FOUND
        let e = try #require(SwvmError.decode(report))
        #expect(e.code == .commandNotFound)
        #expect(e.message == #"exec: "\x1b]0;t\x07\nswvm: x""#)
    }
}

import Testing
@testable import MicroVM
@testable import VMM

/// The guest's console and panic text are escaped and marked as the
/// guest's before they reach the user's terminal (issue 23).
@Suite struct GuestTextTests {
    @Test func consoleTailLinesAreEscapedAndMarked() {
        var tail = ConsoleTail()
        tail.append("[    1.0] ok")
        tail.append("\u{1b}[1Aswvm: forged\r")
        #expect(tail.hint == "; last guest console lines:\nguest: [    1.0] ok\nguest: \\x1b[1Aswvm: forged\\r")
    }

    @Test func panicMessagesAreEscaped() {
        #expect(MachineExit.panic("VFS\u{1b}[0m\nswvm: x").summary == "guest kernel panicked: VFS\\x1b[0m\\nswvm: x")
    }
}

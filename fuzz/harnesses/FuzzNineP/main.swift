#if canImport(Glibc)
import Glibc
#endif
import SharedDirectory
import SwvmBase

// virtio-9p's request decoder and file server, as a hostile guest kernel
// drives it: the input is a run of 9P messages (each cut at its own size
// field, capped by what is left) sent to one server over a scratch share.
// After each input the session is reset (Tversion drops every fid), and the
// directory beside the share must be as it was: a write outside the share
// is reported as a crash.

// nonisolated(unsafe): libFuzzer calls the harness from one thread, so
// this state is never shared.
nonisolated(unsafe) var server: NinePServer?
nonisolated(unsafe) var outside = ""
nonisolated(unsafe) var scratch = ""

private func setUp() {
    var t = Array("/tmp/swvm-fuzz-9p-XXXXXX".utf8CString)
    guard mkdtemp(&t) != nil else { fatalError("mkdtemp") }
    let base = String(cString: t)
    // libFuzzer ends with exit(): the scratch directory goes with it.
    scratch = base
    atexit { try? FS.removeTree(scratch) }
    outside = base + "/outside"
    try! FS.makeDirectories(base + "/share/sub")
    try! FS.makeDirectories(outside)
    try! FS.writeFile(base + "/share/file", Array("data".utf8))
    try! FS.writeFile(outside + "/secret", Array("secret".utf8))
    symlink("/etc", base + "/share/etc-link")
    symlink("../outside", base + "/share/out-link")
    server = try! NinePServer(shares: [Share(hostPath: base + "/share", readOnly: false),
                                       Share(hostPath: base + "/share/sub", readOnly: true)], maxFids: 64)
}

private func send(_ bytes: [UInt8]) {
    _ = bytes.withUnsafeBytes { server!.handle($0, replyLimit: 1 << 16) }
}

private func s(_ text: String) -> [UInt8] { le16(UInt16(text.utf8.count)) + Array(text.utf8) }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNineP(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    if server == nil { setUp() }
    // A fresh session with the root attached as fid 0.
    send(le32(21) + [NineP.tversion] + le16(0) + le32(65536) + s("9P2000.L"))
    send(le32(19) + [NineP.tattach] + le16(0) + le32(0) + le32(NineP.noFid) + s("") + s("") + le32(0))
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    var i = 0
    while i + 4 <= bytes.count {
        let n = max(7, min(Int(le32(bytes, i)), bytes.count - i))
        send(Array(bytes[i..<min(bytes.count, i + n)]))
        i += n
    }
    guard let names = try? FS.listDirectory(outside), names == ["secret"],
          (try? FS.readFile(outside + "/secret")) == Array("secret".utf8) else {
        fatalError("the directory beside the share changed")
    }
    return 0
}

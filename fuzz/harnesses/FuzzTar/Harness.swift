#if canImport(Glibc)
import Glibc
#endif
import OCIImage
import SwvmBase

// The layer path of an image: gzip or zstd (by magic) or plain tar, read by
// TarReader and applied by LayerUnpacker onto an empty root. Oracle besides
// crashes: nothing may appear outside the root.

final class Bytes: ByteSource {
    let data: UnsafeRawBufferPointer
    var offset = 0
    init(_ data: UnsafeRawBufferPointer) { self.data = data }
    func read(into buffer: UnsafeMutableRawPointer, count: Int) throws -> Int {
        let n = min(count, data.count - offset)
        if n > 0 { buffer.copyMemory(from: data.baseAddress! + offset, byteCount: n) }
        offset += n
        return n
    }
}

// tmpfs when there is one: each input is unpacked onto a fresh directory.
let base = (FS.isDirectory("/dev/shm") ? "/dev/shm" : "/tmp") + "/swvm-fuzz-tar-\(getpid())"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTar(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let root = base + "/root"
    try? FS.removeTree(base)
    try! FS.makeDirectories(root)
    let input = UnsafeRawBufferPointer(start: data, count: size)
    let magic = Array(input.prefix(4))
    do {
        let file = Bytes(input)
        let source: ByteSource
        switch Compression.detect(mediaType: "", magic: magic) {
        case .none: source = file
        case .gzip: source = try GzipSource(file)
        case .zstd: source = try ZstdSource(file)
        }
        try LayerUnpacker(rootPath: root, layerName: "layer 1").apply(TarReader(source: source))
    } catch is SwvmError {
    } catch {
        fatalError("not a SwvmError: \(error)")
    }
    let outside = (try? FS.listDirectory(base)) ?? []
    if outside != ["root"] { fatalError("the layer wrote outside its root: \(outside)") }
    try? FS.removeTree(base)
    return 0
}

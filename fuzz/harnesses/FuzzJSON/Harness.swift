import OCIImage
import RuntimeSpec
import Seccomp
import SwvmBase

// The JSON documents of an image and a seccomp profile: JSON.parse, then
// every reader of a parsed document (index.json, a manifest or image index,
// a descriptor, an image config, a Docker seccomp profile); and the image's
// /etc/passwd and /etc/group.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSON(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    // The same bytes as an image's /etc/passwd and /etc/group (ids range-checked).
    let text = String(decoding: bytes, as: UTF8.self)
    let users = UserDatabase(passwd: text, group: text)
    for spec in ["", "root", "0:0", "4294967295", "x:y"] { _ = try? users.resolve(spec) }
    _ = try? ImageLayout.parseIndex(bytes, file: "index.json")
    guard let json = try? JSON.parse(bytes) else { return 0 }
    let descriptor = try! Descriptor(json: JSON.parse(Array(#"{"digest":"sha256:\#(String(repeating: "0", count: 64))","size":0}"#.utf8)),
                                     context: "fuzz")
    _ = json.serialized()
    _ = try? ImageLayout.parseManifest(json, descriptor: descriptor)
    _ = try? Descriptor(json: json, context: "fuzz")
    for entry in json["manifests"]?.array ?? [] { _ = try? Descriptor(json: entry, context: "fuzz") }
    _ = try? ImageConfig(json: json, context: "fuzz")
    _ = try? SeccompProfile.parse(json, capabilities: Capabilities.dockerDefault, context: "fuzz")
    return 0
}

#if canImport(Glibc)
import Glibc
#endif
import RuntimeSpec
import Seccomp
import SwvmBase

// An OCI bundle's config.json as `swvm create` reads it: JSON.parse, then
// OCIConfig.parse against a scratch bundle (its root looked up, hooks and
// namespace paths checked on the host), and the same document as a
// process.json (`swvm exec -p`), a resources.json (`swvm update -r`) and
// `swvm run BUNDLE`'s view (BundleProcess). Errors must be SwvmError; what
// is accepted must hold the checks the parser promises.

/// A bundle with an empty root, made once per fuzzing process and removed
/// when it exits.
let bundle: String = {
    let dir = (FS.isDirectory("/dev/shm") ? "/dev/shm" : "/tmp") + "/swvm-fuzz-oci-\(getpid())"
    try! FS.makeDirectories(dir + "/rootfs")
    atexit { try? FS.removeTree(bundle) }
    return dir
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOCIConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard let json = try? JSON.parse(Array(UnsafeBufferPointer(start: data, count: size))) else { return 0 }
    expectSwvmError { check(try OCIConfig.parse(json, bundle: bundle, id: "fuzz")) }
    expectSwvmError { _ = try OCIConfig.parseProcess(json) }
    expectSwvmError { _ = try OCIConfig.parseResources(json) }
    expectSwvmError { _ = try BundleProcess(json: json).mounts }
    if let process = json["process"] { expectSwvmError { _ = try OCIConfig.parseProcess(process) } }
    return 0
}

func expectSwvmError(_ body: () throws -> Void) {
    do { try body() } catch is SwvmError {} catch { fatalError("not a SwvmError: \(error)") }
}

/// What a RunSpec from config.json must hold, whatever the input.
func check(_ spec: RunSpec) {
    guard let oci = spec.oci else { fatalError("no oci settings") }
    guard !spec.process.args.isEmpty, spec.process.cwd.hasPrefix("/") else { fatalError("args or cwd not checked") }
    guard spec.process.uid <= IDNumber.max, spec.process.gid <= IDNumber.max,
          spec.process.additionalGids.allSatisfy({ $0 <= IDNumber.max }) else { fatalError("an id out of range") }
    guard oci.mounts.allSatisfy({ $0.destination.hasPrefix("/") }) else { fatalError("a relative mount destination") }
    guard Set(oci.namespaces.map(\.type)).count == oci.namespaces.count else { fatalError("a namespace twice") }
    let hooks = oci.hooks.prestart + oci.hooks.createRuntime + oci.hooks.createContainer + oci.hooks.startContainer
        + oci.hooks.poststart + oci.hooks.poststop
    guard hooks.allSatisfy({ $0.path.hasPrefix("/") && ($0.timeout ?? 1) > 0 }) else { fatalError("a hook not checked") }
    guard (oci.oomScoreAdj.map { (-1000...1000).contains($0) } ?? true) else { fatalError("oomScoreAdj out of range") }
    guard spec.process.rlimits.allSatisfy({ $0.soft <= $0.hard }) else { fatalError("an rlimit's soft above its hard") }
    guard FS.isDirectory(spec.rootfs) else { fatalError("the root is not a directory") }
}

import OCIRuntime
import SwvmBase

// The OCI runtime's state readers: state.json (ContainerRecord.decode: a
// record read back must encode to the same record), /proc/PID/stat's
// fields, signal names and container ids. (resources.json is OCIConfig's,
// fuzzed by FuzzOCIConfig.)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOCIState(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let text = String(decoding: bytes, as: UTF8.self)
    _ = ProcessStat.parse(text)
    _ = try? SignalName.parse(text)
    _ = try? ContainerID.validate(text)
    if let record = try? ContainerRecord.decode(bytes, file: "state.json") {
        let again = try! ContainerRecord.decode(record.encoded(), file: "state.json")
        precondition(again == record, "state.json does not read back as written")
    }
    return 0
}

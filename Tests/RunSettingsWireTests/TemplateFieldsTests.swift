import CConfinement
import Testing
import RunSettingsWire
@testable import RuntimeSpec
@testable import SwvmBase

/// Image templates' settings: the fixed part carries nothing of the run,
/// guest-init refuses a template config with a run's field and a MSG_RUN
/// with a fixed one, and fixed + per-run decode to the same settings as
/// the whole list.
@Suite struct TemplateFieldsTests {
    func spec() -> RunSpec {
        let p = ProcessSpec(args: ["/bin/sh", "-c", "echo secret-arg"], env: ["TOKEN=secret-env"], cwd: "/srv",
                            uid: 1000, gid: 1000, additionalGids: [], user: "app")
        var s = RunSpec(id: "abc", rootfs: "/r", process: p, hostname: "secret-host", capabilities: ["CHOWN"])
        s.readOnlyRoot = true
        s.maskedPaths = ["/proc/kcore"]
        return s
    }

    func encoded() -> [UInt8] {
        RunSettings.encode(spec(), seccompProgram: nil, window: nil,
                           level: .vm(rootDevice: "/dev/vda", hostTimeNanos: 42, probeSource: nil,
                                      entropy: [UInt8](repeating: 0xab, count: 64)))
    }

    func templateConfig(_ fixed: [UInt8]) -> [UInt8] {
        var f = RunSettings.Fields()
        f.add(CFG_TEMPLATE, [0])
        return fixed + f.bytes
    }

    @Test func theFixedPartHoldsNothingOfTheRun() {
        let (fixed, perRun) = RunSettings.splitForTemplate(encoded())
        let text = String(decoding: fixed, as: UTF8.self)
        for secret in ["secret-arg", "secret-env", "secret-host", "/srv"] { #expect(!text.contains(secret), "\(secret) in the fixed part") }
        #expect(!fixed.contains(0xab), "entropy in the fixed part")
        #expect(String(decoding: perRun, as: UTF8.self).contains("secret-env"))
    }

    @Test func fixedThenPerRunDecodeAsTheWhole() throws {
        let (fixed, perRun) = RunSettings.splitForTemplate(encoded())
        var s = swvm_settings()
        var error = [CChar](repeating: 0, count: 256)
        let config = templateConfig(fixed)
        #expect(config.withUnsafeBufferPointer { swvm_settings_decode($0.baseAddress, $0.count, &s, &error, error.count) } == 0,
                "\(String(cString: error))")
        defer { swvm_settings_free(&s) }
        #expect(s.template_mode == 1 && s.nargs == 0 && s.read_only == 1 && s.uid == 1000 && s.nmasked == 1)
        #expect(perRun.withUnsafeBufferPointer { swvm_run_fields_apply($0.baseAddress, $0.count, &s, &error, error.count) } == 0,
                "\(String(cString: error))")
        #expect(s.template_mode == 0 && s.nargs == 3 && String(cString: s.args[2]!) == "echo secret-arg")
        #expect(String(cString: s.cwd) == "/srv" && String(cString: s.hostname) == "secret-host" && s.host_time_ns == 42)
        #expect(s.nenv == 1 && String(cString: s.env[0]!) == "TOKEN=secret-env" && s.env[1] == nil && s.entropy_len == 64)
    }

    @Test func aTemplateConfigWithARunFieldIsRefused() {
        var s = swvm_settings()
        var error = [CChar](repeating: 0, count: 256)
        let config = templateConfig(encoded())   // the whole list: arguments and all
        #expect(config.withUnsafeBufferPointer { swvm_settings_decode($0.baseAddress, $0.count, &s, &error, error.count) } != 0)
        #expect(String(cString: error).contains("per-run fields"), "\(String(cString: error))")
    }

    @Test func aRunWithAFixedFieldIsRefused() {
        let (fixed, perRun) = RunSettings.splitForTemplate(encoded())
        var s = swvm_settings()
        var error = [CChar](repeating: 0, count: 256)
        let config = templateConfig(fixed)
        #expect(config.withUnsafeBufferPointer { swvm_settings_decode($0.baseAddress, $0.count, &s, &error, error.count) } == 0)
        defer { swvm_settings_free(&s) }
        var caps = RunSettings.Fields()
        caps.add(CFG_CAPS, le64(UInt64.max))
        let run = perRun + caps.bytes
        #expect(run.withUnsafeBufferPointer { swvm_run_fields_apply($0.baseAddress, $0.count, &s, &error, error.count) } != 0)
        #expect(String(cString: error).contains("fixed by the template"), "\(String(cString: error))")
        #expect(s.caps != UInt64.max)
    }
}

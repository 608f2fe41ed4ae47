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

    /// A VM run's MSG_CONFIG fields for `spec`, whole (before the split).
    func encoded(_ spec: RunSpec? = nil, window: (rows: UInt16, cols: UInt16)? = nil) -> [UInt8] {
        RunSettings.encode(spec ?? self.spec(), seccompProgram: nil, window: window,
                           level: .vm(rootDevice: "/dev/vda", hostTimeNanos: 42, probeSource: nil,
                                      entropy: [UInt8](repeating: 0xab, count: 64)))
    }

    func templateConfig(_ fixed: [UInt8]) -> [UInt8] {
        var f = RunSettings.Fields()
        f.add(CFG_TEMPLATE, [0])
        return fixed + f.bytes
    }

    /// guest-init's decode of MSG_CONFIG: nil, or its error (`s` is freed then).
    func decode(_ config: [UInt8], into s: inout swvm_settings) -> String? {
        var error = [CChar](repeating: 0, count: 256)
        let rc = config.withUnsafeBufferPointer { swvm_settings_decode($0.baseAddress, $0.count, &s, &error, error.count) }
        return rc == 0 ? nil : String(cString: error)
    }

    /// guest-init's MSG_RUN: the per-run fields added to `s`; nil, or the error.
    func apply(_ perRun: [UInt8], to s: inout swvm_settings) -> String? {
        var error = [CChar](repeating: 0, count: 256)
        let rc = perRun.withUnsafeBufferPointer { swvm_run_fields_apply($0.baseAddress, $0.count, &s, &error, error.count) }
        return rc == 0 ? nil : String(cString: error)
    }

    /// The settings a template's MSG_CONFIG (`fixed` and CFG_TEMPLATE)
    /// decodes to, for `body`; freed after.
    func withTemplateSettings(_ fixed: [UInt8], _ body: (inout swvm_settings) throws -> Void) rethrows {
        var s = swvm_settings()
        defer { swvm_settings_free(&s) }
        let error = decode(templateConfig(fixed), into: &s)
        #expect(error == nil, "\(error ?? "")")
        try body(&s)
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
        withTemplateSettings(fixed) { s in
            #expect(s.template_mode == 1 && s.nargs == 0 && s.read_only == 1 && s.uid == 1000 && s.nmasked == 1)
            let error = apply(perRun, to: &s)
            #expect(error == nil, "\(error ?? "")")
            #expect(s.template_mode == 0 && s.nargs == 3 && String(cString: s.args[2]!) == "echo secret-arg")
            #expect(String(cString: s.cwd) == "/srv" && String(cString: s.hostname) == "secret-host" && s.host_time_ns == 42)
            #expect(s.nenv == 1 && String(cString: s.env[0]!) == "TOKEN=secret-env" && s.env[1] == nil && s.entropy_len == 64)
        }
    }

    @Test func aTemplateConfigWithARunFieldIsRefused() {
        var s = swvm_settings()
        let error = decode(templateConfig(encoded()), into: &s)   // the whole list: arguments and all
        #expect(error?.contains("per-run fields") == true, "\(error ?? "accepted")")
    }

    @Test func aRunWithAFixedFieldIsRefused() {
        let (fixed, perRun) = RunSettings.splitForTemplate(encoded())
        withTemplateSettings(fixed) { s in
            var caps = RunSettings.Fields()
            caps.add(CFG_CAPS, le64(UInt64.max))
            let error = apply(perRun + caps.bytes, to: &s)
            #expect(error?.contains("fixed by the template") == true, "\(error ?? "accepted")")
            #expect(s.caps != UInt64.max)
        }
    }
}

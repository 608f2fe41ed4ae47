#if canImport(Glibc)
import Glibc
#endif
import CConfinement
import RunSettingsWire
import Testing
@testable import MicroVM

/// CFG_EXEC_ZYGOTE (issue 19, eleventh session): the host's hint that
/// guest-init starts the exec zygote with the workload, so that the first
/// exec into a detached or OCI VM is spawned from it too. It is per-run (a
/// template saved by a foreground run serves a detached one), refused when
/// malformed, set in an OCI VM's settings and off by default.
struct ExecZygoteHintTests {
    static func decode(_ f: RunSettings.Fields) -> (swvm_settings, String?) {
        var s = swvm_settings()
        var error = [CChar](repeating: 0, count: 256)
        let r = f.bytes.withUnsafeBufferPointer { swvm_settings_decode($0.baseAddress, $0.count, &s, &error, error.count) }
        return (s, r == 0 ? nil : String(cString: error))
    }

    @Test func theHintDecodesAndIsPerRun() {
        var f = RunSettings.Fields()
        f.add(CFG_ARG, "true")
        f.add(CFG_EXEC_ZYGOTE, true)
        var (s, error) = Self.decode(f)
        #expect(error == nil && s.exec_zygote == 1, "\(error ?? "")")
        swvm_settings_free(&s)
        for bad: [UInt8] in [[], [2]] {
            var g = RunSettings.Fields()
            g.add(CFG_ARG, "true")
            g.add(CFG_EXEC_ZYGOTE, bad)
            (s, error) = Self.decode(g)
            #expect(error?.contains("exec zygote") == true, "\(bad): \(error ?? "accepted")")
            swvm_settings_free(&s)
        }
        #expect(swvm_config_tag_per_run(UInt16(CFG_EXEC_ZYGOTE.rawValue)) == 1)
        var hint = RunSettings.Fields()
        hint.add(CFG_EXEC_ZYGOTE, true)
        let split = RunSettings.splitForTemplate(hint.bytes)
        #expect(split.perRun == hint.bytes && split.fixed.isEmpty, "\(split)")
    }

    /// A foreground run never asks for it: the zygote's start would compete
    /// with its workload for the guest's one vCPU.
    @Test func offUnlessTheVMIsDetached() {
        #expect(!VMOptions().execZygoteAtStart)
    }
}

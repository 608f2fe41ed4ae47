import CConfinement
import Testing
import RunSettingsWire
@testable import RuntimeSpec
@testable import SwvmBase

/// A run's volumes and terminal are per-run fields (issue 22): they go
/// with MSG_RUN, never into a template's settings (or its key), and a
/// template's settings with them are refused.
extension TemplateFieldsTests {
    func volumeAndTerminalSpec() -> RunSpec {
        var s = spec()
        s.terminal = true
        s.mounts = [MountSpec(kind: .bind(source: "/volumes/0"), destination: "/secret-volume", readOnly: true),
                    MountSpec(kind: .tmpfs, destination: "/scratch", readOnly: false)]
        return s
    }

    @Test func volumesAndTheTerminalAreTheRuns() throws {
        let all = RunSettings.encode(volumeAndTerminalSpec(), seccompProgram: nil, window: (rows: 33, cols: 101),
                                     level: .vm(rootDevice: "/dev/vda", hostTimeNanos: 42, probeSource: nil,
                                                entropy: [UInt8](repeating: 0xab, count: 64)))
        let (fixed, perRun) = RunSettings.splitForTemplate(all)
        #expect(!String(decoding: fixed, as: UTF8.self).contains("secret-volume"), "a volume in the fixed part")
        #expect(String(decoding: fixed, as: UTF8.self).contains("/scratch"), "--tmpfs is the template's")
        var s = swvm_settings()
        var error = [CChar](repeating: 0, count: 256)
        let config = templateConfig(fixed)
        #expect(config.withUnsafeBufferPointer { swvm_settings_decode($0.baseAddress, $0.count, &s, &error, error.count) } == 0,
                "\(String(cString: error))")
        defer { swvm_settings_free(&s) }
        #expect(s.terminal == 0 && s.nvolumes == 0 && s.ntmpfs == 1)
        #expect(perRun.withUnsafeBufferPointer { swvm_run_fields_apply($0.baseAddress, $0.count, &s, &error, error.count) } == 0,
                "\(String(cString: error))")
        #expect(s.terminal == 1 && s.rows == 33 && s.cols == 101 && s.nvolumes == 1 && s.volumes[0].read_only == 1)
        #expect(String(cString: s.volumes[0].destination) == "/secret-volume")
        // In a template's settings they are refused.
        var t = swvm_settings()
        var volume = RunSettings.Fields()
        volume.add(CFG_VOLUME, 0, "/volumes/0", "/data")
        let bad = templateConfig(fixed + volume.bytes)
        #expect(bad.withUnsafeBufferPointer { swvm_settings_decode($0.baseAddress, $0.count, &t, &error, error.count) } != 0)
        #expect(String(cString: error).contains("per-run fields"), "\(String(cString: error))")
    }
}

import CConfinement
import Testing
import RunSettingsWire
@testable import RuntimeSpec
@testable import SwvmBase

/// A run's volumes, terminal and stdin are per-run fields (issue 22): they go
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
        let (fixed, perRun) = RunSettings.splitForTemplate(encoded(volumeAndTerminalSpec(), window: (rows: 33, cols: 101)))
        #expect(!String(decoding: fixed, as: UTF8.self).contains("secret-volume"), "a volume in the fixed part")
        #expect(String(decoding: fixed, as: UTF8.self).contains("/scratch"), "--tmpfs is the template's")
        withTemplateSettings(fixed) { s in
            #expect(s.terminal == 0 && s.nvolumes == 0 && s.ntmpfs == 1)
            let error = apply(perRun, to: &s)
            #expect(error == nil, "\(error ?? "")")
            #expect(s.terminal == 1 && s.rows == 33 && s.cols == 101 && s.nvolumes == 1 && s.volumes[0].read_only == 1)
            #expect(String(cString: s.volumes[0].destination) == "/secret-volume")
        }
        // In a template's settings they are refused.
        var t = swvm_settings()
        var volume = RunSettings.Fields()
        volume.add(CFG_VOLUME, 0, "/volumes/0", "/data")
        let error = decode(templateConfig(fixed + volume.bytes), into: &t)
        #expect(error?.contains("per-run fields") == true, "\(error ?? "accepted")")
    }

    /// -i is the run's: a -i run's template settings (and so its key) are
    /// a plain run's, and MSG_RUN brings stdin.
    @Test func stdinIsTheRuns() throws {
        var interactive = spec()
        interactive.interactive = true
        let (fixed, perRun) = RunSettings.splitForTemplate(encoded(interactive))
        #expect(fixed == RunSettings.splitForTemplate(encoded()).fixed, "-i is in the template's settings")
        withTemplateSettings(fixed) { s in
            #expect(s.interactive == 0)
            let error = apply(perRun, to: &s)
            #expect(error == nil && s.interactive == 1, "\(error ?? "")")
        }
    }
}

import CConfinement
import Testing
import RunSettingsWire
@testable import RuntimeSpec
@testable import SwvmBase

/// An OCI bundle's root template (SWVM_TEMPLATE_OCI_ROOT, issue 19): it
/// fixes only the image layers disk root (the disk flag, the upper layer's
/// entries, the files to warm, the device); every other field, the
/// container's process, mounts and confinement among them, is the run's.
extension TemplateFieldsTests {
    var ociRootFlags: UInt8 { UInt8(SWVM_TEMPLATE_OCI_ROOT) }

    /// A VM run's settings with the disk root's fields, whole.
    func withDiskRoot() -> [UInt8] {
        var f = RunSettings.Fields()
        f.add(CFG_OCI_DISK_ROOT, true)
        f.add(CFG_OCI_UPPER, [UInt8(ascii: "l")] + le32(0o777) + Array("/etc/mtab".utf8) + [0] + Array("/proc/mounts".utf8))
        return encoded() + f.bytes
    }

    func ociRootConfig(_ fixed: [UInt8], flags: UInt8? = nil) -> [UInt8] {
        var f = RunSettings.Fields()
        f.add(CFG_WARM_FILE, "/bin/sh")
        f.add(CFG_TEMPLATE, [flags ?? ociRootFlags])
        return fixed + f.bytes
    }

    @Test func anOCIRootTemplateFixesOnlyTheDiskRoot() throws {
        let (fixed, perRun) = RunSettings.splitForTemplate(withDiskRoot(), flags: ociRootFlags)
        let text = String(decoding: fixed, as: UTF8.self)
        for secret in ["secret-arg", "secret-env", "secret-host", "/proc/kcore", "/srv"] {
            #expect(!text.contains(secret), "\(secret) in the fixed part")
        }
        #expect(text.contains("/etc/mtab") && text.contains("/dev/vda"), "the upper layer and the device are the template's")
        var s = swvm_settings()
        defer { swvm_settings_free(&s) }
        let error = decode(ociRootConfig(fixed), into: &s)
        #expect(error == nil, "\(error ?? "")")
        #expect(s.template_mode == 1 && s.oci_disk_root == 1 && s.noci_upper == 1 && s.nargs == 0 && s.nwarm_files == 1)
        let applied = apply(perRun, to: &s)
        #expect(applied == nil, "\(applied ?? "")")
        #expect(s.template_mode == 0 && s.nargs == 3 && String(cString: s.args[0]!) == "/bin/sh")
        #expect(String(cString: s.hostname) == "secret-host" && String(cString: s.cwd) == "/srv" && s.nmasked == 1 && s.read_only == 1)
    }

    @Test func anOCIRootTemplateRefusesMixedFields() {
        let (fixed, perRun) = RunSettings.splitForTemplate(withDiskRoot(), flags: ociRootFlags)
        // The disk root in MSG_RUN: it is the template's.
        var s = swvm_settings()
        #expect(decode(ociRootConfig(fixed), into: &s) == nil)
        var disk = RunSettings.Fields()
        disk.add(CFG_OCI_DISK_ROOT, true)
        let error = apply(perRun + disk.bytes, to: &s)
        #expect(error?.contains("fixed by the template") == true, "\(error ?? "accepted")")
        swvm_settings_free(&s)
        // A process field in the template's settings.
        var t = swvm_settings()
        var arg = RunSettings.Fields()
        arg.add(CFG_ARG, "true")
        let mixed = decode(ociRootConfig(fixed + arg.bytes), into: &t)
        #expect(mixed?.contains("per-run fields") == true, "\(mixed ?? "accepted")")
        // The OCI root flag with another one.
        var u = swvm_settings()
        let flags = decode(ociRootConfig(fixed, flags: ociRootFlags | UInt8(SWVM_TEMPLATE_PLAIN)), into: &u)
        #expect(flags?.contains("other template flags") == true, "\(flags ?? "accepted")")
        swvm_settings_free(&t)
        swvm_settings_free(&u)
    }

    /// A second template field would silently replace the first one's flags.
    @Test func aSecondTemplateFieldIsRefused() {
        let (fixed, _) = RunSettings.splitForTemplate(withDiskRoot(), flags: ociRootFlags)
        var again = RunSettings.Fields()
        again.add(CFG_TEMPLATE, [UInt8(SWVM_TEMPLATE_PLAIN)])
        var s = swvm_settings()
        defer { swvm_settings_free(&s) }
        let error = decode(ociRootConfig(fixed) + again.bytes, into: &s)
        #expect(error?.contains("a second template field") == true, "\(error ?? "accepted")")
    }
}

import CConfinement
import SwvmBase

extension RunSettings {
    /// Splits a settings field list (RunSettings.encode's) into the fields
    /// an image template fixes and the per-run ones (MSG_RUN's), as
    /// swvm_config_tag_per_run says: the one list both sides use.
    /// `flags`: the template's CFG_TEMPLATE flags (SWVM_TEMPLATE_OCI_ROOT
    /// fixes only an OCI bundle's disk root: swvm_config_tag_per_run_in).
    public static func splitForTemplate(_ fields: [UInt8], flags: UInt8 = 0) -> (fixed: [UInt8], perRun: [UInt8]) {
        var fixed: [UInt8] = [], perRun: [UInt8] = []
        var off = 0
        while off + 6 <= fields.count {
            let tag = le16(fields, off)
            let end = min(fields.count, off + 6 + Int(le32(fields, off + 2)))
            if swvm_config_tag_per_run_in(tag, flags) != 0 { perRun += fields[off..<end] } else { fixed += fields[off..<end] }
            off = end
        }
        return (fixed, perRun)
    }
}

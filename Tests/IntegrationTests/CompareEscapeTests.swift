import Testing
@testable import Compare
import SwvmBase

/// `swvm compare`'s table shows what the runs reported; a VM's masked and
/// read-only paths and devices are what its guest said, so a hostile
/// guest's control characters are shown escaped, as swvm shows any text it
/// did not write (no escape sequence reaches the terminal, no forged line).
struct CompareEscapeTests {
    @Test func guestReportedPathsAreEscapedInTheTable() {
        let hostile = "/proc/kcore\u{1b}[2J\nswvm: forged line\r\u{9b}31m"
        func sample(_ iso: String) -> WorkloadSample {
            let posture = RunReport.Posture(sharesHostKernel: iso == "container", namespaces: ["pid"], capabilities: [],
                                            seccompAllowedSyscalls: 300, noNewPrivileges: true, devices: ["/dev/null\u{07}"],
                                            maskedPaths: [hostile], readOnlyPaths: ["/sys\u{1b}]0;title\u{07}"], vmmConfinement: nil)
            let report = RunReport(isolation: iso, status: 0, execNanos: nil, endNanos: 0, swvmPeakRSS: 0, workloadPeak: nil,
                                   guestMemoryTouched: nil, guestMemorySize: nil, workloadPID: nil, posture: posture)
            return WorkloadSample(startSeconds: nil, totalSeconds: 1, hostPeakBytes: 0, report: report, stdoutBytes: 0, stderrBytes: 0)
        }
        var r = CompareResult(options: CompareOptions(image: "img", runArguments: [], command: ["true"]), hostDescription: "test")
        for iso in CompareResult.isolations { r.workload[iso] = [sample(iso)] }
        let table = CompareReport.table(r)
        #expect(!table.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" || (0x7f..<0xa0).contains($0.value) }, "\(table)")
        #expect(!table.contains("\nswvm: forged line"), "\(table)")
        #expect(table.contains("/proc/kcore\\x1b[2J\\nswvm: forged line\\r\\u{9b}31m"), "\(table)")
        #expect(table.contains("/sys\\x1b]0;title\\x07") && table.contains("/dev/null\\x07"), "\(table)")
    }
}

#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import SwvmBase

/// The files an image template's first run read are in the page cache of
/// the template made after it (issue 22): a run restored from that
/// template reads them without a virtio-blk read (the guest's
/// /proc/diskstats, sectors read, before and after).
@Suite(.serialized, .enabled(if: Harness.vmReady, "needs /dev/kvm, the guest kernel and guest-init"))
struct TemplateWarmTests {
    /// Sectors read from vda before and after reading files of the image
    /// that no template warms by itself (not the image's command or shell).
    /// (Files only: a file stat'ed and never opened, as `ls -l` does,
    /// leaves its inode's block, which no file holds, unrecorded.)
    static let script = "s() { awk '$3 == \"vda\" { print $6 }' /proc/diskstats; }; s; cat /etc/passwd /etc/group >/dev/null; s"

    static func sectors(_ r: CommandResult) -> [Int] { r.out.split(separator: "\n").compactMap { Int($0) } }

    @Test func aTemplateHoldsTheFilesItsFirstRunRead() throws {
        // A fixed setting of this test's own: a template no other run made.
        let options = ["--tmpfs", "/warm-\(getpid())-\(time(nil))"]
        func run() throws -> CommandResult {
            let r = try Command.run([Harness.swvm, "run", "--isolation=vm"] + options + [Harness.exampleImage, "--", "sh", "-c", TemplateWarmTests.script],
                                    timeout: 600, environment: ["SWVM_DEBUG": "1"])
            #expect(r.status == 0 && TemplateWarmTests.sectors(r).count == 2, "\(r)")
            return r
        }
        let first = try run()   // saves the template, records what its workload reads
        let read = TemplateWarmTests.sectors(first)
        #expect(read.count == 2 && read[1] > read[0], "the first run read nothing from the disk: \(first)")
        let second = try run()   // the template with those files
        #expect(second.err.contains("recorded reads: "), "\(second.err)")
        let third = try run()
        #expect(third.err.contains("restored from template: "), "\(third.err)")
        let warm = TemplateWarmTests.sectors(third)
        #expect(warm.count == 2 && warm[0] == warm[1], "the restored run read from the disk: \(third)")
    }
}

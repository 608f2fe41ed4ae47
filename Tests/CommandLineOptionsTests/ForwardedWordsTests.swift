import ArgumentParser
import Testing
@testable import CommandLineOptions

/// swvm compare passes its run options on as the words it was given.
@Suite struct ForwardedWordsTests {
    struct Own: ParsableArguments {
        @Option(name: .customLong("repeat")) var repeats: Int = 3
        @Option(name: [.short, .long]) var output: String?
        @Flag var alsoColdBoot = false
    }

    func forwarded(_ words: [String]) -> [String] {
        forwardedOptionWords(words, forwarded: [RunOptions.self, VMRunOptions.self], own: [Own.self])
    }

    @Test func runOptionsPassInTheirOrderAndFormOwnOnesStay() {
        #expect(forwarded(["--repeat", "2", "-e", "A=1", "--memory=64m", "-it", "-o", "x.txt", "--cpus", "1",
                           "--cpu-profile", "safe", "--also-cold-boot", "-v", "/a:/b", "--read-only", "img", "--", "sh", "-e"])
                == ["-e", "A=1", "--memory=64m", "-it", "--cpus", "1", "--cpu-profile", "safe", "-v", "/a:/b", "--read-only"])
    }

    @Test func theScanEndsAtTheImageOrAtDoubleDash() {
        // Words after the image are the workload's, even when they look like options.
        #expect(forwarded(["img", "--read-only", "--repeat", "2"]) == [])
        #expect(forwarded(["--init", "--", "img", "--tty"]) == ["--init"])
        // .unconditional: "-5" is --memory's value (run reports it).
        #expect(forwarded(["--memory", "-5", "img"]) == ["--memory", "-5"])
    }
}

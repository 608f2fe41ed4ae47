#if canImport(Glibc)
import Glibc
#endif
import CommandLineOptions
import ContainerRuntime
import OCIImage
import RuntimeSpec
import Testing
@testable import SwvmBase
import NativeThreads

/// The container child is a clone of this multithreaded process: only the
/// cloning thread exists in it, so a lock another thread held at clone time
/// (malloc's, stdio's, the locale's) stays held there for ever. The child
/// must call only async-signal-safe functions until execve (confine.c).
@Suite(.serialized) struct ChildStageTests {
    /// 200 containers, half of them failing a step (so the child's error
    /// path, which formats a message, runs too), started in-process while
    /// two other threads allocate, format and ask for errno texts in a loop.
    @Test func containersStartWhileOtherThreadsAllocate() throws {
        let image = try ImageSource.resolve(Harness.exampleImage)
        let stop = Locked(false)
        let busy = try (0..<2).map { n in
            try NativeThread(name: "alloc\(n)") {
                var sink = 0
                while !stop.current {
                    for size in [16, 200, 4096, 70_000, 300_000] {
                        let p = malloc(size)
                        sink &+= Int(bitPattern: p)
                        free(p)
                    }
                    sink &+= "\(sink) \(errnoText(Int32(sink & 127)))".utf8.count
                }
                _ = sink
            }
        }
        let progress = Locked((done: 0, hung: false))
        let watchdog = try NativeThread(name: "watchdog") { Self.watch(progress, stop: stop) }
        defer {
            stop.with { $0 = true }
            busy.forEach { $0.join() }
            watchdog.join()
        }
        for i in 0..<200 {
            let spec = try SpecBuilder.build(image: image, command: i % 2 == 0 ? ["true"] : ["/no/such/command"],
                                             options: try RunOptions.parse([]))
            do {
                let r = try Container(spec: spec).run()
                #expect(i % 2 == 0 && r.status == 0, "container \(i): status \(r.status)")
            } catch let e as SwvmError {
                #expect(i % 2 == 1 && e.code == .commandNotFound, "container \(i): \(e.message)")
            }
            progress.with { $0.done = i + 1 }
            if progress.current.hung { break }
        }
        #expect(!progress.current.hung, "a container child hung before execve")
        #expect(progress.current.done == 200)
    }

    /// Kills this process's children when no container finished for 30 s,
    /// so a hung child fails the test instead of hanging the suite.
    static func watch(_ progress: Locked<(done: Int, hung: Bool)>, stop: Locked<Bool>) {
        var last = -1, since = Clock.monotonicNanos()
        while !stop.current {
            usleep(200_000)
            let done = progress.current.done
            if done != last { last = done; since = Clock.monotonicNanos(); continue }
            guard Clock.monotonicNanos() - since > 30_000_000_000 else { continue }
            progress.with { $0.hung = true }
            for task in (try? FS.listDirectory("/proc/self/task")) ?? [] {
                let children = (try? FS.readText("/proc/self/task/\(task)/children")) ?? ""
                for pid in children.split(separator: " ").compactMap({ pid_t($0) }) { kill(pid, SIGKILL) }
            }
            since = Clock.monotonicNanos()
        }
    }
}

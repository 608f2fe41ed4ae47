#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import GuestMemory
@testable import Snapshot
@testable import SwvmBase
@testable import Virtio
import NativeThreads
import EventLoop

/// virtio-net's back end against a driver in test memory, with a
/// SOCK_SEQPACKET pair standing in for the tap (one frame per message, with
/// the 12-byte virtio header as a tap with IFF_VNET_HDR carries it).
@Suite struct NetDeviceTests {
    typealias Driver = ConsoleDeviceTests.Driver

    final class Rig {
        let device = NetDevice()
        let driver: Driver
        let loop: EventLoop
        let host: Int32
        let tap: Int32
        let interrupts = Locked(0)

        init() throws {
            driver = try Driver(count: 2)
            var fds: [Int32] = [0, 0]
            guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
                throw SwvmError.errno("socketpair")
            }
            _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
            host = fds[1]
            tap = fds[0]
            loop = try EventLoop()
            try loop.start(name: "net-test")
            device.activate(queues: driver.queues, negotiated: NetDevice.mac | NetDevice.csum | NetDevice.guestCsum, interrupt: { [interrupts] in interrupts.with { $0 += 1 } })
            try device.attach(tap: fds[0], events: loop)
        }

        deinit {
            loop.stop()
            close(host)
            close(tap)
        }

        func waitForUsed(_ q: Int, count: Int) throws -> [[UInt8]] {
            var got: [[UInt8]] = []
            for _ in 0..<200 {
                got += try driver.taken(q)
                if got.count >= count { break }
                usleep(5000)
            }
            return got
        }
    }

    static let header = [UInt8](repeating: 0, count: 12)
    /// A header as the guest or the tap writes it: NEEDS_CSUM, csum_start 34, csum_offset 16.
    static let partialChecksum: [UInt8] = [1, 0, 0, 0, 0, 0, 34, 0, 16, 0, 0xee, 0xee]
    static func frame(_ n: Int, _ fill: UInt8) -> [UInt8] { [UInt8](repeating: fill, count: n) }

    @Test func transmitPassesHeaderAndFrame() throws {
        let r = try Rig()
        try r.driver.give(1, data: Self.partialChecksum + Self.frame(60, 0xab))
        r.device.queueNotified(1)
        var buf = [UInt8](repeating: 0, count: 2048)
        let n = read(r.host, &buf, buf.count)
        #expect(n == 72 && Array(buf[0..<12]) == Self.partialChecksum && buf[12..<72].allSatisfy { $0 == 0xab })
        #expect(try r.driver.taken(1).count == 1)
        // A chain with no frame after the header is dropped, not sent.
        try r.driver.give(1, data: Self.header)
        r.device.queueNotified(1)
        #expect(try r.driver.taken(1).count == 1)
        #expect(r.device.framesOut == 1 && r.device.framesDropped == 1)
    }

    @Test func receiveSetsNumBuffersAndWaitsForBuffers() throws {
        let r = try Rig()
        // A frame before the driver has any buffer: kept until it adds one.
        _ = write(r.host, Self.partialChecksum + Self.frame(100, 0x11), 112)
        usleep(50_000)
        #expect(try r.driver.taken(0).isEmpty)
        try r.driver.give(0, size: 1526)
        r.device.queueNotified(0)
        let got = try r.waitForUsed(0, count: 1)
        #expect(got.count == 1)
        if let f = got.first {
            #expect(f.count == 112 && Array(f[0..<10]) == Array(Self.partialChecksum[0..<10]) && f[10] == 1 && f[11] == 0
                    && f[12...].allSatisfy { $0 == 0x11 })
        }
        #expect(r.interrupts.current >= 1)
    }

    @Test func aTooSmallBufferDropsTheFrame() throws {
        let r = try Rig()
        try r.driver.give(0, size: 64)
        try r.driver.give(0, size: 1526)
        _ = write(r.host, Self.header + Self.frame(200, 0x22), 212)
        let got = try r.waitForUsed(0, count: 2)
        #expect(got.count == 1 && got[0].isEmpty, "the small buffer comes back empty")
        #expect(r.device.framesDropped == 1)
        // The next frame uses the next buffer.
        _ = write(r.host, Self.header + Self.frame(90, 0x33), 102)
        let next = try r.waitForUsed(0, count: 1)
        #expect(next.count == 1 && next.first?.count == 102)
    }

    @Test func tapOffloadsFollowTheDriver() {
        let d = NetDevice()
        #expect(d.tapOffloads == 0)
        let memory = try! GuestMemory(ranges: [(0, 1 << 20)])
        let qs = [VirtQueue(index: 0, maxSize: 8, memory: memory), VirtQueue(index: 1, maxSize: 8, memory: memory)]
        d.activate(queues: qs, negotiated: NetDevice.guestCsum | NetDevice.guestTSO4, interrupt: {})
        #expect(d.tapOffloads == 0x03)
        d.activate(queues: qs, negotiated: NetDevice.guestTSO4, interrupt: {})
        #expect(d.tapOffloads == 0, "TSO without checksum offload is not valid")
    }

    @Test func configSpaceAndState() throws {
        let d = NetDevice()
        var mac = [UInt8](repeating: 0xff, count: 8)
        mac.withUnsafeMutableBytes { d.readConfig(offset: 0, into: $0) }
        #expect(Array(mac.prefix(6)) == NetDevice.bootMAC && mac[6] == 0 && mac[7] == 0)
        var w = StateWriter()
        d.saveState(&w)
        var r = StateReader(w.bytes, source: "test")
        try d.restoreState(&r)
        #expect(r.atEnd)
        var bad = StateReader(Array(w.bytes.dropLast()), source: "damaged")
        #expect(throws: SwvmError.self) { try d.restoreState(&bad) }
    }
}

#if canImport(Glibc)
import Glibc
#endif
// A minimal static Swift PID 1: what guest-init would pay for its runtime.
@_silgen_name("reboot") func c_reboot(_ how: Int32) -> Int32
let msg = "SWVM-INIT-MARKER from a static Swift init\n"
_ = msg.withCString { write(1, $0, strlen($0)) }
_ = c_reboot(Int32(bitPattern: 0x01234567))

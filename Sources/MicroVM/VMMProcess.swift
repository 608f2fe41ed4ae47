#if canImport(Glibc)
import Glibc
#endif
import RuntimeSpec
import SwvmBase
import VMMJail

/// `swvm vmm`: the VMM of an OCI container at the VM level (see VMMOCI).
/// `swvm create` exec's it with the container's stdio on 0, 1 and 2 and
/// its report pipe on `reportFD`; it exits with the workload's status
/// (128+N after signal N), which conmon and containerd's shim wait for.
public enum VMMProcess {
    public static func run(bundle: String, id: String, execFIFO: String, reportFD: Int32, kernel: String?) -> Int32 {
        VMMJail.holdForwardedSignals()   // PID 1 of its own pid namespace
        var oci: VMMOCI?
        do {
            var spec = try OCIConfig.load(bundle: bundle, id: id)
            // process.terminal: stdin is the host pty VMEngine made; as our
            // controlling terminal, a resize of its master raises SIGWINCH.
            if spec.terminal { _ = ioctl(0, UInt(TIOCSCTTY), 0) }
            // The guest's stdin is ours, whatever it is (conmon's pipe,
            // /dev/null): EOF reaches the workload as EOF.
            spec.interactive = true
            let plan = try VMMOCIPlan(spec)
            Log.debug("the VM's root: \(plan.root)")
            oci = try VMMOCI(plan: plan, report: reportFD, execFIFO: execFIFO)
            // What VMRunner itself checks and sizes: the guest's mounts
            // are config.json's (in the plan); its network the pod's
            // namespace when config.json names one, else its own.
            spec.mounts = []
            spec.networkNamespace = spec.oci.flatMap(VMMOCIPlan.podNetworkPath)
            spec.network = spec.networkNamespace == nil ? .none : .namespace
            var options = VMOptions()
            if let kernel { options.kernelPath = kernel }
            options.noTemplate = VMMOCI.templateSkipped(spec.oci)
            return try VMRunner(spec: spec, oci: oci!, options: options).run().status
        } catch {
            let message = (error as? SwvmError)?.message ?? "\(error)"
            if let oci { oci.fail(message) } else { reportEarly(reportFD, message) }
            return 125
        }
    }

    /// A failure before the report descriptor was taken over.
    static func reportEarly(_ fd: Int32, _ message: String) {
        let bytes = Array(("error\n" + message).utf8)
        _ = bytes.withUnsafeBytes { try? FileDescriptor.writeAll(fd, $0) }
        close(fd)
    }
}

"""An exec of `true` into a running VM (its VMM's control socket, `swvm
vm-exec`) vs a warm `swvm run --isolation=vm -- true`, alternating. The
exec's VM runs `sleep` in the background for the whole benchmark; each
figure is the whole command, spawn to exit, with its peak RSS."""
import os
import signal
import subprocess
import sys
import time

from .harness import IMAGE, SWVM, Results, alternate, need, run_checked

NAME = "vmexec"
HELP = "exec of true into a running VM vs a warm swvm run --isolation=vm -- true"


def add_arguments(p):
    p.add_argument("--runs", type=int, default=10)


def background_vm():
    """A VM running sleep, once its workload runs: (process, its VMM pid)."""
    vm = subprocess.Popen([SWVM, "run", "--isolation=vm", IMAGE, "--", "sleep", "3600"],
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while time.time() < deadline:
        probe = subprocess.run([SWVM, "vm-exec", "--vmm-pid", str(vm.pid), "--", "true"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if probe.returncode == 0:
            return vm
        if vm.poll() is not None:
            sys.exit(f"bench: the background VM exited {vm.returncode}")
        time.sleep(0.5)
    vm.kill()
    sys.exit("bench: the background VM's workload never ran")


def run(args):
    need(SWVM, "run: swift build -c release")
    image = os.path.abspath(IMAGE)
    vm = background_vm()
    try:
        exec_argv = [SWVM, "vm-exec", "--vmm-pid", str(vm.pid), "--", "true"]
        run_argv = [SWVM, "run", "--isolation=vm", image, "--", "true"]
        got = alternate(args.runs, {"exec": lambda i: run_checked(exec_argv), "run": lambda i: run_checked(run_argv)},
                        warmup=1)
    finally:
        vm.send_signal(signal.SIGKILL)
        vm.wait()
    r = Results(NAME, f"exec of true into a running VM vs a warm run --isolation=vm -- true, {args.runs} runs each, alternating", args)
    r.command("exec", f"{SWVM} vm-exec --vmm-pid PID -- true (PID: {SWVM} run --isolation=vm {image} -- sleep 3600)")
    r.command("run", run_argv)
    r.print_commands()
    r.time_and_rss(got, 5)
    r.ratio("exec/run", "exec", "run", "time")
    r.note("target: exec at most 0.5x the warm run")
    r.write()

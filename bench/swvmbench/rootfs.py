"""Roots and initramfs images the benchmarks build: busybox roots with a
static tool, cpio archives, the cached example rootfs."""
import json
import os
import shutil
import subprocess

from .harness import IMAGE, REPO, SWVM


def cached_rootfs():
    index = json.load(open(os.path.join(IMAGE, "index.json")))
    digest = index["manifests"][0]["digest"].split(":")[1]
    root = os.path.join(os.environ.get("SWVM_ROOT", "/var/lib/swvm"), "images", digest, "rootfs")
    if not os.path.isdir(root):
        subprocess.run([SWVM, "run", IMAGE, "--", "true"], check=True)
    return root


def boot_initramfs(workdir):
    """The test init from Tests/Fixtures/boot-init, packed as a cpio."""
    src = os.path.join(REPO, "Tests/Fixtures/boot-init")
    root = os.path.join(workdir, "root")
    os.makedirs(root, exist_ok=True)
    for name in ("init", "child"):
        subprocess.run(["gcc", "-static", "-O2", "-o", os.path.join(root, name), os.path.join(src, name + ".c")], check=True)
    return write_cpio(root, os.path.join(workdir, "initrd.cpio"))


def static_tool(work, source):
    """bench/SOURCE.c built static (musl when installed) into work/."""
    cc = shutil.which("musl-gcc") or "gcc"
    tool = os.path.join(work, os.path.splitext(source)[0])
    subprocess.run([cc, "-static", "-O2", "-o", tool, os.path.join(REPO, "bench", source)], check=True)
    return tool


def busybox_root(root, tool, applets, dirs):
    """A plain root filesystem with busybox (these applets), the tool at
    /NAME and root in /etc/passwd and /etc/group: an IMAGE for both levels."""
    for d in dirs:
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy(shutil.which("busybox"), os.path.join(root, "bin/busybox"))
    for applet in applets:
        os.symlink("busybox", os.path.join(root, "bin", applet))
    shutil.copy(tool, os.path.join(root, os.path.basename(tool)))
    with open(os.path.join(root, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n")
    with open(os.path.join(root, "etc/group"), "w") as f:
        f.write("root:x:0:\n")


def write_cpio(root, cpio):
    """root as a newc initramfs for QEMU."""
    with open(cpio, "wb") as f:
        subprocess.run("find . | cpio -o -H newc", shell=True, cwd=root, stdout=f, stderr=subprocess.DEVNULL, check=True)
    return cpio


def netperf_tools(work):
    """bench/netperf.c, static, and a plain root filesystem that holds it
    (busybox for the shell), usable as an IMAGE by both isolation levels."""
    tool = static_tool(work, "netperf.c")
    root = os.path.join(work, "rootfs")
    busybox_root(root, tool, ("sh", "ip", "sed", "mount"), ("bin", "etc", "proc", "sys", "dev", "tmp"))
    return tool, root


def fsperf_tools(work):
    """bench/fsperf.c, static, in a plain root with busybox (the IMAGE of
    both isolation levels)."""
    tool = static_tool(work, "fsperf.c")
    root = os.path.join(work, "rootfs")
    busybox_root(root, tool, ("sh",), ("bin", "etc", "proc", "sys", "dev", "tmp", "data"))
    return tool, root

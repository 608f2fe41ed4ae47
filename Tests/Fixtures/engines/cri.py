#!/usr/bin/python3
"""A minimal CRI client (Kubernetes' runtime.v1.RuntimeService, the calls a
kubelet makes to start a pod), for the containerd tests: Debian 12 has no
crictl. It speaks gRPC through Debian's python3-grpcio and encodes the few
protobuf messages it needs by hand (field numbers from cri-api's api.proto).

    cri.py SOCKET [--pod-network] runp NAME HANDLER LOGDIR       -> pod sandbox id
    cri.py SOCKET [--pod-network] create SANDBOX NAME POD LOGDIR IMAGE CMD...      -> container id
    cri.py SOCKET start ID
    cri.py SOCKET status ID                      -> STATE EXIT_CODE
    cri.py SOCKET exec ID TIMEOUT CMD...         -> its stdout, stderr; exits with its status
    cri.py SOCKET podip SANDBOX                  -> the pod's IP address
    cri.py SOCKET stop ID TIMEOUT
    cri.py SOCKET rm ID
    cri.py SOCKET stopp SANDBOX
    cri.py SOCKET rmp SANDBOX

The pod uses the node's network and IPC, and the container a PID namespace
of its own, as a hostNetwork pod's would; with --pod-network the pod has
its own network and IPC namespaces (the CNI plugins of containerd's config
make its network), as a Kubernetes pod has by default.
"""
import sys

import grpc

SERVICE = "/runtime.v1.RuntimeService/"
STATES = {0: "CREATED", 1: "RUNNING", 2: "EXITED", 3: "UNKNOWN"}
POD, CONTAINER, NODE = 0, 1, 2


# ---------------------------------------------------------------- protobuf

def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(number, value):
    """One field: int (varint), str/bytes (length-delimited), list (repeated)."""
    if value is None:
        return b""
    if isinstance(value, list):
        return b"".join(field(number, v) for v in value)
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return varint(number << 3) + varint(value) if value else b""
    if isinstance(value, str):
        value = value.encode()
    return varint(number << 3 | 2) + varint(len(value)) + value


def message(*fields):
    return b"".join(field(n, v) for n, v in fields)


def decode(data):
    """{field number: [values]}: ints for varints, bytes for the rest."""
    out, i = {}, 0
    while i < len(data):
        key, i = read_varint(data, i)
        number, kind = key >> 3, key & 7
        if kind == 0:
            value, i = read_varint(data, i)
        elif kind == 2:
            size, i = read_varint(data, i)
            value, i = data[i:i + size], i + size
        elif kind == 1:
            value, i = data[i:i + 8], i + 8
        elif kind == 5:
            value, i = data[i:i + 4], i + 4
        else:
            raise ValueError(f"protobuf wire type {kind}")
        out.setdefault(number, []).append(value)
    return out


def read_varint(data, i):
    n, shift = 0, 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


# ---------------------------------------------------------------- messages

def namespace_options(network, pid, ipc):
    return message((1, network), (2, pid), (3, ipc))


def sandbox_config(name, logdir, shared):
    metadata = message((1, name), (2, f"uid-{name}"), (3, "default"))
    security = message((1, namespace_options(shared, CONTAINER, shared)))   # LinuxSandboxSecurityContext
    linux = message((2, security))                                          # LinuxPodSandboxConfig
    return message((1, metadata), (3, logdir), (8, linux))


def container_config(name, image, argv, shared):
    security = message((3, namespace_options(shared, CONTAINER, shared)))   # LinuxContainerSecurityContext
    linux = message((2, security))                                      # LinuxContainerConfig
    return message((1, message((1, name))), (2, message((1, image))), (3, argv[:1]), (4, argv[1:]),
                   (11, f"{name}.log"), (15, linux))


def call(channel, method, request):
    return channel.unary_unary(SERVICE + method)(request, timeout=120)


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    socket, args = argv[1], argv[2:]
    shared = NODE
    if args[:1] == ["--pod-network"]:
        shared, args = POD, args[1:]
    verb, args = args[0], args[1:]
    with grpc.insecure_channel("unix://" + socket) as ch:
        if verb == "runp":
            name, handler, logdir = args
            reply = call(ch, "RunPodSandbox", message((1, sandbox_config(name, logdir, shared)), (2, handler)))
            print(decode(reply)[1][0].decode())
        elif verb == "create":
            sandbox, name, pod, logdir, image, *command = args
            request = message((1, sandbox), (2, container_config(name, image, command, shared)), (3, sandbox_config(pod, logdir, shared)))
            print(decode(call(ch, "CreateContainer", request))[1][0].decode())
        elif verb == "exec":
            container, timeout, *command = args
            reply = decode(call(ch, "ExecSync", message((1, container), (2, command), (3, int(timeout)))))
            sys.stdout.buffer.write(reply.get(1, [b""])[0])
            sys.stderr.buffer.write(reply.get(2, [b""])[0])
            sys.exit(reply.get(3, [0])[0] & 0xFF)
        elif verb == "podip":
            status = decode(decode(call(ch, "PodSandboxStatus", message((1, args[0]))))[1][0])
            network = decode(status.get(5, [b""])[0])
            print(network.get(1, [b""])[0].decode())
        elif verb == "stop":
            call(ch, "StopContainer", message((1, args[0]), (2, int(args[1]))))
        elif verb == "start":
            call(ch, "StartContainer", message((1, args[0])))
        elif verb == "status":
            status = decode(decode(call(ch, "ContainerStatus", message((1, args[0]))))[1][0])
            state = STATES.get(status.get(3, [0])[0], "?")
            code = status.get(7, [0])[0]
            print(state, code - (1 << 64) if code >= 1 << 63 else code)
        elif verb == "rm":
            call(ch, "RemoveContainer", message((1, args[0])))
        elif verb == "stopp":
            call(ch, "StopPodSandbox", message((1, args[0])))
        elif verb == "rmp":
            call(ch, "RemovePodSandbox", message((1, args[0])))
        else:
            sys.exit(f"cri.py: unknown verb {verb!r}\n{__doc__}")


if __name__ == "__main__":
    try:
        main(sys.argv)
    except grpc.RpcError as e:
        sys.exit(f"cri.py {' '.join(sys.argv[2:3])}: {e.code().name}: {e.details()}")

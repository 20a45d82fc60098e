"""The Python `kubernetes` client's exec and port-forward (WebSocket channels) against a running pod.

Run by tests/pods.rs with the server's kubeconfig, and the pod, whose port 8080 serves "hello through the tunnel"
on the pod's localhost; exits non-zero on any failure.
"""

import sys
import time

from kubernetes import client, config
from kubernetes.stream import portforward, stream

config.load_kube_config(sys.argv[1])
core = client.CoreV1Api()
pod = sys.argv[2]

# exec: output, then the exit code from the status channel.
session = stream(
    core.connect_get_namespaced_pod_exec, pod, "default",
    command=["sh", "-c", "echo from python; exit 2"],
    stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False,
)
session.run_forever(timeout=20)
assert session.read_stdout() == "from python\n" or "from python" in (session.read_all() or ""), "no output"
assert session.returncode == 2, session.returncode

# exec with stdin.
session = stream(
    core.connect_get_namespaced_pod_exec, pod, "default",
    command=["cat"], stderr=True, stdin=True, stdout=True, tty=False, _preload_content=False,
)
session.write_stdin("typed in python\n")
received = ""
deadline = time.time() + 20
while "typed in python" not in received and session.is_open() and time.time() < deadline:
    session.update(timeout=5)
    received += session.read_stdout() or ""
assert "typed in python\n" in received, received
session.close()

# port-forward to a port that only listens on the pod's localhost.
forward = portforward(core.connect_get_namespaced_pod_portforward, pod, "default", ports="8080")
sock = forward.socket(8080)
sock.settimeout(20)
sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
answer = b""
while True:
    data = sock.recv(4096)
    if not data:
        break
    answer += data
sock.close()
assert answer.startswith(b"HTTP/1.1 200 OK"), answer
assert answer.endswith(b"hello through the tunnel\n"), answer
assert forward.error(8080) is None, forward.error(8080)
print("python streams: ok")

"""A free TCP port for a process started next to this one (the demo's kiosk UIs; tests and benchmarks
use it for their servers)."""
from __future__ import annotations

import random
import socket

# Below the kernel's ephemeral range (ip_local_port_range, 32768-60999 by default): a port the kernel
# hands out as free (bind to port 0) can be taken, before the new process binds it, by an outgoing
# connection (to PostgreSQL, Redis, another server), which CI once hit ("Address already in use").
PORTS = range(20000, 32000)
_pick = random.SystemRandom()  # not the module's RNG, which a test run may seed alike in every worker


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now, outside the range outgoing connections take theirs from."""
    for _ in range(200):
        port = _pick.choice(PORTS)
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")

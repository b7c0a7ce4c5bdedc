"""Small networking helpers shared by serving, distributed training, the UI and the tests."""

from __future__ import annotations

import random
import socket

LOOPBACK = "127.0.0.1"
_PORT_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"
_LOWEST = 10000  # below this: well-known and registered ports other software expects


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux), else IANA's."""
    try:
        with open(_PORT_RANGE_FILE, encoding="ascii") as fh:
            low, high = (int(v) for v in fh.read().split())
        return low, high
    except (OSError, ValueError):
        return 49152, 65535


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port on `host` that nothing listens on right now, outside the ephemeral range.

    A port the kernel picks (bind to 0) comes from the ephemeral range, the same range it hands
    out as the local port of every outgoing connection: a server restarted on such a port (after
    a crash, say) can find it taken by some client's connection in between. Ports below that
    range are never handed out that way, so they are tried first (at random, so parallel callers
    rarely collide); the kernel's choice is the fallback.

    Args:
        host: the address to bind (loopback by default).

    Returns:
        The port number. Another process may take it before the caller binds it; callers that
        start several servers collect distinct ports and retry on "address in use".
    """
    low, _ = _ephemeral_range()
    if low - 1 > _LOWEST:
        rng = random.SystemRandom()
        for _ in range(64):
            port = rng.randint(_LOWEST, low - 1)
            if _bindable(host, port):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    """Whether something listens on (or holds) `port` on `host` (a SO_REUSEADDR bind fails)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False

"""Small networking helpers shared by serving, distributed training, the UI and the tests."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port on `host` that nothing listens on right now (the kernel's choice).

    Args:
        host: the address to bind (loopback by default).

    Returns:
        The port number. Another process may take it before the caller binds it; callers that
        start several servers collect distinct ports and retry on "address in use".
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]

"""free_port: bindable, and outside the range the kernel hands to outgoing connections."""

from __future__ import annotations

import socket

from genline import netutil


def test_free_port_is_bindable_and_not_ephemeral():
    low, high = netutil._ephemeral_range()
    ports = {netutil.free_port() for _ in range(20)}
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((netutil.LOOPBACK, port))
        if low - 1 > netutil._LOWEST:
            assert netutil._LOWEST <= port < low, (port, low, high)


def test_a_taken_port_is_never_returned(monkeypatch):
    held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    held.bind((netutil.LOOPBACK, 0))
    held.listen()
    taken = held.getsockname()[1]
    try:
        monkeypatch.setattr(netutil, "_ephemeral_range", lambda: (taken + 1, taken + 2))
        monkeypatch.setattr(netutil, "_LOWEST", taken - 1)
        # only two candidates below the range: the held one is skipped
        assert all(netutil.free_port() != taken for _ in range(10))
    finally:
        held.close()

"""free_port: ports free now, and never handed out twice while their server may come back."""

from __future__ import annotations

import socket

from printfleet.testing import free_port
from printfleet.testing.ports import release_port


def test_free_port_can_be_bound_on_loopback() -> None:
    port = free_port()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
            server.bind(("127.0.0.1", port))
            server.listen()
    finally:
        release_port(port)


def test_free_port_never_repeats_a_port_it_handed_out() -> None:
    ports = [free_port() for _ in range(50)]
    try:
        assert len(set(ports)) == len(ports)
        assert not {1883, 5432} & set(ports)
    finally:
        for port in ports:
            release_port(port)

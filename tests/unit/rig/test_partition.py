"""The rig's partition: forwards until cut, then resets what is open and black-holes the rest."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from flotilla.rig.partition import Partition


@pytest.fixture()
def echo() -> Iterator[int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return

            def pump(c: socket.socket) -> None:
                with c:
                    while data := c.recv(1024):
                        c.sendall(data)

            threading.Thread(target=pump, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def roundtrip(port: int, timeout: float = 2.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(b"ping")
        return conn.recv(16)


def test_cut_resets_open_connections_and_black_holes_new_ones(echo: int) -> None:
    part = Partition("127.0.0.1", echo)
    try:
        assert roundtrip(part.port) == b"ping"
        held = socket.create_connection(("127.0.0.1", part.port), timeout=2)
        held.sendall(b"x")
        assert held.recv(16) == b"x"
        part.cut()
        try:
            got = held.recv(16)
        except ConnectionResetError:
            got = b""
        assert got == b""  # reset: the open connection is gone
        with pytest.raises(TimeoutError):
            roundtrip(part.port, timeout=0.5)  # accepted, never answered
        assert roundtrip(echo) == b"ping"  # the server itself runs on
        part.heal()
        assert roundtrip(part.port) == b"ping"
        assert part.cuts == 1
    finally:
        part.close()

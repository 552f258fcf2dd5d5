"""A network partition between the operator and one member, for failure tests on the rig.

:class:`Partition` is a TCP forwarder on 127.0.0.1 in front of a member's API server. The
operator is given a kubeconfig that goes through it (:func:`kubeconfig_through`); everything
else of the member (its controllers, KWOK, the training operator, the pods) talks to the API
server directly. :meth:`Partition.cut` severs the operator's side only: open connections are
reset and new ones are accepted and then left hanging (a black hole, as a partition looks from
the outside: no answer, no refusal) until :meth:`Partition.heal`. The member keeps running.
TLS passes through untouched (the rig's serving certificate names 127.0.0.1).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

from flotilla.rig.cluster import ClusterHandle, write_kubeconfig

_CHUNK = 65536


class Partition:
    """Forwards ``127.0.0.1:<port>`` to ``target`` until cut; see the module docstring."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._held: set[socket.socket] = set()
        self._cut = False
        self._closed = False
        self.cuts = 0
        threading.Thread(target=self._accept, name=f"partition-{self.port}", daemon=True).start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def is_cut(self) -> bool:
        return self._cut

    def cut(self) -> None:
        """Sever the operator's side: reset what is open, black-hole what comes next."""
        with self._lock:
            self._cut = True
            self.cuts += 1
            doomed = list(self._open)
            self._open.clear()
        for sock in doomed:
            _reset(sock)

    def heal(self) -> None:
        """Forward again; connections left hanging during the cut are closed (clients reconnect)."""
        with self._lock:
            self._cut = False
            held = list(self._held)
            self._held.clear()
        for sock in held:
            _reset(sock)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            doomed = list(self._open | self._held)
            self._open.clear()
            self._held.clear()
        with contextlib.suppress(OSError):
            self._listener.close()
        for sock in doomed:
            _reset(sock)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._closed:
                    _reset(client)
                    return
                if self._cut:
                    self._held.add(client)  # no answer, no refusal
                    continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._open.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(_CHUNK)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(src)
                self._open.discard(dst)
            _reset(src)
            _reset(dst)


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def partition_for(member: ClusterHandle) -> Partition:
    """A forwarder in front of ``member``'s API server (its ``server`` URL, host and port)."""
    host_port = member.server.split("://", 1)[-1].rstrip("/")
    host, _, port = host_port.rpartition(":")
    return Partition(host or "127.0.0.1", int(port))


def kubeconfig_through(member: ClusterHandle, partition: Partition, directory: Path) -> ClusterHandle:
    """A handle to ``member`` whose kubeconfig goes through ``partition`` (same CA and token)."""
    if member.ca_file is None or member.token is None:
        raise ValueError(f"member {member.name}: a rig member (CA file and token) is needed")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{member.name}-through-partition.kubeconfig"
    write_kubeconfig(path, member.name, partition.url, member.ca_file, member.token)
    return ClusterHandle(
        name=member.name,
        role=member.role,
        server=partition.url,
        kubeconfig=path,
        ca_file=member.ca_file,
        token=member.token,
        pids=dict(member.pids),
        labels=dict(member.labels),
    )

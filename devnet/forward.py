"""A TCP forwarder for Redis tests: one endpoint whose server behind can change, as a hosted
Redis's endpoint moves to the replica it promoted, and whose link can be cut (connections
closed, new ones closed at once), as a network partition between a primary and its replica.

Each accepted connection is relayed byte for byte to the target port of the moment; `point_at`
closes the relayed connections so that clients reconnect to the new target, `cut` closes them
and refuses to relay until `point_at` is called again.
"""

from __future__ import annotations

import socket
import threading

from devnet.nodes import free_port


class TcpForwarder:
    def __init__(self, target_port: int | None, port: int | None = None) -> None:
        self.port = port or free_port()
        self._target = target_port
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._server.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="forwarder", daemon=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> TcpForwarder:
        self._thread.start()
        return self

    def point_at(self, target_port: int) -> None:
        """Relay to `target_port` from now on; the connections relayed so far are closed."""
        with self._lock:
            self._target = target_port
        self._close_all()

    def cut(self) -> None:
        """Relay nothing: every connection closed, new ones closed once accepted."""
        with self._lock:
            self._target = None
        self._close_all()

    def _close_all(self) -> None:
        with self._lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _address = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                target = self._target
            try:
                if target is None:
                    raise OSError("cut")
                upstream = socket.create_connection(("127.0.0.1", target), timeout=2)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self._lock:
            self._open -= {source, sink}
        source.close()

    def stop(self) -> None:
        self._stop.set()
        self._server.close()
        self._close_all()
        self._thread.join(5)

    def __enter__(self) -> TcpForwarder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

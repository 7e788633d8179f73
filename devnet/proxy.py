"""A JSON-RPC proxy in front of anvil for fault and cost tests: it counts the calls by method
(batch members one by one), can answer slowly, and can go down (refuse connections) and come
back on the same port."""
from __future__ import annotations

import collections
import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

from devnet.nodes import free_port


class RpcProxy:
    def __init__(self, upstream: str, *, port: Optional[int] = None, delay: float = 0.0) -> None:
        self.upstream = upstream
        self.port = port or free_port()
        self.delay = delay
        self.calls: collections.Counter[str] = collections.Counter()
        self.requests = 0
        self._lock = threading.Lock()
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "RpcProxy":
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                proxy._count(body)
                if proxy.delay:
                    time.sleep(proxy.delay)
                request = urllib.request.Request(proxy.upstream, data=body,
                                                 headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        payload = response.read()
                except OSError:
                    self.send_error(502)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="rpc-proxy",
                                        daemon=True)
        self._thread.start()
        return self

    def _count(self, body: bytes) -> None:
        try:
            message = json.loads(body)
        except ValueError:
            return
        members = message if isinstance(message, list) else [message]
        with self._lock:
            self.requests += 1
            for member in members:
                self.calls[member.get("method", "?")] += 1

    def reset_counts(self) -> None:
        with self._lock:
            self.calls.clear()
            self.requests = 0

    def total_calls(self) -> int:
        with self._lock:
            return sum(self.calls.values())

    def stop(self) -> None:
        """Go down: the port refuses connections until `start()` again."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "RpcProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""The monitor's HTTP server: waitress, held to what a public health port needs.

Deployments publish the monitor's port, so anyone can connect. Two things waitress allows by
default would let them fill the disk or starve the health probes:
- request bodies up to 1 GiB, spooled to a temporary file past 512 KiB. The monitor reads no
  body: one announced (Content-Length or chunked) is refused with 413 once its headers are read,
  and the connection closed, nothing of the body read beyond the socket read that held the
  headers;
- at `connection_limit` open connections waitress stops accepting, and probes wait in the listen
  backlog, while each byte a slow client sends resets its idle timer. Here the server always
  accepts: beyond the limit it closes the connection that has waited longest for its request
  (never one being answered), and a request whose headers do not arrive within the header
  timeout is closed at the next cleanup. A probe, which sends its request at once, is answered
  however many slow or idle connections are open.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

MAX_BODY = 1  # bytes: a request announcing any body at all is refused
MAX_HEADERS = 16 * 1024  # bytes of request line and headers (waitress allows 256 KiB)


class MonitorChannel(HTTPChannel):
    """A connection that knows since when the request now arriving has been coming."""

    waiting_since: float | None = None  # time.time() of its first byte, while incomplete

    def received(self, data: bytes) -> bool:
        if data and self.waiting_since is None:
            self.waiting_since = time.time()
        result = super().received(data)
        if self.request is None:  # every request received so far is complete
            self.waiting_since = None
        return result


class MonitorServer(TcpWSGIServer):
    """Accepts always, closing the longest-waiting connection beyond the limit; closes requests
    whose headers take longer than `header_timeout` seconds."""

    channel_class = MonitorChannel
    header_timeout = 5.0

    def readable(self) -> bool:
        now = time.time()
        if now >= self.next_channel_cleanup:
            self.next_channel_cleanup = now + self.adj.cleanup_interval
            self.maintenance(now)
        return self.accepting

    def handle_accept(self) -> None:
        if len(self.active_channels) >= self.adj.connection_limit:
            self._close_longest_waiting()
        super().handle_accept()

    def _close_longest_waiting(self) -> None:
        waiting = [c for c in self.active_channels.values() if not c.requests]
        if waiting:
            min(waiting, key=lambda c: c.waiting_since or c.last_activity).handle_close()

    def maintenance(self, now: float) -> None:
        super().maintenance(now)  # connections idle for channel_timeout
        cutoff = now - self.header_timeout
        for channel in self.active_channels.values():
            if not channel.requests and (channel.waiting_since or now) < cutoff:
                channel.will_close = True


def create_monitor_server(
    app: Callable, *, sockets: dict, header_timeout: float, **adjustments: object
) -> MonitorServer:
    """A server of `app` on each address of `adjustments` (waitress's names), all in the socket
    map `sockets`, whose `run()` serves them all; the last one is returned."""
    adj = Adjustments(
        max_request_body_size=MAX_BODY, max_request_header_size=MAX_HEADERS, **adjustments
    )
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(adj.threads)
    server = None
    for sockinfo in adj.listen:
        server = MonitorServer(app, sockets, dispatcher=dispatcher, adj=adj, sockinfo=sockinfo)
        server.header_timeout = header_timeout
    assert server is not None, "no address to listen on"
    return server

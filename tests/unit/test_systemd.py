"""systemd.Notifier against a real datagram socket, with a fake clock for the watchdog."""

from __future__ import annotations

import socket

import pytest

from depeg_processor.systemd import Notifier


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def listener(tmp_path):
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.setblocking(False)
        yield path, sock


def drain(sock) -> list[str]:
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except BlockingIOError:
            return messages


def test_ready_stopping_and_rate_limited_watchdog(listener) -> None:
    path, sock = listener
    clock = Clock()
    notifier = Notifier(path, watchdog_usec=10_000_000, monotonic=clock)  # 10 s: ping every 5 s
    notifier.ready("processing")
    notifier.watchdog()
    notifier.watchdog()  # too soon: not sent
    clock.now += 5.0
    notifier.watchdog()
    notifier.stopping()
    assert drain(sock) == ["READY=1\nSTATUS=processing", "WATCHDOG=1", "WATCHDOG=1", "STOPPING=1"]


def test_without_notify_socket_nothing_happens() -> None:
    notifier = Notifier.from_environ({})
    assert not notifier.enabled
    notifier.ready()
    notifier.watchdog()  # no socket, no error


def test_watchdog_off_without_watchdog_usec(listener) -> None:
    path, sock = listener
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": path})
    notifier.watchdog()
    notifier.ready()
    assert drain(sock) == ["READY=1"]


def test_unreachable_socket_is_logged_not_raised(tmp_path, caplog) -> None:
    Notifier(str(tmp_path / "missing")).ready()
    assert "sd_notify" in caplog.text

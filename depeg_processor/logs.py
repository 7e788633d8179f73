"""Logging: JSON lines in production (`NODE_ENV=production`), readable lines elsewhere.

Every line carries the thread name; lines about an application name its entity id and
transaction hash in the message, so one grep tells its story.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)-7s [%(threadName)s] %(name)s: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(threadName)s %(name)s %(message)s"
NOISY = ("urllib3", "requests", "redis", "waitress.queue")


def configure_logging(*, level: str, production: bool, stream: TextIO = sys.stderr) -> None:
    handler = logging.StreamHandler(stream)
    if production:
        handler.setFormatter(
            JsonFormatter(
                JSON_FIELDS,
                rename_fields={
                    "asctime": "time",
                    "levelname": "level",
                    "threadName": "thread",
                    "name": "logger",
                },
            )
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in NOISY:  # their debug lines would carry request bodies (signatures)
        logging.getLogger(name).setLevel(max(logging.INFO, logging.getLevelName(level)))

"""What the processor needs from the Redis server, checked at start and by `check-config`.

- Redis 6.2 or later (the stream commands used, such as `XTRIM MINID`, appeared in 6.2): an
  older server refuses to start the processor.
- `maxmemory-policy noeviction`: any other policy lets Redis drop keys under memory pressure,
  and with them applications, write-ahead records or stream entries, without an error.
- `appendonly yes` with `appendfsync everysec` or `always`: without the append-only file a
  restart loses what was written since the last snapshot, write-ahead records included.
The last two only warn: the deployment decides. Hosted Redis often refuses `CONFIG`; then the
report says these could not be checked instead of failing.
"""

from __future__ import annotations

import dataclasses
import re

import redis

from .errors import StartupError

MIN_VERSION = (6, 2, 0)
SETTINGS = ("maxmemory-policy", "appendonly", "appendfsync")


@dataclasses.dataclass(frozen=True)
class ServerReport:
    """What the server said about itself, and what in it falls short."""

    version: str | None
    settings: dict[str, str]
    warnings: tuple[str, ...]
    unchecked: tuple[str, ...]  # what could not be read, with the reason

    def summary(self) -> str:
        known = ", ".join(f"{name} {value}" for name, value in self.settings.items())
        return f"redis {self.version or 'of unknown version'}" + (f" ({known})" if known else "")


def parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def judge(settings: dict[str, str]) -> tuple[str, ...]:
    """Warnings about the settings that were read (a missing one is not judged)."""
    warnings = []
    policy = settings.get("maxmemory-policy")
    if policy is not None and policy != "noeviction":
        warnings.append(
            f"maxmemory-policy is {policy!r}, not 'noeviction': under memory "
            "pressure Redis may silently evict applications, transaction records "
            "or stream entries"
        )
    if settings.get("appendonly") == "no":
        warnings.append(
            "appendonly is 'no': a Redis restart loses what was written since the "
            "last snapshot, write-ahead transaction records included; set "
            "appendonly yes with appendfsync everysec or always"
        )
    elif settings.get("appendonly") == "yes" and settings.get("appendfsync") == "no":
        warnings.append(
            "appendfsync is 'no': the operating system decides when the "
            "append-only file reaches the disk; use everysec or always"
        )
    return tuple(warnings)


def inspect(client: redis.Redis) -> ServerReport:
    """Read the version and the settings, asked in one round trip (a pipeline, no
    transaction: each answer judged on its own, as the commands sent one by one would be);
    raises StartupError for a server that is too old (redis.RedisError when it cannot be
    reached)."""
    pipe = client.pipeline(transaction=False)
    pipe.info("server")
    for name in SETTINGS:
        pipe.config_get(name)
    info, *configs = pipe.execute(raise_on_error=False)
    unchecked: list[str] = []
    version: str | None = None
    if isinstance(info, redis.ResponseError):
        unchecked.append(f"version: INFO refused ({info})")
    elif isinstance(info, Exception):
        raise info
    else:
        version = str(info.get("redis_version") or "") or None
    if version is not None and parse_version(version) < MIN_VERSION:
        raise StartupError(
            f"Redis {version} is too old: the processor needs "
            f"{'.'.join(map(str, MIN_VERSION))} or later"
        )
    settings: dict[str, str] = {}
    for name, answer in zip(SETTINGS, configs):
        if isinstance(answer, redis.ResponseError):
            unchecked.append(f"{', '.join(SETTINGS)}: CONFIG GET refused ({answer})")
            break
        if isinstance(answer, Exception):
            raise answer
        value = answer.get(name)
        if value is None:
            unchecked.append(f"{name}: not reported by CONFIG GET")
        else:
            settings[name] = str(value)
    return ServerReport(
        version=version, settings=settings, warnings=judge(settings), unchecked=tuple(unchecked)
    )

"""What the web app's users control: the stream entries and application hashes it writes.

Their bytes reach this service unchecked, so:

- the Redis client decodes with `surrogateescape` (`REDIS_DECODING`): bytes that are not UTF-8
  arrive as lone surrogates instead of failing the read, fail validation like any bad value,
  and are written back as the very same bytes;
- an application hash is loaded through a server-side script that returns only its sizes when
  it is larger than any the web app writes (`HashGuard`), so no hash can exhaust the process;
- values shown in logs, reasons and dead letters are escaped and clipped (`shown`, `escaped`),
  stating the original size, so they can neither forge a line nor copy megabytes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TypeVar

import redis

from ..errors import PermanentError

REDIS_DECODING = {"decode_responses": True, "encoding_errors": "surrogateescape"}
MAX_FIELDS = 32  # the web app writes 9
MAX_VALUE_BYTES = 64 * 1024  # one field name or value; the web app's are under 200 bytes
MAX_HASH_BYTES = 256 * 1024  # all names and values together
NAME_PREFIX_BYTES = 64  # how much of an oversized field name a dead letter keeps
SHOWN_CHARS = 200  # how much of a value a log line or reason shows
KEPT_CHARS = 1024  # how much of a stream entry's value a dead letter keeps

T = TypeVar("T")

# KEYS[1]: the hash. ARGV: most fields, most bytes of one name or value, most bytes in all.
# Replies {'hash', {name, value, ...}}, {'sizes', fields, bytes, {{name prefix, name bytes,
# value bytes}, ...}} or {'type'} when the key holds something other than a hash.
GUARDED_HGETALL = """
local count = redis.pcall('HLEN', KEYS[1])
if type(count) == 'table' then return {'type'} end
if count > tonumber(ARGV[1]) then return {'sizes', count, -1, {}} end
local limit, total, oversized = tonumber(ARGV[2]), 0, {}
for _, name in ipairs(redis.call('HKEYS', KEYS[1])) do
  local size = redis.call('HSTRLEN', KEYS[1], name)
  total = total + #name + size
  if #name > limit or size > limit then
    oversized[#oversized + 1] = {string.sub(name, 1, tonumber(ARGV[4])), #name, size}
  end
end
if #oversized > 0 or total > tonumber(ARGV[3]) then
  return {'sizes', count, total, oversized}
end
return {'hash', redis.call('HGETALL', KEYS[1])}
"""


def byte_size(value: str) -> int:
    """The size in bytes of a value as stored in Redis."""
    return len(value.encode("utf-8", "surrogateescape"))


def is_utf8(value: str) -> bool:
    """Whether a decoded value was valid UTF-8 in Redis (no escaped bytes in it)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def escaped(value: str, limit: int = KEPT_CHARS) -> str:
    """`value` as one line of printable text for a dead letter, escaped as repr() does (bytes
    that are not UTF-8 as `\\udcNN`, as in JSON; newlines as `\\n`), at most `limit`
    characters, with the original size when it was cut."""
    text = repr(value)[1:-1]
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[{byte_size(value)} bytes]"


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """`value` quoted for a log line or a reason: repr() escapes newlines and odd bytes; a
    long value is cut, stating its size."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}…[{byte_size(value)} bytes]"
    return repr(value)


@dataclasses.dataclass(frozen=True)
class HashContent:
    """An application hash as loaded: its fields, or (when it is too large to load, or not a
    hash) only what was measured of it."""

    fields: dict[str, str]
    sizes: dict | None = None

    @property
    def refused(self) -> str | None:
        """Why the hash was not loaded, or None."""
        if self.sizes is None:
            return None
        if self.sizes.get("notAHash"):
            return "the key holds something other than a hash"
        if self.sizes["fields"] > MAX_FIELDS:
            return f"{self.sizes['fields']} fields (at most {MAX_FIELDS})"
        if self.sizes["oversized"]:
            names = ", ".join(
                f"{item['name']!r} ({item['nameBytes']} + {item['valueBytes']} bytes)"
                for item in self.sizes["oversized"][:3]
            )
            return f"field(s) over {MAX_VALUE_BYTES} bytes: {names}"
        return f"{self.sizes['bytes']} bytes in all (at most {MAX_HASH_BYTES})"

    def check(self, key: str) -> None:
        """Refuse a hash that was not loaded: a permanent error with its sizes in the reason."""
        refused = self.refused
        if refused is not None:
            raise PermanentError(
                f"application {shown(key)} refused: {refused}",
                kind="invalid_entry" if self.sizes.get("notAHash") else "too_large",
            )


class HashGuard:
    """Loads application hashes with GUARDED_HGETALL: in a pipeline (`stage`, then `parse` of
    its reply, all inside `run`) or alone (`load`)."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._script = client.register_script(GUARDED_HGETALL)  # no I/O until it is called
        self._args = (MAX_FIELDS, MAX_VALUE_BYTES, MAX_HASH_BYTES, NAME_PREFIX_BYTES)

    def stage(self, pipe: redis.client.Pipeline, key: str) -> None:
        """Add the guarded load of `key` to `pipe` (by its SHA: see `run`)."""
        pipe.evalsha(self._script.sha, 1, key, *self._args)

    def run(self, execute: Callable[[], T]) -> T:
        """Call `execute` (which builds and executes a pipeline with `stage`d loads); if Redis
        does not know the script (restarted, flushed), load it and call `execute` once more.
        So the usual case stays one round trip."""
        try:
            return execute()
        except redis.exceptions.NoScriptError:
            self._redis.script_load(GUARDED_HGETALL)
            return execute()

    def load(self, key: str) -> HashContent:
        return self.parse(self._script(keys=[key], args=list(self._args)))

    @staticmethod
    def parse(reply: list) -> HashContent:
        if reply[0] == "hash":
            flat = reply[1]
            return HashContent(dict(zip(flat[0::2], flat[1::2])))
        if reply[0] == "type":
            return HashContent({}, {"notAHash": True})
        _kind, count, total, oversized = reply
        return HashContent(
            {},
            {
                "fields": int(count),
                "bytes": int(total) if int(total) >= 0 else None,
                "oversized": [
                    {
                        "name": escaped(name, NAME_PREFIX_BYTES * 6),
                        "nameBytes": int(name_bytes),
                        "valueBytes": int(value_bytes),
                    }
                    for name, name_bytes, value_bytes in oversized
                ],
            },
        )

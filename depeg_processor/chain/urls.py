"""Provider URLs: the list in CHAIN_RPC_URL, and the one way a URL is ever shown.

Hosted providers put their API key in the path or the query (and sometimes in the user part),
so nothing outside this module prints a provider URL: logs, errors, metrics, status and the
monitor say `#index scheme://host[:port]`, the index being the URL's place in the list.
"""

from __future__ import annotations

from urllib.parse import urlsplit


def split_urls(value: str) -> tuple[str, ...]:
    """The URLs of a comma-separated CHAIN_RPC_URL, first preferred; blanks left out."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


def redact(url: str) -> str:
    """The scheme and host (with its port) of `url`: never its user, path or query."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(unparsable URL)"
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}" if parts.scheme and host else "(unparsable URL)"


def provider_name(index: int, url: str) -> str:
    """How provider `index` of the list is named wherever it is shown."""
    return f"#{index} {redact(url)}"

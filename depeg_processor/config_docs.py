"""`.env.example` and `docs/configuration.md`, written from the settings table.

    python -m depeg_processor.config_docs     (or `make settings-docs`, from the repository root)

Both files are generated, never edited: a change to a variable is a change to
`config_table.TABLE`, then this command. A unit test compares the committed files with what it
writes. A secret's line shows no value, only a placeholder that is not one.
"""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

from .config_table import TABLE, Setting, default

ENV_EXAMPLE = Path(".env.example")
CONFIGURATION_PAGE = Path("docs/configuration.md")

_ENV_INTRO = """\
# depeg-backend-processor: every environment variable it reads, with its default.
# Copy to `.env` in the working directory (or set them in the environment, which wins) and
# uncomment what you change. Durations are milliseconds; wei amounts take an integer or a
# number with a unit ("30 gwei", "1.5 ether"). See docs/configuration.md.
# This file is generated from depeg_processor/config_table.py by `make settings-docs`: edit
# the table, not this file.
"""

_PAGE_INTRO = """\
# Configuration: every variable

<!-- This page is generated from depeg_processor/config_table.py by `make settings-docs`:
edit the table, not this page. -->

The processor reads environment variables, then a `.env` file in the working directory
(python-decouple); the environment wins. `.env.example` lists every variable with its default,
ready to copy to `.env`.

Every variable is checked at start before the processor gives up: each one that is missing or
bad is named on a line of its own (`configuration error: NAME: …`) and the process exits with
code 2, so one run shows everything to fix. Secrets are never echoed, neither in these errors
nor in the logs. `python -m depeg_processor check-config` does the same check, then reaches
Redis and the node, and exits non-zero with the reason.

Durations (*ms*) are milliseconds. Wei amounts (*wei*) take an integer or a number with a unit
(`30 gwei`, `1.5 ether`). A *secret* is never shown with its value.

What the Redis server must be (version, eviction policy, append-only file):
[Redis requirements](redis-contract.md#redis-requirements).
"""


def _bound(setting: Setting) -> str:
    return f"must be {setting.bound.text}" if setting.bound else ""


def _with_bound(setting: Setting) -> str:
    bound = _bound(setting)
    return f"{setting.help}; {bound}" if bound else setting.help


def _env_help(setting: Setting) -> str:
    """The help, its bound, and what the example line cannot show."""
    notes = [_with_bound(setting)]
    if setting.production_default:
        notes.append(f"unset: {setting.default}, or {setting.production_default} in production")
    if setting.secret:
        notes.append("a secret, never echoed")
    return "; ".join(notes)


def _comment(text: str) -> list[str]:
    return textwrap.wrap(text, width=98, initial_indent="# ", subsequent_indent="# ")


def _example_value(setting: Setting) -> str:
    if setting.required or setting.example:
        return setting.example
    if setting.production_default:  # no one value is the default
        return ""
    return setting.default or ""


def env_example() -> str:
    """The text of `.env.example`: each variable commented out at its default."""
    lines, section = [_ENV_INTRO.rstrip("\n")], None
    for setting in TABLE:
        if setting.section != section:
            section = setting.section
            lines += ["", f"# --- {section} ".ljust(92, "-")]
        lines += _comment(_env_help(setting))
        lines.append(f"# {setting.name}={_example_value(setting)}")
        if setting.from_file:
            lines += _comment(_file_help(setting))
            lines.append(f"# {setting.file_name}=")
        if setting.alias:
            lines += _comment(_alias_help(setting))
            lines.append(f"# {setting.alias}=")
    return "\n".join(lines) + "\n"


def _file_help(setting: Setting) -> str:
    return (
        f"a file that holds {setting.name} instead (Docker/systemd secrets); "
        "it wins when both are set"
    )


def _alias_help(setting: Setting) -> str:
    return f"{setting.name} in its other spelling, read when that one is unset"


def configuration_page() -> str:
    """The text of `docs/configuration.md`: one table per section of the settings table."""
    lines, section = [_PAGE_INTRO.rstrip("\n")], None
    for setting in TABLE:
        if setting.section != section:
            section = setting.section
            lines += ["", f"## {section[0].upper()}{section[1:]}", ""]
            lines += ["| variable | kind | default | meaning |", "|---|---|---|---|"]
        meaning = _with_bound(setting)
        lines.append(_row(setting.name, _kind(setting), _shown_default(setting), meaning))
        if setting.from_file:
            lines.append(_row(setting.file_name, "path", "unset", _file_help(setting)))
        if setting.alias:
            lines.append(_row(setting.alias, setting.kind.name, "unset", _alias_help(setting)))
    return "\n".join(lines) + "\n"


def _kind(setting: Setting) -> str:
    return f"{setting.kind.name}, secret" if setting.secret else setting.kind.name


def _shown_default(setting: Setting) -> str:
    if setting.required:
        return "required"
    if setting.signer:  # the default signer's keys are required as they always were
        if setting.signer == default("signer"):
            return "required"
        return f"required with `PROCESSOR_SIGNER={setting.signer}`"
    if not setting.default:
        return "unset"
    shown = f"`{setting.default}`"
    if setting.production_default:
        shown += f" (`{setting.production_default}` when `NODE_ENV=production`)"
    return shown


def _row(name: str, kind: str, shown_default: str, meaning: str) -> str:
    linked = re.sub(r"docs/([\w-]+\.md)(#[\w-]+)?", r"[\1](\1\2)", meaning)
    return f"| `{name}` | {kind} | {shown_default} | {linked} |"


def generated() -> dict[Path, str]:
    """Each generated file (relative to the repository root) and its text."""
    return {ENV_EXAMPLE: env_example(), CONFIGURATION_PAGE: configuration_page()}


def main() -> int:
    for path, text in generated().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

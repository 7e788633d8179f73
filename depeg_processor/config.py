"""Settings: read once at start from the environment (then `.env`), validated, frozen.

What is read, its default and its bounds are the rows of `config_table.TABLE`; this module turns
them into the `Settings` object and checks every row before it gives up, so one start names
every missing or bad variable, each on its own line (`ConfigErrors`), and never a secret's value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from decimal import InvalidOperation
from pathlib import Path
from typing import Any

from .chain.urls import split_urls
from .config_kinds import DERIVATION_PATH, check_mnemonic
from .config_table import TABLE, Setting, default
from .errors import ConfigError, ConfigErrors

__all__ = ["DERIVATION_PATH", "Settings", "check_mnemonic", "default", "load_settings"]


def _field(setting: Setting) -> tuple[str, Any, dataclasses.Field]:
    """The field a row fills: no default if the variable is required; secrets out of repr."""
    optional = setting.default is None and not setting.required
    annotation = setting.kind.type | None if optional else setting.kind.type
    default = dataclasses.MISSING if setting.required else setting.unset_value
    return setting.field, annotation, dataclasses.field(default=default, repr=not setting.secret)


class Settings(
    dataclasses.make_dataclass(
        "Settings", [_field(setting) for setting in TABLE], frozen=True, kw_only=True
    )
):
    """Everything the processor is told by its operator: one field per row of the table, its
    default the row's. Secrets (the mnemonic, the provider URLs) are left out of its repr."""

    @property
    def production(self) -> bool:
        return self.node_env == "production"

    @property
    def chain_rpc_urls(self) -> tuple[str, ...]:
        """The providers of CHAIN_RPC_URL (comma-separated), the preferred one first."""
        return split_urls(self.chain_rpc_url)


def load_settings(config: Callable[..., object]) -> Settings:
    """Build the settings from a python-decouple `Config`/`AutoConfig` (environment first,
    then `.env`); ConfigError naming every variable that is missing or bad."""
    values: dict[str, object] = {}
    problems: list[ConfigError] = []
    for setting in TABLE:
        try:
            values[setting.field] = _read(config, setting, values)
        except ConfigError as problem:
            problems.append(problem)
    problems += _relations(values)
    if len(problems) == 1:
        raise problems[0] from None
    if problems:
        raise ConfigErrors(problems) from None
    return Settings(**values)


def _text(config: Callable[..., object], name: str) -> str | None:
    """The variable's text; None if unset."""
    value = config(name, default=None)
    return None if value is None else str(value)


def _read(config: Callable[..., object], setting: Setting, so_far: dict[str, object]) -> object:
    """One row's value, parsed and bounded; ConfigError names the variable it came from."""
    if setting.from_file and (path := _text(config, setting.file_name)) and path.strip():
        return _parse(setting, setting.file_name, _read_file(setting.file_name, path))
    name, raw = setting.name, _text(config, setting.name)
    if setting.alias and not (raw or "").strip():
        alias = _text(config, setting.alias)
        if alias and alias.strip():
            name, raw = setting.alias, alias
    empty_is_unset = not setting.required and not setting.default
    if raw is None or (empty_is_unset and not raw.strip()):
        if setting.required or (setting.signer and so_far.get("signer") == setting.signer):
            raise ConfigError(name, _missing(setting))
        fallback = setting.default
        if setting.production_default and so_far.get("node_env") == "production":
            fallback = setting.production_default  # NODE_ENV is read before: see the table
        return None if fallback is None else _parse(setting, name, fallback)
    if not raw.strip():
        raise ConfigError(name, "is set but empty")
    return _parse(setting, name, raw)


def _missing(setting: Setting) -> str:
    if setting.signer and setting.signer != default("signer"):
        return f"is required with PROCESSOR_SIGNER={setting.signer} but not set"
    return "is required but not set"


def _read_file(name: str, path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(name, f"cannot be read: {error.strerror}") from None


def _parse(setting: Setting, name: str, raw: str) -> object:
    try:
        value = setting.kind.parse(raw)
    except (ValueError, InvalidOperation) as error:
        if name == setting.file_name:  # the parsers of secrets never quote their text
            raise ConfigError(name, f"content {error}") from None
        detail = "is not valid" if setting.secret else f"{raw!r} is not valid: {error}"
        raise ConfigError(name, detail) from None
    problem = setting.bound.problem(value) if setting.bound else None
    if problem:
        raise ConfigError(name, problem)
    return value


def _relations(values: dict[str, Any]) -> list[ConfigError]:
    """The rules between two settings, checked when both were read."""
    problems = []
    alert, minimum = values.get("alert_balance"), values.get("min_balance")
    if alert is not None and minimum is not None and alert < minimum:
        problems.append(
            ConfigError(
                "PROCESSOR_ALERT_BALANCE",
                f"{alert} is below PROCESSOR_MIN_BALANCE {minimum}; "
                "the alert must fire before sending stops",
            )
        )
    tip, cap = values.get("max_priority_fee_per_gas"), values.get("max_fee_per_gas")
    if tip is not None and cap is not None and tip > cap:
        problems.append(ConfigError("MAX_PRIORITY_FEE_PER_GAS", "must not exceed MAX_FEE_PER_GAS"))
    dead, stream = values.get("dead_letter_key"), values.get("stream_key")
    if dead is not None and dead == stream:
        problems.append(
            ConfigError("REDIS_QUEUE_DEAD_LETTER_KEY", "must differ from REDIS_QUEUE_STREAM_KEY")
        )
    return problems

"""redis_server: the version floor and the settings that can lose data, judged from what the
server answers (a stub client here; tests/integration runs real servers)."""

from __future__ import annotations

import pytest
import redis

from depeg_processor.errors import StartupError
from depeg_processor.redis_server import inspect, judge, parse_version

SAFE = {"maxmemory-policy": "noeviction", "appendonly": "yes", "appendfsync": "everysec"}


class StubRedis:
    def __init__(
        self,
        version: str = "7.2.4",
        settings: dict | None = None,
        *,
        info_refused: bool = False,
        config_refused: bool = False,
    ) -> None:
        self.version, self.settings = version, dict(SAFE if settings is None else settings)
        self.info_refused, self.config_refused = info_refused, config_refused
        self.round_trips = 0

    def pipeline(self, transaction: bool = True) -> StubPipeline:
        assert transaction is False  # each answer on its own: one refusal fails nothing else
        return StubPipeline(self)

    def info(self, section: str) -> dict:
        assert section == "server"
        if self.info_refused:
            raise redis.ResponseError("NOPERM this user has no permissions to run 'info'")
        return {"redis_version": self.version}

    def config_get(self, name: str) -> dict:
        if self.config_refused:
            raise redis.ResponseError("unknown command 'CONFIG'")
        return {name: self.settings[name]} if name in self.settings else {}


class StubPipeline:
    """The commands queued, answered in one round trip; with raise_on_error=False a refused
    command's error is its answer, as redis-py's pipeline gives it."""

    def __init__(self, server: StubRedis) -> None:
        self.server, self.queued = server, []

    def info(self, section: str) -> None:
        self.queued.append(lambda: self.server.info(section))

    def config_get(self, name: str) -> None:
        self.queued.append(lambda: self.server.config_get(name))

    def execute(self, raise_on_error: bool = True) -> list:
        assert raise_on_error is False
        self.server.round_trips += 1
        answers = []
        for command in self.queued:
            try:
                answers.append(command())
            except redis.ResponseError as error:
                answers.append(error)
        return answers


def test_the_version_and_the_settings_are_asked_in_one_round_trip() -> None:
    server = StubRedis()
    inspect(server)
    assert server.round_trips == 1


def test_a_safe_server_has_no_warnings() -> None:
    report = inspect(StubRedis())
    assert (report.version, report.settings, report.warnings, report.unchecked) == (
        "7.2.4",
        SAFE,
        (),
        (),
    )
    assert "7.2.4" in report.summary() and "noeviction" in report.summary()


@pytest.mark.parametrize("version", ["6.0.16", "5.0.7", "6.1.99"])
def test_a_server_below_6_2_refuses_to_start(version) -> None:
    with pytest.raises(StartupError, match=f"Redis {version} is too old.*6.2.0 or later"):
        inspect(StubRedis(version))


@pytest.mark.parametrize("version", ["6.2.0", "6.2.14", "7.4.1", "8.0.0"])
def test_6_2_and_later_are_accepted(version) -> None:
    assert inspect(StubRedis(version)).version == version


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"maxmemory-policy": "allkeys-lru"}, ["maxmemory-policy is 'allkeys-lru'"]),
        ({"maxmemory-policy": "volatile-ttl"}, ["maxmemory-policy is 'volatile-ttl'"]),
        ({"appendonly": "no"}, ["appendonly is 'no'"]),
        ({"appendfsync": "no"}, ["appendfsync is 'no'"]),
        ({"appendfsync": "always"}, []),
        (
            {"maxmemory-policy": "allkeys-random", "appendonly": "no"},
            ["maxmemory-policy is 'allkeys-random'", "appendonly is 'no'"],
        ),
    ],
)
def test_settings_that_can_lose_data_are_warned_about(changes, words) -> None:
    warnings = judge({**SAFE, **changes})
    assert len(warnings) == len(words)
    for warning, word in zip(warnings, words):
        assert warning.startswith(word)


def test_config_refused_is_reported_not_fatal() -> None:
    report = inspect(StubRedis(config_refused=True))
    assert report.settings == {} and report.warnings == ()
    assert len(report.unchecked) == 1 and "CONFIG GET refused" in report.unchecked[0]


def test_a_setting_left_out_of_the_answer_is_reported() -> None:
    report = inspect(StubRedis(settings={"appendonly": "yes", "appendfsync": "always"}))
    assert report.unchecked == ("maxmemory-policy: not reported by CONFIG GET",)


def test_info_refused_leaves_the_version_unknown() -> None:
    report = inspect(StubRedis(info_refused=True))
    assert report.version is None and "INFO refused" in report.unchecked[0]
    assert "unknown version" in report.summary()


def test_parse_version_reads_three_numbers() -> None:
    assert parse_version("6.2.14") == (6, 2, 14)
    assert parse_version("7.0.0-rc1") == (7, 0, 0)

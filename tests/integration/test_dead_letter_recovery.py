"""Dead letters are recoverable: list them, fix the cause, requeue; and an entry delivered too
many times (a processor dying on it) is set aside instead of killing every restart."""

from __future__ import annotations

import json

from tests.conftest import wait_until
from tests.integration.conftest import application, cli, dead_letters, service_env


def test_list_fix_and_requeue(start_service, webapp, product, redis_client, redis_server, anvil):
    product.close_bundle(2)
    entity_id = webapp.apply()
    start_service()
    wait_until(  # the letter is written first, then the hash removed (see DeadLetters)
        lambda: (
            entity_id in dead_letters(redis_client) and not application(redis_client, entity_id)
        ),
        what="dead-lettered and its hash removed",
    )

    env = service_env(redis_server.url, anvil.url, product.address)
    listing = cli(env, "dead-letters")
    assert listing.returncode == 0 and entity_id in listing.stdout
    assert "ERROR:DP-013:BUNDLE_NOT_ACTIVE" in listing.stdout
    as_json = json.loads(cli(env, "dead-letters", "--json").stdout)
    [letter] = as_json
    assert letter["entityId"] == entity_id and "signature" not in json.dumps(letter)

    product.open_bundle(2)  # the operator fixes it
    result = cli(env, "requeue", letter["id"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "requeued" in result.stdout
    wait_until(
        lambda: (
            entity_id not in dead_letters(redis_client)
            and not application(redis_client, entity_id)
            and product.application_count() == 1
        ),
        what="requeued application landed",
    )
    assert redis_client.xlen("application:signatures:dead") == 0

    missing = cli(env, "requeue", "1-1")
    assert missing.returncode == 1 and "no dead letter" in missing.stdout


def test_entry_delivered_too_often_is_set_aside(start_service, webapp, product, redis_client):
    poison = webapp.apply()
    good = webapp.apply()
    stream, group = "application:signatures", "depeg-backend-processor"
    redis_client.xgroup_create(stream, group, id="0")
    consumer = "depeg-backend-processor-consumer"
    redis_client.xreadgroup(group, consumer, {stream: ">"}, count=1)  # delivered once ...
    for _ in range(3):  # ... and again by three processors that each died on it
        redis_client.xreadgroup(group, consumer, {stream: "0"}, count=1)

    start_service(max_deliveries=3)
    wait_until(lambda: poison in dead_letters(redis_client), what="poison set aside")
    assert "delivered 5 times" in dead_letters(redis_client)[poison]["reason"]
    wait_until(lambda: not application(redis_client, good), what="the good one landed")
    assert product.application_count() == 1


def test_release_holder_lifts_a_hold_and_says_what_it_held(redis_server, anvil, product):
    """The operator's way out for a holder held after a revert (see wallet.holders)."""
    import redis

    from depeg_processor.wallet.holders import Hold, Holders

    holder, tx = "0x" + "ab" * 20, "0x" + "12" * 32
    client = redis.Redis.from_url(redis_server.url)
    holders = Holders(client, stream="application:signatures")
    pipe = client.pipeline(transaction=True)
    holders.stage_hold(pipe, Hold(holder, "01HOLDERHELD", tx, 7, "ERROR:DP-015:X", 1.0, 2.0))
    pipe.execute()
    env = service_env(redis_server.url, anvil.url, product.address)
    released = cli(env, "release-holder", holder.upper().replace("0X", "0x"))
    assert released.returncode == 0, released.stdout + released.stderr
    assert tx in released.stdout and "01HOLDERHELD" in released.stdout
    assert holders.states([holder])[0].hold is None
    again = cli(env, "release-holder", holder)
    assert again.returncode == 0 and "is not held" in again.stdout
    assert cli(env, "release-holder", "0x1234").returncode == 1

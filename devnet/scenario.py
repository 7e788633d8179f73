"""The real depeg product on anvil with the web app in front of it: what `make demo` and
`make check-deploy` both set up before a processor is started."""

from __future__ import annotations

import dataclasses

import redis

from devnet.depeg import Actors, Depeg, bundle_capital_for, deploy_depeg
from devnet.nodes import Anvil
from devnet.webapp import ProductWebApp, WebApp

CHAIN_ID = 1337  # the price data provider's constructor reverts on anvil's own 31337
PROTECTED_BALANCE = 5_000 * 10**6


@dataclasses.dataclass
class Scenario:
    """A deployed product, a bundle with room for the applications asked for, and the web
    app writing to Redis."""

    depeg: Depeg
    bundle_id: int
    client: redis.Redis
    webapp: ProductWebApp

    def apply(self, count: int) -> list[str]:
        """`count` applications the product accepts, the web app's way; their entity ids."""
        return [self.webapp.apply() for _ in range(count)]

    def apply_without_allowance(self) -> str:
        """An application whose holder approved nothing: the product refuses it (DP-015)."""
        webapp = self.webapp
        premium = self.premium()
        fields = webapp.webapp.application(
            webapp.new_holder(premium),
            protected_balance=webapp.protected_balance,
            duration=webapp.duration,
            bundle_id=self.bundle_id,
        )
        return webapp.submit(fields)

    def premium(self) -> int:
        webapp = self.webapp
        return self.depeg.premium(webapp.protected_balance, webapp.duration, self.bundle_id)


def set_up(anvil: Anvil, redis_url: str, *, applications: int) -> Scenario:
    """Deploy a GIF instance and the depeg product from the npm packages (anvil must run on
    CHAIN_ID) and a bundle for `applications` policies."""
    actors = Actors()
    for account in actors.all():
        anvil.set_balance(account.address, 10**24)
    depeg = deploy_depeg(anvil.url, actors)
    bundle_id = depeg.create_bundle(bundle_capital_for(applications, PROTECTED_BALANCE))
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    webapp = ProductWebApp(
        WebApp(client, CHAIN_ID, depeg.message_helper.address),
        depeg,
        bundle_id,
        protected_balance=PROTECTED_BALANCE,
    )
    return Scenario(depeg=depeg, bundle_id=bundle_id, client=client, webapp=webapp)

"""What `bench.real_product` reports: the spread of gas used against estimates and limits, and
the table it prints."""

from __future__ import annotations

import statistics


def spread(transactions: list[dict]) -> dict:
    """min/median/max of gasUsed, gasUsed/estimate and gasUsed/limit."""

    def three(values: list[float]) -> list[float]:
        return [min(values), statistics.median(values), max(values)] if values else []

    estimated = [t for t in transactions if t["estimate"]]
    return {
        "transactions": len(transactions),
        "estimate_failed": len(transactions) - len(estimated),
        "gas_used": three([t["used"] for t in transactions]),
        "used_per_estimate": [
            round(x, 4) for x in three([t["used"] / t["estimate"] for t in estimated])
        ],
        "used_per_limit": [
            round(x, 4) for x in three([t["used"] / t["limit"] for t in transactions])
        ],
    }


def print_table(result: dict) -> None:
    print(
        f"\nreal depeg product, {result['block_seconds']} s blocks of {result['block_gas']:,} gas"
    )
    print(
        f"{'replicas/wallets':>17} {'apps/s':>7} {'capacity/s':>10} {'share':>6} "
        f"{'blocks':>6} {'minimum':>7} {'reverted':>8} {'median gas':>11} {'sim cap':>8} "
        f"{'refused':>7} {'ERROR waits':>11}"
    )
    for r in result["burst"]:
        print(
            f"{r['replicas']:>8}/{r['wallets']:<8} {r['per_second']:>7} "
            f"{r['chain_capacity_per_second']:>10} {r['of_capacity']:>6} {r['blocks_used']:>6} "
            f"{r['blocks_minimum']:>7} {r['reverted']:>8} {r['median_gas']:>11,} "
            f"{str(r['simulation_gas_cap'] or '-'):>8} {r['simulations_refused']:>7} "
            f"{r['error_lines_for_waiting']:>11}"
        )
    print(
        f"\n{'group':<42} {'n':>4} {'gas used min/median/max':>33} "
        f"{'used/estimate':>22} {'used/limit':>22}"
    )
    for name, s in result["spread"].items():
        gas = "/".join(f"{int(g):,}" for g in s["gas_used"])
        est = "/".join(str(x) for x in s["used_per_estimate"])
        lim = "/".join(str(x) for x in s["used_per_limit"])
        print(f"{name:<42} {s['transactions']:>4} {gas:>33} {est:>22} {lim:>22}")

from depeg_processor.wallet.head import Head, HeadSchedule


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def head(number: int, timestamp: int) -> Head:
    return Head(number=number, timestamp=timestamp, block_hash=f"0x{number:064x}")


def test_idle_asks_every_idle_interval_and_refreshes_the_balance_with_it() -> None:
    clock = Clock()
    schedule = HeadSchedule(min_interval=2.0, idle_interval=30.0, monotonic=clock)
    assert schedule.due(busy=False) and schedule.refresh_due()
    schedule.asked(head(10, 1000), busy=False, refreshed=True)
    clock.now += 29.0
    assert not schedule.due(busy=False) and not schedule.refresh_due()
    clock.now += 1.0
    assert schedule.due(busy=False) and schedule.refresh_due()


def test_busy_asks_once_a_block_as_the_chain_timestamps_say() -> None:
    clock = Clock()
    schedule = HeadSchedule(min_interval=2.0, idle_interval=30.0, monotonic=clock)
    assert schedule.interval(busy=True) == 2.0  # nothing learned yet: the fastest allowed
    for number in range(10, 15):
        schedule.asked(head(number, 1000 + 12 * (number - 10)), busy=True, refreshed=False)
    assert schedule.block_time == 12.0
    assert schedule.interval(busy=True) == 12.0
    clock.now += 11.0
    assert not schedule.due(busy=True)
    clock.now += 1.0
    assert schedule.due(busy=True)


def test_quiet_hours_of_a_chain_that_mines_on_demand_do_not_count_as_slow_blocks() -> None:
    schedule = HeadSchedule(min_interval=0.5, idle_interval=30.0, monotonic=Clock())
    schedule.asked(head(10, 1000), busy=False, refreshed=True)
    schedule.asked(head(11, 4600), busy=True, refreshed=False)  # an hour later, the next block
    schedule.asked(head(14, 4601), busy=True, refreshed=False)
    assert schedule.block_time < 1.0
    assert schedule.interval(busy=True) == 0.5


def test_block_time_is_bounded_by_the_idle_interval_and_confirmations_refresh_soon() -> None:
    schedule = HeadSchedule(min_interval=2.0, idle_interval=30.0, monotonic=Clock())
    schedule.asked(head(1, 0), busy=True, refreshed=True)
    schedule.asked(head(2, 600), busy=True, refreshed=False)
    assert schedule.interval(busy=True) == 30.0
    assert not schedule.refresh_due()
    schedule.refresh_soon()
    assert schedule.refresh_due()


def test_the_block_time_is_the_median_of_the_recent_intervals() -> None:
    schedule = HeadSchedule(min_interval=2.0, idle_interval=30.0, monotonic=Clock())
    timestamp = 1000
    schedule.asked(head(10, timestamp), busy=True, refreshed=False)  # teaches no interval
    for number, interval in enumerate([10, 14, 12], start=11):
        timestamp += interval
        schedule.asked(head(number, timestamp), busy=True, refreshed=False)
    assert schedule.block_time == 12.0  # the middle one of 10, 12 and 14
    schedule.asked(head(14, timestamp + 20), busy=True, refreshed=False)
    assert schedule.block_time == 13.0  # an even count: between the middle two, 12 and 14

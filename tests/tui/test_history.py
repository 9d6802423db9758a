"""The sparklines draw the gateway's sampled history from the first frame, and the table's
in/s and out/s are the newest sample's averages."""

from __future__ import annotations

import time

from tests.conftest import GatewayFactory
from tests.support.procs import free_port
from tests.tui.conftest import QUEUES, Gateway, scenario, until
from tui.app import TopApp
from tui.history import History
from tui.model import HistoryUpdate, QueueTrend
from tui.widgets.trend import Spark, Trend, bars

SAMPLED = QUEUES + "\n[admin]\nhistory = 60\nhistory_interval = 0.2\n"


@scenario
async def test_sparklines_show_the_served_history_on_the_first_frame(
        gateway_factory: GatewayFactory) -> None:
    process = gateway_factory(config_text=SAMPLED,
                              extra_args=["--admin", f"127.0.0.1:{free_port()}"])
    gateway = Gateway(process)
    gateway.publish("jobs/a", 7)
    deadline = time.monotonic() + 10
    while len(gateway.admin().history()["queues"]["jobs"]["depth"]) < 10:
        assert time.monotonic() < deadline, "the gateway sampled no history"
        time.sleep(0.05)
    served = gateway.admin().history()["queues"]["jobs"]
    app = TopApp(gateway.source(), interval=0)  # no timer: only the fetch at start-up
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.snapshot is not None, what="the first frame")
        spark = app.query_one("#depth-spark", Spark)
        # Everything the gateway had when top attached, not one sample of top's own.
        assert len(spark.values) >= len(served["depth"])
        assert list(spark.values[:len(served["depth"])]) == served["depth"][:len(spark.values)]
        assert spark.slots == 300  # 60 s at 0.2 s: the whole width is the window
        assert "last " in str(app.query_one(Trend).border_title)
        assert "means over 0.2s" in str(app.query_one(Trend).border_title)


def test_a_short_history_fills_the_right_end_and_no_data_stays_blank() -> None:
    top, bottom = bars([0.0, 4.0, 8.0], slots=12, width=12, height=2)
    assert top == " " * 9 + "  █" and bottom == " " * 9 + "▁██"
    # A steady figure is a full bar, not an empty line: bars grow from zero.
    assert bars([5000.0] * 4, slots=4, width=4, height=1) == ["████"]


def test_samples_after_the_first_fetch_are_appended_and_the_window_slides() -> None:
    def update(taken: int, values: list[float], start: int = 1) -> HistoryUpdate:
        trend = QueueTrend(start=start, depth=tuple(values), lag_messages=tuple(values),
                           lag_seconds=tuple(values), in_rate=tuple(values),
                           out_rate=tuple(values))
        return HistoryUpdate(interval=5.0, window=15.0, taken=taken,
                             ages=tuple(5.0 * i for i in reversed(range(len(values)))),
                             queues={"jobs": trend})

    history = History()
    history.merge(update(3, [1.0, 2.0, 3.0]))  # the first fetch: the whole window
    history.merge(update(4, [4.0]))  # then what came since: the oldest falls out
    trend = history.trend("jobs")
    assert trend is not None and trend.depth == (2.0, 3.0, 4.0)
    assert history.rates("jobs") == (4.0, 4.0)
    history.merge(update(5, [9.0], start=5))  # the queue was created anew: a new series
    assert (trend := history.trend("jobs")) is not None and trend.depth == (9.0,)
    history.merge(update(2, [7.0, 8.0]))  # a restarted gateway: everything it has
    assert (trend := history.trend("jobs")) is not None and trend.depth == (7.0, 8.0)

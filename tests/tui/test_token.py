"""A gateway that restarts with another admin token while `edgeq top` runs: followed through
admin.json, and said so; with a token given by hand, top stops with the reason instead of
retrying forever."""

from __future__ import annotations

from tests.tui.conftest import Gateway, off_loop, scenario, until
from tui.app import TopApp
from tui.source import AdminSource
from tui.widgets.status import Banner


def restart_with_a_new_token(gateway: Gateway) -> None:
    gateway.process.stop()
    (gateway.process.data_dir / "admin.json").unlink()  # no token to keep: a new one
    gateway.process.start()


def notices(app: TopApp) -> list[str]:
    return [n.message for n in app._notifications]


@scenario
async def test_a_new_token_in_admin_json_is_followed_and_said(queue_gateway: Gateway) -> None:
    old = queue_gateway.admin().token
    app = TopApp(queue_gateway.source(), interval=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.snapshot is not None, what="first figures")
        await off_loop(lambda: restart_with_a_new_token(queue_gateway))
        assert queue_gateway.admin().token != old
        await until(pilot, lambda: any("new admin token" in n for n in notices(app)),
                    timeout=15, what="the notice")
        await until(pilot, lambda: not app.query_one(Banner).has_class("-lost"),
                    what="the banner to clear")
        assert app.refused is None and app.is_running


@scenario
async def test_a_token_given_by_hand_that_stops_working_ends_top_with_the_reason(
        queue_gateway: Gateway) -> None:
    app = TopApp(AdminSource(queue_gateway.admin()), interval=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.snapshot is not None, what="first figures")
        await off_loop(lambda: restart_with_a_new_token(queue_gateway))
        await until(pilot, lambda: app.refused is not None, timeout=15, what="top to stop")
        assert "refuses the admin credentials" in str(app.refused)
        assert "--token" in str(app.refused)
        assert app.return_code == 1

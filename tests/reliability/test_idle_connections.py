"""10,000 idle connections held with keepalive (SPEC §7), while a well-behaved client works.

The descriptor limit is raised for this process and, inherited, for the gateway. Every
connection sends PINGREQ more often than its keepalive and must get PINGRESP each round; a
hundred of them then fall silent and must be dropped after 1.5 x keepalive, the rest stay.

`EDGEQ_IDLE_CONNECTIONS` (default 10,000) and `EDGEQ_IDLE_SECONDS` (how long they are held,
default 12 s; `make test-slow` holds them for 120 s) size it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.reliability.burst import burst_connect, ping_all
from tests.reliability.conftest import assert_no_crash_in_log, env_int, open_fds, rss_kib
from tests.reliability.test_hostile_clients import round_trip
from tests.support.procs import GatewayProcess

KEEPALIVE = 4  # seconds; the gateway drops a silent client after 6


def hold_idle(tmp_path: Path, nofile: Callable[[int], int], count: int, seconds: float) -> None:
    limit = nofile(count * 2 + 1000)
    if limit < count + 500:
        pytest.skip(f"RLIMIT_NOFILE is {limit}; cannot open {count} connections")
    gw = GatewayProcess(data_dir=tmp_path / "var", config_text="[mqtt]\nsys_interval = 1\n")
    gw.start()
    socks = []
    try:
        assert gw.proc is not None
        rss_before = rss_kib(gw.proc.pid)
        start = time.monotonic()
        socks = burst_connect(gw.port, count, "idle", keepalive=KEEPALIVE, timeout=120)
        connected_in = time.monotonic() - start
        rss_held = rss_kib(gw.proc.pid)
        assert open_fds(gw.proc.pid) >= count
        rounds = 0
        held_until = time.monotonic() + seconds
        while time.monotonic() < held_until:
            assert ping_all(socks) == count, f"round {rounds}: some connections were dropped"
            assert round_trip(gw.port, f"idle-{rounds}") < 2.0
            rounds += 1
            time.sleep(max(0.0, min(KEEPALIVE / 2, held_until - time.monotonic())))
        silent, talking = socks[:100], socks[100:]
        deadline = time.monotonic() + KEEPALIVE * 1.5 + 2.5
        while time.monotonic() < deadline:
            assert ping_all(talking) == len(talking)
            time.sleep(KEEPALIVE / 2)
        assert ping_all(silent, timeout=5) == 0, "silent clients outlived 1.5 x keepalive"
        per_connection = (rss_held - rss_before) * 1024 // count
        print(f"\n{count} idle connections: connected in {connected_in:.1f}s, held "
              f"{seconds:.0f}s ({rounds} PINGREQ rounds, all answered), gateway RSS "
              f"{rss_before // 1024} -> {rss_held // 1024} MiB (~{per_connection} B per "
              f"connection); 100 silent ones dropped after 1.5 x keepalive")
        assert gw.proc.poll() is None
        assert_no_crash_in_log(gw)
    finally:
        for s in socks:
            s.close()
        gw.stop()


def test_10k_idle_connections_with_keepalive(tmp_path: Path,
                                             nofile: Callable[[int], int]) -> None:
    hold_idle(tmp_path, nofile, env_int("EDGEQ_IDLE_CONNECTIONS", 10_000),
              env_int("EDGEQ_IDLE_SECONDS", 12))


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_idle_connections_held_long(tmp_path: Path, nofile: Callable[[int], int]) -> None:
    hold_idle(tmp_path, nofile, env_int("EDGEQ_IDLE_CONNECTIONS_SLOW", 10_000),
              env_int("EDGEQ_IDLE_SECONDS_SLOW", 120))

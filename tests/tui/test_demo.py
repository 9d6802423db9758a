"""`edgeq demo` plays its three patterns against a real gateway, or starts its own."""

from __future__ import annotations

import io

from gateway.demo import answers, run_demo
from tests.conftest import GatewayFactory
from tests.support.procs import free_port
from tests.tui.conftest import Gateway


def test_demo_declares_its_queues_and_moves_messages(gateway_factory: GatewayFactory) -> None:
    process = gateway_factory(extra_args=["--admin", f"127.0.0.1:{free_port()}"])
    out = io.StringIO()
    assert run_demo("127.0.0.1", process.port, data_dir=str(process.data_dir), duration=5,
                    out=out) == 0
    text = out.getvalue()
    assert "declared queue images/+" in text
    assert "declared queue telemetry" in text
    assert "declared queue lights/+/commands" not in text  # the default config has it

    queues = {q["filter"]: q for q in Gateway(process).admin().queues()}
    assert queues["images/+"]["dispatch"] == "least_inflight"
    assert queues["images/+"]["enqueued"] > 0 and queues["images/+"]["acked"] > 0
    assert queues["telemetry/#"]["enqueued"] > 0 and queues["telemetry/#"]["acked"] > 0
    assert any(f.startswith("lights/light-") for f in queues)  # per-light instances


def test_demo_starts_its_own_gateway_when_none_answers() -> None:
    port = free_port()
    out = io.StringIO()
    assert run_demo("127.0.0.1", port, duration=2, out=out) == 0
    text = out.getvalue()
    assert f"no gateway answered on 127.0.0.1:{port}" in text
    assert "edgeq top --data-dir" in text
    assert "demo stopped" in text
    assert not answers("127.0.0.1", port)  # and it stopped it

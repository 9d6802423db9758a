"""Managing queues on a running gateway: `edgeq queue ...` as a subprocess and the admin API over
HTTP, as an operator meets them. Every refusal is one readable line (CLI) or a JSON `error`
with the right status (API); nothing is half-done by a refused request."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.mqtt.packets import MQTT_311
from tests.conftest import GatewayFactory
from tests.queues.e2e import EDGEQ, Admin, Run, edgeq_ok, edgeq_queue, publish, table
from tests.support.clients import connected
from tests.support.procs import REPO, GatewayProcess, free_port

CONFIGURED = """
[[queues]]
filter = "jobs/#"
name = "jobs"

[[queues]]
filter = "lights/+/commands"
template = true
"""


def test_cli_creates_lists_shows_purges_and_deletes(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(CONFIGURED)
    Admin(gw)
    out = edgeq_ok(gw.data_dir, "create", "orders/+", "--name", "orders", "--dispatch", "sticky",
                   "--last-value-key", "topic_level:1", "--max-messages", "50",
                   "--max-bytes", "100000", "--ttl", "600", "--overflow", "reject_new",
                   "--max-inflight", "3", "--ack-timeout", "5", "--max-deliveries", "2",
                   "--redelivery-delay", "2", "--redelivery-delay-max", "30",
                   "--dead-letter-expired", "true")
    assert out == "created queue orders\n"
    shown = json.loads(edgeq_ok(gw.data_dir, "show", "orders"))
    assert shown["settings"] == {
        "filter": "orders/+", "name": "orders", "dispatch": "sticky",
        "last_value_key": "topic_level:1", "template": False, "max_messages": 50,
        "max_bytes": 100000, "ttl": 600, "overflow": "reject_new", "max_inflight": 3,
        "ack_timeout": 5, "max_deliveries": 2, "redelivery_delay": 2,
        "redelivery_delay_max": 30, "dead_letter_expired": True}
    assert shown["origin"] == "runtime" and shown["stats"]["kind"] == "last_value"

    publish(gw.port, "orders/a", "1", "2")  # same key: the second replaces the first
    publish(gw.port, "orders/b", "3")
    publish(gw.port, "orders/c", "4")
    listed = table(edgeq_ok(gw.data_dir, "list"))
    assert set(listed) == {"jobs", "lights/+/commands", "orders"}
    assert listed["orders"]["depth"] == "3" and listed["orders"]["kind"] == "last_value"
    assert json.loads(edgeq_ok(gw.data_dir, "show", "orders"))["stats"]["replaced"] == 1

    assert edgeq_ok(gw.data_dir, "purge", "orders") == "purged 3 messages from orders\n"
    assert table(edgeq_ok(gw.data_dir, "list"))["orders"]["depth"] == "0"
    assert edgeq_ok(gw.data_dir, "delete", "orders") == "deleted orders\n"
    assert "orders" not in table(edgeq_ok(gw.data_dir, "list"))
    with connected(gw.port, "late", MQTT_311) as late:
        assert late.subscribe("$queue/orders", qos=1).reason_codes == [0x80]


def test_a_numeric_name_stays_a_name(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(CONFIGURED)
    Admin(gw)
    assert edgeq_ok(gw.data_dir, "create", "audit/#", "--name", "2024") == "created queue 2024\n"
    assert "2024" in table(edgeq_ok(gw.data_dir, "list"))


def test_deleting_a_template_deletes_its_instances(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(CONFIGURED)
    Admin(gw)
    edgeq_ok(gw.data_dir, "create", "dev/+/cmd", "--template", "true",
             "--last-value-key", "user_property:command_type")
    publish(gw.port, "dev/d1/cmd", "on")
    listed = table(edgeq_ok(gw.data_dir, "list"))
    assert listed["dev/+/cmd"]["kind"] == "template"
    assert listed["dev/d1/cmd"]["kind"] == "instance" and listed["dev/d1/cmd"]["depth"] == "1"
    run = edgeq_queue(gw.data_dir, "purge", "dev/+/cmd")
    assert run.returncode == 1 and run.lines == [
        "edgeq: 'dev/+/cmd' is a template; purge one of its instances"]
    edgeq_ok(gw.data_dir, "delete", "dev/+/cmd")
    assert not {"dev/+/cmd", "dev/d1/cmd"} & set(table(edgeq_ok(gw.data_dir, "list")))


def test_runtime_queues_survive_a_restart(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(CONFIGURED)
    Admin(gw)
    edgeq_ok(gw.data_dir, "create", "orders/#", "--name", "orders", "--dispatch",
             "least_inflight")
    publish(gw.port, "orders/1", "first", "second")
    gw.restart()
    Admin(gw)
    assert table(edgeq_ok(gw.data_dir, "list"))["orders"]["depth"] == "2"
    shown = json.loads(edgeq_ok(gw.data_dir, "show", "orders"))
    assert shown["settings"]["dispatch"] == "least_inflight" and shown["origin"] == "runtime"
    with connected(gw.port, "worker", MQTT_311) as worker:
        worker.subscribe("$queue/orders", qos=1)
        assert [worker.receive().payload for _ in range(2)] == [b"first", b"second"]
    assert publish(gw.port, "orders/2", "still bound") == [0]
    assert table(edgeq_ok(gw.data_dir, "list"))["orders"]["depth"] == "1"

    gw.stop()  # admin.json stays behind, naming a port nothing listens on
    run = edgeq_queue(gw.data_dir, "list")
    assert run.returncode == 1 and len(run.lines) == 1
    assert run.lines[0].startswith("edgeq: no running gateway found: nothing answers at ")


# ------------------------------------------------------------------------------ CLI refusals

# name -> (arguments after `edgeq queue`, what the one line must say); `{data}` is the running
# gateway's data directory, `{empty}` one without a gateway, `{stale}` one whose admin.json
# names a port where nothing listens.
REFUSALS: dict[str, tuple[list[str], str]] = {
    "show-unknown": (["show", "nope"], "no queue named 'nope'"),
    "purge-unknown": (["purge", "nope"], "no queue named 'nope'"),
    "delete-unknown": (["delete", "nope"], "no queue named 'nope'"),
    "duplicate-name": (["create", "other/#", "--name", "jobs"], "'jobs' already exists"),
    "dead-letter-name": (["create", "$dlq/jobs"], "$dlq/ are reserved"),
    "bad-dispatch": (["create", "x", "--dispatch", "fastest"],
                     "dispatch: invalid enum value 'fastest'; use one of round_robin"),
    "negative-limit": (["create", "x", "--max-messages", "-1"], "max_messages"),
    "not-a-number": (["create", "x", "--ttl", "soon"], "--ttl: 'soon' is not a whole number"),
    "not-a-bool": (["create", "x/+", "--template", "maybe"], "--template: 'maybe' is neither"),
    "empty-window": (["create", "x", "--max-inflight", "0"], "max_inflight"),
    "bad-overflow": (["create", "x", "--overflow", "wait"], "overflow: invalid enum value"),
    "bad-key": (["create", "x", "--last-value-key", "colour"], "not a key expression"),
    "bad-filter": (["create", "a/#/b"], "'a/#/b' is not a usable topic filter"),
    "reserved-filter": (["create", "$q/x"], "are reserved"),
    "template-without-wildcard": (["create", "a/b", "--template", "true"], "wildcard filter"),
    "bad-name": (["create", "x", "--name", "bad name"], "must match"),
    "config-queue": (["delete", "jobs"], "defined in the config file"),
    "wrong-token": (["list", "--token", "wrong"], "missing or wrong admin"),
    "no-gateway": (["list", "--data-dir", "{empty}"], "no running gateway found"),
    "stale-admin-json": (["list", "--data-dir", "{stale}"], "no running gateway found"),
}


@pytest.fixture(scope="module")
def configured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(data_dir=tmp_path_factory.mktemp("mgmt") / "var",
                        config_text=CONFIGURED).start()
    Admin(gw)
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def refusals(configured: GatewayProcess, tmp_path_factory: pytest.TempPathFactory
             ) -> dict[str, Run]:
    """Every refused invocation, started at once (each costs a Python start-up)."""
    empty = tmp_path_factory.mktemp("empty")
    stale = tmp_path_factory.mktemp("stale")
    (stale / "admin.json").write_text(json.dumps(
        {"url": f"http://127.0.0.1:{free_port()}", "token": "x"}))
    dirs = {"{empty}": str(empty), "{stale}": str(stale)}
    procs = {}
    for name, (args, _) in REFUSALS.items():
        argv = [dirs.get(a, a) for a in args]
        if "--data-dir" not in argv:
            argv += ["--data-dir", str(configured.data_dir)]
        procs[name] = subprocess.Popen([str(EDGEQ), "queue", *argv], cwd=REPO, text=True,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       env=os.environ.copy())
    runs = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=30)
        runs[name] = Run(proc.returncode, stdout, stderr)
    return runs


@pytest.mark.parametrize("name", list(REFUSALS))
def test_a_refused_request_is_one_clear_line(refusals: dict[str, Run], name: str) -> None:
    run = refusals[name]
    assert run.returncode == 1, run
    assert run.stdout == "" and len(run.lines) == 1, run
    assert run.lines[0].startswith("edgeq: ") and REFUSALS[name][1] in run.lines[0], run.lines


def test_refused_requests_change_nothing(refusals: dict[str, Run],
                                         configured: GatewayProcess) -> None:
    assert set(table(edgeq_ok(configured.data_dir, "list"))) == {"jobs", "lights/+/commands"}


# ------------------------------------------------------------------------------ admin API

def test_admin_api_needs_the_token(configured: GatewayProcess) -> None:
    admin = Admin(configured)
    for token in (None, "wrong", admin.token + "x"):
        reply = admin.request("GET", "/api/v1/queues", token=token)
        assert reply.status == 401 and reply.content_type == "application/json"
        assert reply.json()["error"].startswith("missing or wrong admin ")
    assert admin.request("GET", "/api/v1/queues").status == 200


def test_admin_api_refusals_are_readable(configured: GatewayProcess) -> None:
    admin = Admin(configured)

    def error(method: str, path: str, body: bytes | None = None) -> tuple[int, str]:
        reply = admin.request(method, path, body)
        assert reply.content_type == "application/json", reply
        doc = reply.json()
        assert list(doc) == ["error"], doc
        return reply.status, doc["error"]

    nope = "no queue named 'nope'; `edgeq queue list` shows them"
    assert error("GET", "/api/v1/queues/nope") == (404, nope)
    assert error("POST", "/api/v1/queues/nope/purge") == (404, nope)
    assert error("DELETE", "/api/v1/queues/nope") == (404, nope)
    assert error("GET", "/api/v1/nothing")[0] == 404
    assert error("PUT", "/api/v1/queues")[0] == 404
    assert error("POST", "/api/v1/queues", b"{not json") == (
        400, "the request body is not valid JSON")
    assert error("POST", "/api/v1/queues", b"[1, 2]") == (
        400, "send a JSON object with the queue's keys")
    for fields, says in [
            ({"name": "x"}, "missing required field `filter`"),
            ({"filter": "a", "colour": "red"}, "colour: unknown key"),
            ({"filter": "a/#/b"}, "'a/#/b' is not a usable topic filter"),
            ({"filter": "a", "dispatch": "fastest"}, "invalid enum value 'fastest'"),
            ({"filter": "a", "max_messages": -5}, "max_messages: expected `int` >= 0"),
            ({"filter": "a", "last_value_key": "json:"}, "not a key expression"),
            ({"filter": "a", "name": "jobs"}, "a queue named 'jobs' already exists")]:
        status, message = error("POST", "/api/v1/queues", json.dumps(fields).encode())
        assert status == 400 and says in message, (fields, message)
    status, message = error("DELETE", "/api/v1/queues/jobs")
    assert status == 400 and "config file" in message


def test_admin_api_creates_and_finds_queues_named_by_their_filter(
        gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(CONFIGURED)
    admin = Admin(gw)
    reply = admin.request("POST", "/api/v1/queues",
                          json.dumps({"filter": "images/+", "dispatch": "random"}).encode())
    assert reply.status == 201 and reply.json()["dispatch"] == "random"
    publish(gw.port, "images/cam1", "frame")
    assert admin.stats("images/+")["depth"] == 1  # the slash and plus, URL-quoted
    purged = admin.request("POST", "/api/v1/queues/images%2F%2B/purge")
    assert purged.status == 200 and purged.json() == {"purged": 1}
    deleted = admin.request("DELETE", "/api/v1/queues/images%2F%2B")
    assert deleted.status == 200 and deleted.json() == {"deleted": "images/+"}


SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
                    r'(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*\})? -?[0-9.e+-]+$')


def test_metrics_are_prometheus_text_with_a_series_per_queue(
        gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(CONFIGURED)
    admin = Admin(gw)
    created = admin.request("POST", "/api/v1/queues", json.dumps({"filter": 'say/"hi"'}).encode())
    assert created.status == 201
    publish(gw.port, "jobs/1", "a", "b")
    publish(gw.port, 'say/"hi"', "c")
    reply = admin.request("GET", "/metrics", token=None)  # no token needed, read-only
    assert reply.status == 200 and reply.content_type.startswith("text/plain; version=0.0.4")
    text = reply.body.decode()
    families: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            families[name] = kind
        elif not line.startswith("# HELP "):
            assert SAMPLE.match(line), f"not Prometheus text: {line!r}"
    assert families["edgeq_queue_depth"] == "gauge"
    assert families["edgeq_queue_redelivered_total"] == "counter"
    for name in ("depth", "consumers", "inflight", "lag_messages", "lag_seconds",
                 "enqueued_total", "dropped_total", "replaced_total", "dead_lettered_total"):
        assert f"edgeq_queue_{name}" in families, name
    assert 'edgeq_queue_depth{queue="jobs"} 2.0\n' in text
    assert 'edgeq_queue_enqueued_total{queue="jobs"} 2.0\n' in text
    assert 'edgeq_queue_depth{queue="say/\\"hi\\""} 1.0\n' in text
    assert 'edgeq_queue_depth{queue="lights/+/commands"} 0.0\n' in text


def test_the_cli_talks_to_a_remote_gateway_with_url_and_token(
        configured: GatewayProcess, tmp_path: Path) -> None:
    admin = Admin(configured)
    elsewhere = tmp_path / "no-admin-json-here"
    run = edgeq_queue(elsewhere, "list", "--url", admin.url, "--token", admin.token)
    assert run.returncode == 0 and "jobs" in table(run.stdout)


def test_a_generated_token_never_reads_as_a_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    # `edgeq queue list --token -x...` would be an argparse error: such tokens are not handed out
    from gateway.admin import api

    drawn = iter(["-starts-with-a-dash-xxxxxxxx", "a-fine-token-xxxxxxxxxxxxxx"])
    monkeypatch.setattr(api.secrets, "token_urlsafe", lambda _n: next(drawn))
    assert api._new_token() == "a-fine-token-xxxxxxxxxxxxxx"

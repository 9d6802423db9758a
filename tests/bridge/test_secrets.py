"""Passwords and tokens never show in a repr, so no log line or traceback can carry them."""

from __future__ import annotations

import logging

import pytest

from gateway.bridge.client import ClientOptions
from gateway.config import AdminSettings, BridgeSpec, Config
from gateway.mqtt.packets import Connect

SECRET = "hunter2-secret"


def test_a_bridge_config_repr_has_no_password() -> None:
    spec = BridgeSpec(name="up", address="cloud:8883", username="site1", password=SECRET)
    config = Config(bridges=[spec], admin=AdminSettings(token=SECRET))
    for text in (repr(spec), str(spec), repr(config), f"{[spec]}"):
        assert SECRET not in text
        assert "password='<redacted>'" in text
    assert "token='<redacted>'" in repr(config)
    assert "password=''" in repr(BridgeSpec(name="up", address="cloud:8883"))


def test_upstream_options_and_connect_packets_have_no_password_in_their_repr() -> None:
    options = ClientOptions("cloud", 8883, "site1.up", username="site1",
                            password=SECRET.encode())
    packet = Connect("site1.up", username="site1", password=SECRET.encode())
    for text in (repr(options), repr(packet)):
        assert SECRET not in text
        assert "site1" in text


def test_a_logged_bridge_config_has_no_password(caplog: pytest.LogCaptureFixture) -> None:
    spec = BridgeSpec(name="up", address="cloud:8883", password=SECRET)
    with caplog.at_level(logging.INFO):
        logging.getLogger("gateway.bridge").info("bridge %s: starting %r", spec.name, spec)
    assert SECRET not in caplog.text

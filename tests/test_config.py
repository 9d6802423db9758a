"""The config file: typed parsing, errors that name file and key, flags over the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import config, configdoc
from gateway.config import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_embedded_default_listens_on_localhost_and_stores_under_var() -> None:
    c = config.load()
    assert [(x.host, x.port, x.kind) for x in c.listeners] == [("127.0.0.1", 1883, "tcp")]
    assert c.data_dir == "var"
    assert c.queues[0].filter == "lights/+/commands" and c.queues[0].template


def test_acknowledged_messages_survive_a_power_cut_by_default() -> None:
    """`full` is the default everywhere (struct, embedded file); `normal` stays available."""
    assert config.load().storage.synchronous == "full"
    assert config.parse("", "x.toml").storage.synchronous == "full"
    assert config.parse('[storage]\nsynchronous = "normal"', "x.toml").storage.synchronous == \
        "normal"


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "edgeq.toml"
    path.write_text('[[queues]]\nfilter = "a/+"\nmax_mesages = 3\n')
    with pytest.raises(ConfigError, match=r"edgeq.toml: queues\[0\].max_mesages: unknown key"):
        config.load(path)


@pytest.mark.parametrize(("text", "message"), [
    ('[mqtt]\nmax_qos = 3', r"mqtt.max_qos: expected `int` <= 2"),
    ('[[queues]]\nfilter = "a/#/b"', r"queues\[0\].filter: .*'#' must be the last level"),
    ('[[queues]]\nfilter = "a"\ndispatch = "fastest"', r"queues\[0\].dispatch: invalid enum value"),
    ('[[queues]]\nfilter = "a"\nlast_value_key = "colour"', r"queues\[0\].last_value_key: "),
    ('[[queues]]\nfilter = "a"\nname = "-bad"', r"queues\[0\].name: '-bad' must match"),
    ('[[queues]]\nfilter = "a"\ntemplate = true', r"queues\[0\].template: a template queue"),
    ('[[listeners]]\naddress = "nowhere"', r"listeners\[0\].address: 'nowhere' is not HOST:PORT"),
    ('[[listeners]]\naddress = "0.0.0.0:8883"\nkind = "tls"',
     r"listeners\[0\]: a tls listener needs certfile and keyfile"),
    ("data_dir = ", r"not valid TOML"),
])
def test_mistakes_are_explained(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"^x.toml: {message}"):
        config.parse(text, "x.toml")


def test_two_queues_with_one_name_are_refused() -> None:
    with pytest.raises(ConfigError, match="declared twice"):
        config.parse('[[queues]]\nfilter = "a"\n[[queues]]\nfilter = "a"\n', "x.toml")


def test_missing_file_is_one_readable_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        config.load(tmp_path / "absent.toml")


def test_flags_override_the_file() -> None:
    c = config.with_overrides(config.load(), listen=["127.0.0.1:1", "ws://0.0.0.0:9001/mqtt",
                                                     "[::1]:1884"], data_dir="/data")
    assert [(x.kind, x.host, x.port) for x in c.listeners] == [
        ("tcp", "127.0.0.1", 1), ("ws", "0.0.0.0", 9001), ("tcp", "::1", 1884)]
    assert c.data_dir == "/data"


def test_bad_listen_flag() -> None:
    with pytest.raises(ConfigError, match="--listen udp://x:1: unknown scheme"):
        config.parse_listen_flag("udp://x:1")


def test_every_key_is_documented_and_the_reference_is_current() -> None:
    for section, struct in configdoc._SECTIONS:
        for field in configdoc.fields_of(struct):
            if not (section == "" and field.name == "source"):  # set by the loader, not a key
                assert configdoc.description(struct, field.name), field.name
    assert (REPO / "docs" / "config.md").read_text() == configdoc.render(), \
        "docs/config.md is stale: run `python -m gateway.configdoc > docs/config.md`"


def test_a_tls_listen_flag_takes_the_certificates_of_the_files_tls_listener() -> None:
    c = config.parse('[[listeners]]\naddress = "0.0.0.0:8883"\nkind = "tls"\n'
                     'certfile = "s.crt"\nkeyfile = "s.key"\n', "x.toml")
    tls = config.with_overrides(c, listen=["tls://127.0.0.1:9999"]).listeners[0]
    assert (tls.address, tls.certfile, tls.keyfile) == ("127.0.0.1:9999", "s.crt", "s.key")
    with pytest.raises(ConfigError, match="no certificate"):
        config.with_overrides(config.load(), listen=["tls://127.0.0.1:9999"])

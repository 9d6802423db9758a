"""Validate what `edgeq serve` would read, without serving (`edgeq check-config`, like `nginx -t`).

The config file goes through `gateway.config.load`, the password file through
`load_password_file`, the ACL file through `load_acl_rules` and TLS files through the listener's
`tls_context`: the loaders `serve` and its reload use, so a file this module accepts is a file
the gateway accepts. Each problem is one line `FILE:LINE: reason` (`FILE: reason` when no line
applies). Reload and the image's first boot ask the same questions. Nothing is bound or written.
"""

from __future__ import annotations

import re
from pathlib import Path

from gateway import config as config_mod
from gateway.auth import AclError, PasswordFileError
from gateway.auth.acl import load_acl_rules
from gateway.auth.passwords import load_password_file
from gateway.broker.listeners import tls_context
from gateway.config import Config, ConfigError

_TOML_LINE = re.compile(r"\(at line (\d+), column \d+\)")
_KEY = r"[A-Za-z_][A-Za-z0-9_]*(?:\[\d+\])?"
_KEY_PATH = re.compile(rf"{_KEY}(?:\.{_KEY})*")
_HEADER = re.compile(r"\s*(\[\[?)\s*([A-Za-z0-9_.\s\"-]+?)\s*\]\]?\s*(?:#.*)?$")
_ASSIGNMENT = re.compile(r"\s*([A-Za-z0-9_.\"-]+)\s*=")


def check(path: str | None) -> tuple[Config | None, list[str]]:
    """The config at `path` (None: the embedded default) and every problem found in it and in
    the files it names; the config is None when it could not be read at all."""
    try:
        config = config_mod.load(path)
    except ConfigError as e:
        return None, [with_line(str(e), path)]
    return config, referenced_file_problems(config)


def checked_files(config: Config) -> str:
    """What `check` read for `config`, for the OK line: `config, password file, ACL file`."""
    names = ["config"]
    if config.auth.password_file:
        names.append("password file")
    if config.auth.acl_file:
        names.append("ACL file")
    if any(x.kind in ("tls", "wss") for x in config.listeners):
        names.append("TLS files")
    return ", ".join(names)


def referenced_file_problems(config: Config) -> list[str]:
    """Problems in the password, ACL and TLS files `config` names, read as `serve` reads them."""
    problems: list[str] = []
    auth = config.auth
    try:
        if auth.password_file:
            load_password_file(auth.password_file)
    except PasswordFileError as e:
        problems.append(str(e))
    try:
        if auth.acl_file:
            load_acl_rules(auth.acl_file)
    except AclError as e:
        problems.append(str(e))
    for listener in config.listeners:
        if listener.kind in ("tls", "wss"):
            try:
                tls_context(listener)
            except ConfigError as e:
                problems.append(f"{config.source}: {e}")
    return problems


def with_line(message: str, path: str | None) -> str:
    """`FILE: key.path: reason` from the config loader as `FILE:LINE: key.path: reason`, the
    line being where the key (or the TOML syntax error) is; unchanged when none is found."""
    if path is None or not message.startswith(f"{path}: "):
        return message
    rest = message[len(path) + 2:]
    line = _toml_error_line(rest) or _key_line(rest, path)
    return f"{path}:{line}: {rest}" if line else message


def _toml_error_line(rest: str) -> int | None:
    found = _TOML_LINE.search(rest) if rest.startswith("not valid TOML") else None
    return int(found[1]) if found else None


def _key_line(rest: str, path: str) -> int | None:
    key = _KEY_PATH.match(rest.partition(":")[0])
    if key is None or key.end() != len(rest.partition(":")[0]):
        return None
    try:
        lines = key_lines(Path(path).read_text())
    except OSError:
        return None
    wanted = key[0]
    while wanted:
        if wanted in lines:
            return lines[wanted]
        wanted = re.sub(r"(\.[^.\[]+|\[\d+\])$", "", wanted)
    return None


def key_lines(text: str) -> dict[str, int]:
    """Where each table and key of a TOML text is, by path (`queues[1].filter`: 7), so an error
    about a key points at its line. Multi-line values are not followed (their keys are)."""
    found: dict[str, int] = {}
    counts: dict[str, int] = {}
    table = ""
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = _resolve(header[2].replace('"', "").replace(" ", ""), header[1] == "[[",
                             counts)
            found.setdefault(table, number)
            continue
        assignment = _ASSIGNMENT.match(line)
        if assignment:
            key = assignment[1].replace('"', "")
            found.setdefault(f"{table}.{key}" if table else key, number)
    return found


def _resolve(name: str, array: bool, counts: dict[str, int]) -> str:
    """`bridges.topics` as `bridges[0].topics[2]`: every array level gets its current index."""
    resolved = ""
    parts = name.split(".")
    for i, part in enumerate(parts):
        resolved = f"{resolved}.{part}" if resolved else part
        if i == len(parts) - 1 and array:
            counts[resolved] = counts.get(resolved, -1) + 1
        if resolved in counts:
            resolved = f"{resolved}[{counts[resolved]}]"
    return resolved

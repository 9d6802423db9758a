"""wifi.toml of the boot partition as wpa_supplicant's configuration: the passphrase is stored
only as its WPA hash (PBKDF2 of passphrase and SSID, as wpa_passphrase computes it).

Pure functions over parsed TOML; the caller reads and writes files. Standard library only.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

COUNTRY_RE = re.compile(r"[A-Z]{2}")


class WifiError(ValueError):
    """wifi.toml is not usable; the message names the key and the fix."""


def wpa_network(entry: dict[str, object], where: str) -> str:
    """One wpa_supplicant network block; the passphrase is stored only as its WPA hash."""
    ssid = entry.get("ssid")
    if not isinstance(ssid, str) or not 1 <= len(ssid.encode()) <= 32:
        raise WifiError(f"{where}.ssid: a network name of 1 to 32 bytes is required")
    lines = [f"    ssid={ssid.encode().hex()}"]
    password = entry.get("password")
    if password is None:
        lines.append("    key_mgmt=NONE")
    elif isinstance(password, str) and 8 <= len(password) <= 63 and password.isascii():
        psk = hashlib.pbkdf2_hmac("sha1", password.encode(), ssid.encode(), 4096, 32)
        lines += ["    key_mgmt=WPA-PSK", f"    psk={psk.hex()}"]
    else:
        raise WifiError(f"{where}.password: a WPA passphrase is 8 to 63 ASCII characters "
                           "(leave the key out for an open network)")
    if entry.get("hidden", False) is True:
        lines.append("    scan_ssid=1")
    priority = entry.get("priority", 0)
    if not isinstance(priority, int):
        raise WifiError(f"{where}.priority: must be an integer")
    lines.append(f"    priority={priority}")
    unknown = set(entry) - {"ssid", "password", "hidden", "priority"}
    if unknown:
        raise WifiError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
                           "use ssid, password, hidden, priority")
    return "network={\n" + "\n".join(lines) + "\n}\n"


def wpa_config(wifi: dict[str, object], source: Path) -> str:
    country = wifi.get("country")
    if not isinstance(country, str) or not COUNTRY_RE.fullmatch(country):
        raise WifiError(f"{source}: country: the two-letter country code the radio may use "
                           "(ISO 3166, e.g. \"DE\") is required")
    networks = wifi.get("network")
    if not isinstance(networks, list) or not networks:
        raise WifiError(f"{source}: at least one [[network]] table with ssid and password "
                           "is required")
    if not all(isinstance(n, dict) for n in networks):
        raise WifiError(f"{source}: network: write each network as a [[network]] table")
    blocks = [wpa_network(n, f"{source}: network[{i}]") for i, n in enumerate(networks)]
    header = (f"# Written by edgeq-firstboot from {source.name}.\n"
              "ctrl_interface=DIR=/run/wpa_supplicant\nupdate_config=1\n"
              f"country={country}\n")
    return header + "\n" + "\n".join(blocks)

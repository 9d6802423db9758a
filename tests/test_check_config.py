"""`edgeq check-config` (like `nginx -t`): the config and the password and ACL files it names,
read by the loaders `edgeq serve` uses; every problem as `FILE:LINE: reason`, exit status 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gateway.auth.passwords import add_user

EDGEQ = Path(sys.executable).with_name("edgeq")


def check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EDGEQ), "check-config", *args], capture_output=True, text=True,
                          timeout=30, check=False)


def write_config(tmp_path: Path, extra: str = "", acl: str = "user alice\ntopic sensors/#\n",
                 passwd: bool = True) -> Path:
    if passwd:
        add_user(tmp_path / "passwd", "alice", "s3cret", create=True)
    (tmp_path / "acl").write_text(acl)
    path = tmp_path / "edgeq.toml"
    path.write_text(f'[auth]\nallow_anonymous = false\npassword_file = "{tmp_path / "passwd"}"\n'
                    f'acl_file = "{tmp_path / "acl"}"\n{extra}')
    return path


def test_a_good_config_with_its_files_is_one_ok_line(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    run = check("--config", str(path))
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [f"{path}: OK (config, password file, ACL file)"]
    assert run.stderr == ""


def test_the_embedded_default_is_ok() -> None:
    run = check()
    assert run.returncode == 0 and "OK" in run.stdout, run.stderr


def test_broken_acl_and_password_files_are_each_reported_with_their_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, acl="user alice\ntopic sensors/#\ntopic reed sensors/#\n",
                        passwd=False)
    (tmp_path / "passwd").write_text("# users\nbob\n")
    run = check("--config", str(path))
    assert run.returncode == 1
    lines = run.stderr.splitlines()
    assert len(lines) == 2, run.stderr
    assert lines[0].startswith(f"{tmp_path / 'passwd'}:2: expected 'user:hash'")
    assert lines[1].startswith(f"{tmp_path / 'acl'}:3: the access of a 'topic' line")
    assert "Traceback" not in run.stderr and "OK" not in run.stdout


def test_a_config_key_mistake_names_the_line_of_the_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, '\n[[queues]]\nfilter = "a/#"\n\n[storage]\n'
                                  'synchronous = "sometimes"\n')
    run = check("--config", str(path))
    assert run.returncode == 1
    assert run.stderr.splitlines() == [
        f'{path}:10: storage.synchronous: invalid enum value \'sometimes\'; use one of normal, '
        "full"]


def test_a_config_mistake_inside_an_array_of_tables_names_its_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[[queues]]\nfilter = "a/#"\n[[queues]]\nfilter = "b/#"\n'
                                  "max_mesages = 3\n")
    run = check("--config", str(path))
    assert run.returncode == 1
    assert run.stderr.startswith(f"{path}:9: queues[1].max_mesages: unknown key"), run.stderr


def test_a_toml_syntax_error_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "edgeq.toml"
    path.write_text("[mqtt]\nmax_qos 1\n")
    run = check("--config", str(path))
    assert run.returncode == 1
    assert run.stderr.startswith(f"{path}:2: not valid TOML"), run.stderr


def test_a_missing_password_file_and_tls_key_are_reported(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[[listeners]]\naddress = "0.0.0.0:8883"\nkind = "tls"\n'
                                  f'certfile = "{tmp_path}/none.crt"\n'
                                  f'keyfile = "{tmp_path}/none.key"\n', passwd=False)
    run = check("--config", str(path))
    assert run.returncode == 1
    lines = run.stderr.splitlines()
    assert any("cannot read the password file" in line for line in lines), lines
    assert any("0.0.0.0:8883: cannot load TLS files" in line for line in lines), lines


def test_a_missing_config_file_is_one_line(tmp_path: Path) -> None:
    run = check("--config", str(tmp_path / "absent.toml"))
    assert run.returncode == 1
    assert run.stderr.splitlines() == [
        f"{tmp_path / 'absent.toml'}: cannot read the config file: No such file or directory"]

"""``alertline probe``: one JSON object per target, no Kafka."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from services.enrich.cli import register
from tests.conftest import REPO
from tests.integration.enrich.servers import banner_server, closed_port, http_server, png_pixels


def _cli() -> click.Group:
    @click.group()
    def root() -> None:
        pass

    register(root)
    return root


def test_probe_command_prints_one_json_object_per_target_in_order(tmp_path: Path) -> None:
    shots = tmp_path / "shots"
    with http_server() as web, banner_server() as ssh, closed_port() as closed:
        args = ["probe", "--allow", "127.0.0.0/8", "--connect-timeout", "1", f"http://127.0.0.1:{web}/",
                f"127.0.0.1:{ssh}", f"127.0.0.1:{closed}", "10.0.0.1:22"]  # fmt: skip
        if Path("/usr/bin/chromium").exists():
            args[1:1] = ["--screenshot", str(shots)]
        res = CliRunner().invoke(_cli(), args, env={"ALERTLINE_PROBE__BANNER_WAIT_S": "0.3"})
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.output.splitlines()]
    assert [x["target"] for x in lines] == [f"127.0.0.1:{web}", f"127.0.0.1:{ssh}", f"127.0.0.1:{closed}",
                                            "10.0.0.1:22"]  # fmt: skip
    web_r, ssh_r, closed_r, private_r = lines
    assert web_r["tcp"]["state"] == "open" and web_r["http"]["title"] == "Payments admin & console"
    assert ssh_r["ssh"]["banner"] == "SSH-2.0-OpenSSH_9.6"
    assert closed_r["tcp"]["state"] == "closed"
    assert private_r["refused"] == "private address 10.0.0.1 (not in the allow-list)" and private_r["tcp"] is None
    if Path("/usr/bin/chromium").exists():
        png = Path(web_r["screenshot"]["path"])
        assert png.parent == shots
        w, h, _ = png_pixels(png.read_bytes())
        assert (w, h) == (1280, 800)


def test_probe_without_allow_refuses_loopback() -> None:
    with http_server() as web:
        res = CliRunner().invoke(_cli(), ["probe", f"127.0.0.1:{web}"])
    assert json.loads(res.output)["refused"] == "loopback address 127.0.0.1 (not in the allow-list)"


def test_bad_target_and_bad_allow_are_clear_errors() -> None:
    res = CliRunner().invoke(_cli(), ["probe", "no-port-here"])
    assert res.exit_code == 2
    assert json.loads(res.output)["error"] == "target 'no-port-here' is neither host:port nor a URL"
    res = CliRunner().invoke(_cli(), ["probe", "--allow", "not-a-cidr", "1.2.3.4:80"])
    assert res.exit_code == 2 and "Invalid value for --allow: 'not-a-cidr' does not appear" in res.output


@pytest.mark.skipif(not (REPO / ".venv/bin/alertline").exists(), reason="needs the installed entry point")
def test_alertline_entry_point_has_the_probe_command() -> None:
    out = subprocess.run([str(REPO / ".venv/bin/alertline"), "probe", "169.254.169.254:80"], capture_output=True,
                         text=True, timeout=60, check=True).stdout  # fmt: skip
    assert json.loads(out)["refused"] == "cloud metadata address 169.254.169.254 (not in the allow-list)"
    assert sys.executable

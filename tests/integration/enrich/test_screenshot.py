"""Headless Chromium screenshots through the guard proxy, against a real local page."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest

from services.enrich.guard import Guard
from services.enrich.probe import ProbeConfig, Prober, Target
from services.enrich.screenshot import Chromium, GuardProxy, ScreenshotError
from tests.integration.enrich.servers import RED, http_server, png_pixels

pytestmark = pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium")

FAST = ProbeConfig(connect_timeout_s=1.0, read_timeout_s=2.0, banner_wait_s=0.3, per_target_delay_s=0)


def test_web_page_screenshot_is_a_real_png_of_that_page() -> None:
    guard = Guard(["127.0.0.0/8"])
    proxy = GuardProxy(guard)
    try:
        with http_server() as port:
            res = Prober(guard, FAST, screenshotter=Chromium(proxy, timeout_s=30, window="800,600")).probe(
                Target("127.0.0.1", port)
            )
    finally:
        proxy.stop()
    png = res.screenshot
    assert png is not None, res.data["screenshot"]
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    w, h, pixels = png_pixels(png)
    assert (w, h) == (800, 600)
    red = sum(1 for p in pixels if p == RED)
    white = sum(1 for p in pixels if p == (255, 255, 255))
    # the page is a 600x400 red block on white: the picture must show it, not a blank or error page
    assert 0.4 < red / len(pixels) < 0.6, red / len(pixels)
    assert white / len(pixels) > 0.3
    assert res.data["screenshot"]["bytes"] == len(png)


def test_browser_requests_into_refused_ranges_never_leave_the_proxy() -> None:
    page = (
        b"<html><title>x</title><body><img src='http://169.254.169.254/latest/meta-data/'>"
        b"<img src='http://10.9.8.7/x.png'></body></html>"
    )

    def serve(h):  # type: ignore[no-untyped-def]
        h.send_response(200)
        h.send_header("Content-Type", "text/html")
        h.send_header("Content-Length", str(len(page)))
        h.end_headers()
        h.wfile.write(page)

    proxy = GuardProxy(Guard(["127.0.0.0/8"]))
    try:
        with http_server({"/p": serve}) as port:
            png = Chromium(proxy, timeout_s=30, window="400,300").capture(f"http://127.0.0.1:{port}/p")
    finally:
        proxy.stop()
    assert png[:4] == b"\x89PNG"
    joined = "\n".join(proxy.refusals)
    assert "169.254.169.254: cloud metadata address 169.254.169.254 (not in the allow-list)" in joined
    assert "10.9.8.7: private address 10.9.8.7 (not in the allow-list)" in joined


def test_hung_browser_is_killed_with_its_whole_process_group(tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"
    fake = tmp_path / "hang.sh"
    fake.write_text(f"#!/bin/sh\nsleep 60 &\necho $! > {marker}\nsleep 60\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    proxy = GuardProxy(Guard([]))
    t0 = time.monotonic()
    with pytest.raises(ScreenshotError, match=r"timed out after 1\.5s"):
        Chromium(proxy, binary=str(fake), timeout_s=1.5).capture("http://192.0.2.1/")
    assert time.monotonic() - t0 < 5
    child = int(marker.read_text())
    time.sleep(0.2)
    stat_file = Path(f"/proc/{child}/stat")
    # gone, or a zombie waiting for init to reap it: either way no longer running
    assert not stat_file.exists() or stat_file.read_text().split(") ", 1)[1].startswith("Z")
    proxy.stop()


def test_exposure_screenshot_is_stored_in_s3_and_referenced_from_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    from alertline.clock import FixedClock
    from services.enrich.artifacts import S3Artifacts
    from services.enrich.domain import Selection
    from services.enrich.engine import Engine
    from services.enrich.enrichers import Exposure
    from tests.integration.enrich.helpers import NOW, exposure_alert

    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, mport = moto.get_host_and_port()
    url = f"http://{host}:{mport}"
    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
    s3.create_bucket(Bucket="alertline-artifacts")
    guard = Guard(["127.0.0.0/8"])
    proxy = GuardProxy(guard)
    exposure = Exposure(
        Prober(guard, FAST, screenshotter=Chromium(proxy, timeout_s=30, window="640,480")),
        Selection(),
        artifacts=S3Artifacts("alertline-artifacts", endpoint_url=url, region="us-east-1"),
        clock=FixedClock(NOW),
    )
    engine = Engine([exposure])
    try:
        with http_server() as port:
            ev = exposure_alert(5, "127.0.0.1", [port])
            [f] = engine.findings(ev["alert"])
    finally:
        engine.close()
        proxy.stop()
    uri = f.artifacts["screenshot"]
    assert uri.startswith("s3://alertline-artifacts/screenshots/") and uri.endswith(".png")
    obj = s3.get_object(Bucket="alertline-artifacts", Key=uri.split("/", 3)[3])
    body = obj["Body"].read()
    assert obj["ContentType"] == "image/png" and png_pixels(body)[:2] == (640, 480)
    assert obj["Metadata"]["alertline-identity"] == ev["alert"]["identity"]
    assert f.to_enrichment()["artifacts"] == {"screenshot": uri}
    moto.stop()

"""The HTML page in a real browser: headless Chromium renders the page that `proximity rank …
--format html --output r.html` wrote and takes a screenshot, offline — every request it makes goes
to a proxy that serves nothing — and its network log must show no request made for the page.

Chromium makes requests of its own (network time, component updates, accounts) that no flag turns
off; the log tells them apart: a request made for the page carries the page's network isolation
key (``file://``) and Blink's resource-loader traffic annotation. A page that does reference the
outside is caught the same way (the harness is tested on one).

Debian's `chromium` (`apt-get install chromium`; `.ci/run` installs it). Where no browser is
installed the test skips and says so; with PROXIMITY_BROWSER=PATH (set by `.ci/run` once it has
installed one) a missing or failing browser is a failure, not a skip.
"""

import http.server
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from proximity.cli import app

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
SIGNAL_BLUE = np.array([0x1A, 0x73, 0xE8])      # the dots of the signal plots (report_html.py)
BLINK_RESOURCE_LOADER = 101845102                # Chromium's traffic annotation of a page's subresource loads


@pytest.fixture(scope="session")
def browser() -> str:
    """The browser's path (a session fixture, so that a skip comes before the backbones are trained)."""
    wanted = os.environ.get("PROXIMITY_BROWSER")
    if wanted:
        found = shutil.which(wanted)
        assert found, f"PROXIMITY_BROWSER={wanted} is not an executable"
        return found
    for name in BROWSERS:
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("no headless browser installed (`apt-get install chromium`; .ci/run installs it): "
                "the HTML page was not rendered in a browser")


class _Recorder(http.server.BaseHTTPRequestHandler):
    """A proxy that serves nothing and writes down every request."""

    seen: list = []

    def _record(self):
        self.seen.append(f"{self.command} {self.path}")
        self.send_error(502, "the test proxy serves nothing")

    do_GET = do_POST = do_HEAD = do_CONNECT = do_PUT = do_OPTIONS = _record

    def log_message(self, *args):
        pass


@pytest.fixture
def proxy():
    _Recorder.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], _Recorder.seen
    server.shutdown()
    server.server_close()


def _screenshot(browser: str, page: Path, png: Path, port: int, profile: Path) -> list[str]:
    """Render ``page`` into ``png``; the URLs the browser requested for the page (from its net log)."""
    netlog = profile.with_suffix(".netlog.json")
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
           "--disable-extensions", "--hide-scrollbars", f"--user-data-dir={profile}",
           f"--proxy-server=http://127.0.0.1:{port}", "--proxy-bypass-list=<-loopback>",   # every request goes to it
           f"--log-net-log={netlog}", "--window-size=1280,1800", f"--screenshot={png}", page.as_uri()]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and png.is_file(), run.stderr[-2000:]
    return _page_requests(netlog)


def _page_requests(netlog: Path) -> list[str]:
    text = netlog.read_text()
    try:
        log = json.loads(text)
    except json.JSONDecodeError:                 # a log the browser did not close: end its event list
        log = json.loads(text.rstrip().rstrip(",") + "]}")
    types = log["constants"]["logEventTypes"]
    requests: dict[int, dict] = {}
    for e in log["events"]:
        params = e.get("params") or {}
        if e["type"] in (types["REQUEST_ALIVE"], types["URL_REQUEST_START_JOB"]) and params:
            requests.setdefault(e["source"]["id"], {}).update(params)
    return [r.get("url", "?") for r in requests.values()
            if "file://" in str(r.get("network_isolation_key", ""))
            or r.get("traffic_annotation") == BLINK_RESOURCE_LOADER]


def test_the_html_page_renders_in_chromium_and_fetches_nothing(browser, backbones, target_dir, tmp_path, proxy,
                                                               fresh_cache):
    port, seen = proxy
    page = tmp_path / "r.html"
    res = CliRunner().invoke(app, ["rank", str(target_dir), "--model", f"local-dir:{backbones['A']}", "--model",
                                   f"local-dir:{backbones['B']}", "-n", "40", "--format", "html", "--output",
                                   str(page)])
    assert res.exit_code == 0, res.output
    png = tmp_path / "r.png"
    fetched = _screenshot(browser, page, png, port, tmp_path / "profile")
    assert fetched == [], f"the page made the browser fetch {fetched}"
    pixels = np.asarray(Image.open(png).convert("RGB")).astype(int)
    assert pixels.shape == (1800, 1280, 3)
    assert pixels.std() > 20                                             # not a blank page
    blue = (np.abs(pixels - SIGNAL_BLUE).sum(axis=2) < 40).sum()
    assert blue > 200, f"the signal plots were not drawn ({blue} pixels of their colour)"

    # the harness itself: a page that references the outside is caught (and its request reached only the proxy)
    leaky = tmp_path / "leaky.html"
    leaky.write_text('<!DOCTYPE html><html><body><img src="http://proximity-test.invalid/x.png">'
                     '<link rel="stylesheet" href="https://fonts.example.invalid/a.css"></body></html>')
    fetched = _screenshot(browser, leaky, tmp_path / "leaky.png", port, tmp_path / "profile2")
    assert sorted(fetched) == ["http://proximity-test.invalid/x.png", "https://fonts.example.invalid/a.css"], fetched
    assert "GET http://proximity-test.invalid/x.png" in seen and "CONNECT fonts.example.invalid:443" in seen, seen

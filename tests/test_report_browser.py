"""The report page in a real browser: headless Chromium (Debian's `chromium`) lays it out,
its DOM has the timeline's points, the grid's cells and links that resolve, it loads
nothing from the network, and a screenshot is written for a person to look at."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from test_report import Page, demo, long_history  # noqa: F401 (fixtures)

from conftest import run_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium (apt-get install chromium)")

NOT_A_PAGE = "not an origin"  # the initiator of the browser's own requests (time sync, sign-in), not the page's


def chromium(tmp_path: Path, page: Path, *args: str) -> subprocess.CompletedProcess:
    """One headless run over `page` with a fresh profile; every host name resolves to nothing."""
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
    argv = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
            "--host-resolver-rules=MAP * ~NOTFOUND", *args, page.as_uri()]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=100)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def page_requests(net_log: Path) -> list[str]:
    """URLs the page asked the network stack for (Chromium's own requests left out)."""
    log = json.loads(net_log.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    params = [e.get("params") or {} for e in log["events"] if e["type"] == start]  # the end event has none
    return [p["url"] for p in params if "url" in p and p.get("initiator") != NOT_A_PAGE]


def write_report(root: Path, out: Path) -> Path:
    proc = run_cli("report", "-o", out, cwd=root)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def demo_in_browser(demo, tmp_path_factory):  # noqa: F811 (the imported fixture)
    """The demo's report as Chromium saw it: (html file, DOM after layout, requests the page made)."""
    from aevolve._git.repo import Repo
    from aevolve._report.history import build_report
    from aevolve._report.page import render

    folder = tmp_path_factory.mktemp("report-browser")
    html = folder / "report.html"
    html.write_text(render(build_report(Repo.open(demo))), encoding="utf-8")
    proc = chromium(folder, html, f"--log-net-log={folder / 'net.json'}", "--dump-dom")
    return html, proc.stdout, page_requests(folder / "net.json")


def test_the_demo_page_has_a_point_per_version_and_a_cross_per_rejection_after_layout(demo_in_browser, demo):  # noqa: F811
    _, dom, _ = demo_in_browser
    data = json.loads(run_cli("report", "--format", "json", cwd=demo).stdout)
    page = Page(dom)

    assert [p["data-commit"] for p in page.of_class("circle", "point")] == [v["short"] for v in data["versions"]]
    assert [p["data-commit"] for p in page.of_class("path", "rejected")] == [p["short"] for p in data["proposals"]]


def test_the_demo_page_has_a_cell_per_case_and_version(demo_in_browser):
    _, dom, _ = demo_in_browser
    page = Page(dom)

    cells = page.of_class("td", "cell")
    assert len(cells) == 6 * 2 == len(page.of_class("th", "col")) * 6
    assert {c["class"].split()[1] for c in cells} == {"pass", "fail"}


def test_every_link_of_the_demo_page_resolves_to_an_element_of_the_page(demo_in_browser):
    _, dom, _ = demo_in_browser
    page = Page(dom)

    links = page.links()
    assert len(links) > 10 and all(link.startswith("#") for link in links)
    assert {link[1:] for link in links} <= page.ids()


def test_the_demo_page_makes_no_network_request(demo_in_browser):
    html, _, requests = demo_in_browser

    assert [url for url in requests if not url.startswith(("file:", "data:"))] == []
    assert 'src="' not in html.read_text() and "url(" not in html.read_text()


def test_the_network_check_sees_a_page_that_does_load_something(tmp_path):
    # the check above would pass vacuously if the net log did not record page requests
    page = tmp_path / "loads.html"
    page.write_text('<!DOCTYPE html><img src="http://example.invalid/x.png"><p>x</p>')
    chromium(tmp_path, page, f"--log-net-log={tmp_path / 'net.json'}", "--dump-dom")

    assert "http://example.invalid/x.png" in page_requests(tmp_path / "net.json")


def test_the_long_history_page_lays_out_every_point_and_links_within_itself(long_history, tmp_path):  # noqa: F811
    root, built = long_history
    html = write_report(root, tmp_path / "report.html")
    page = Page(chromium(tmp_path, html, "--dump-dom").stdout)

    assert [p["data-commit"] for p in page.of_class("circle", "point")] == [c[:12] for c in built["main"]]
    assert len(page.of_class("path", "rejected")) == built["rejected"]
    assert len(page.of_class("td", "cell")) == len(page.of_class("th", "col")) * 20
    assert {link[1:] for link in page.links()} <= page.ids()


def test_a_screenshot_of_the_demo_page_is_written(demo_in_browser, tmp_path):
    html, _, _ = demo_in_browser
    shot = tmp_path / "report.png"
    chromium(tmp_path, html, f"--screenshot={shot}", "--window-size=1400,2000", "--hide-scrollbars")

    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    print(f"screenshot: {shot}")  # shown with -s: open it to look at the page

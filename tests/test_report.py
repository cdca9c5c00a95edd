"""The Snakemake report of the ci run, opened in a real headless Chromium: the page loads without a JavaScript error
or failed request, every figure of the workflow and the table are in it and display (each PNG decodes in the
browser), grouped by experiment, and a screenshot is saved.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``): no network, no Python
package beyond the standard library. Debian's ``chromium`` package provides it (``.ci/run`` installs it).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from mesodyn.config import load_config
from mesodyn.plotting import FIGURES, figure_paths, figure_plan
from mesodyn.figure_plan import HYPOTHESES_PAGE, IDENTIFIABILITY_PAGE

pytestmark = pytest.mark.workflow

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--enable-logging=stderr", "--v=0", "--window-size=1400,1000"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise AssertionError("no chromium on PATH: install Debian's chromium (apt-get install -y chromium "
                         "chromium-driver), as .ci/run does")


class Browser:
    """One headless Chromium and one page, driven over the DevTools protocol on fds 3 and 4."""

    def __init__(self, profile: Path, log: Path):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # copies above 9, so that placing them on 3 and 4 in the child cannot overwrite each other
        read_end = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
        write_end = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
        os.close(to_browser_r)
        os.close(from_browser_w)

        def place_pipes():
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        self._log = open(log, "wb")
        self.proc = subprocess.Popen([chromium(), *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe",
                                      "about:blank"], stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, pass_fds=(3, 4), preexec_fn=place_pipes)
        os.close(read_end)
        os.close(write_end)
        self._next_id = 0
        self._replies: dict[int, queue.Queue] = {}
        self.events: list[dict] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        targets = self.send("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.send("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")

    def _read(self):
        buf = b""
        with os.fdopen(self._from_browser, "rb", buffering=0) as fh:
            while True:
                chunk = fh.read(65536)
                if not chunk:
                    return
                buf += chunk
                while b"\0" in buf:
                    raw, buf = buf.split(b"\0", 1)
                    message = json.loads(raw)
                    if "id" in message:
                        self._replies[message["id"]].put(message)
                    else:
                        with self._lock:
                            self.events.append(message)

    def send(self, method: str, session: str | None = None, timeout: float = 60, **params):
        self._next_id += 1
        ident = self._next_id
        self._replies[ident] = queue.Queue()
        message = {"id": ident, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        reply = self._replies[ident].get(timeout=timeout)
        if "error" in reply:
            raise AssertionError(f"{method} failed: {reply['error']}")
        return reply["result"]

    def call(self, method: str, **params):
        """A command to the page."""
        return self.send(method, session=self.session, **params)

    def evaluate(self, expression: str, *, timeout: float = 60):
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True,
                           timeout=int(timeout * 1000))
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression[:80]!r} raised {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, *, timeout: float = 60):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {expression!r}")

    def screenshot(self, path: Path) -> bytes:
        data = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        path.write_bytes(data)
        return data

    def problems(self) -> list[str]:
        """JavaScript exceptions, console errors, log errors and failed requests seen so far."""
        out = []
        with self._lock:
            events = list(self.events)
        for ev in events:
            method, params = ev.get("method"), ev.get("params", {})
            if method == "Runtime.exceptionThrown":
                out.append(f"exception: {params['exceptionDetails'].get('text')} "
                           f"{params['exceptionDetails'].get('exception', {}).get('description', '')}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                out.append("console.error: " + " ".join(str(a.get("value", a.get("description"))) for a in
                                                         params.get("args", [])))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                out.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
            elif method == "Network.loadingFailed":
                out.append(f"request failed: {params.get('errorText')}")
        return out

    def close(self):
        try:
            self.send("Browser.close", timeout=10)
        except Exception:  # noqa: BLE001 - closing only
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_browser)
        self._log.close()


@pytest.fixture
def browser(tmp_path):
    b = Browser(tmp_path / "profile", tmp_path / "chromium.log")
    yield b
    b.close()


def test_report_loads_in_chromium_with_every_figure(ci_workflow, browser, tmp_path):
    work = ci_workflow["workdir"]
    report = work / "results" / "report.html"
    assert report.stat().st_size > 100_000
    config = load_config(work / "config" / "ci.yaml")
    expected = {figure_paths(f, d)["png"] for f, d in figure_plan(config)} | {
        "results/figures/table_rel_rmse_first5.html", IDENTIFIABILITY_PAGE, HYPOTHESES_PAGE}

    browser.call("Page.navigate", url=report.as_uri())
    browser.wait_for("document.readyState === 'complete' && typeof app !== 'undefined' && "
                     "document.querySelectorAll('#app *').length > 20")
    # every figure of the workflow, and the table, is a result of the report
    paths = set(browser.evaluate("Object.keys(results)"))
    assert expected <= paths, f"missing from the report: {sorted(expected - paths)}"
    # grouped by experiment: one category per figure (and the table), data sets as subcategories
    categories = browser.evaluate("Object.keys(categories)")
    assert {FIGURES[f].category for f, _ in figure_plan(config)} | {
        "Fig. 2 – the 5-step table", "Ours – hypotheses compared"} <= set(categories)
    # every entry has its caption and what we find
    info = browser.evaluate("Object.fromEntries(Object.entries(results).map(([k, v]) => "
                            "[k, [v.mime_type, v.caption.length, v.labels ? v.labels['we find'] || '' : '']]))")
    for path in expected:
        mime, caption, finding = info[path]
        assert caption > 400, f"{path}: caption too short"
        if path.endswith(".png"):
            assert mime == "image/png" and finding, path
    # every figure decodes in the browser and is shown when opened as the report's viewer opens it
    sizes = browser.evaluate("""
        Promise.all(Object.entries(results).filter(([k, v]) => v.mime_type === 'image/png').map(([k, v]) =>
            new Promise(resolve => { const img = new Image();
                img.onload = () => resolve([k, img.naturalWidth, img.naturalHeight]);
                img.onerror = () => resolve([k, 0, 0]); img.src = v.data_uri; })))
    """)
    assert len(sizes) == len([p for p in expected if p.endswith(".png")])
    for path, width, height in sizes:
        assert width > 300 and height > 200, f"{path} does not decode ({width} x {height})"
    first = sorted(p for p in expected if p.endswith(".png"))[0]
    browser.evaluate(f"app.showCategory({json.dumps(next(iter(categories)))}); "
                     f"app.setView({{content: 'img', contentPath: results[{json.dumps(first)}].data_uri, "
                     f"resultPath: {json.dumps(first)}}}); true")
    shown = browser.wait_for("(() => { const img = document.querySelector('#app img[src^=\"data:image/png\"]'); "
                             "return img && img.complete && img.naturalWidth > 0 ? img.naturalWidth : 0; })()")
    assert shown > 300
    table = "results/figures/table_rel_rmse_first5.html"
    browser.evaluate(f"app.setView({{content: 'html', contentPath: results[{json.dumps(table)}].data_uri, "
                     f"resultPath: {json.dumps(table)}}}); true")
    browser.wait_for("document.querySelector('#app iframe') !== null")
    time.sleep(0.5)
    shot = browser.screenshot(tmp_path / "report.png")
    assert shot.startswith(b"\x89PNG") and len(shot) > 20_000
    browser.evaluate(f"app.setView({{content: 'img', contentPath: results[{json.dumps(first)}].data_uri, "
                     f"resultPath: {json.dumps(first)}}}); true")
    time.sleep(0.5)
    browser.screenshot(tmp_path / "report_figure.png")
    assert browser.problems() == [], "\n".join(browser.problems())

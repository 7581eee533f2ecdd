"""Open report.html in headless Chromium and check it renders, works and runs no injected code.

Talks to Chromium over the DevTools protocol with a minimal stdlib websocket client (no extra
package). Skipped where no chromium binary is found; ``.ci/run`` installs Debian's ``chromium``.
Leaves full-page screenshots at ``reports/report_screenshot.png`` (1280 px) and
``reports/report_screenshot_{900,390}.png`` (a split-screen laptop, a phone) for a human to look at.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from evalkit.report import write_reports
from tests.helpers.transformers_serve import stop_process
from tests.helpers.untrusted import PAYLOADS, poison

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FIXTURE = Path(__file__).parent / "fixtures" / "report_fixture.json"
REPO = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars", "--remote-debugging-address=127.0.0.1",
                  "--remote-debugging-port=0", "--window-size=1280,900"]


def find_chromium() -> str | None:
    candidates = [os.environ.get("EVALKIT_CHROMIUM"), "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]
    for name in filter(None, candidates):
        found = shutil.which(name)
        if found:
            return found
    return None


class WebSocket:
    """Just enough of RFC 6455 for DevTools: masked text frames out, (fragmented) text frames in."""

    def __init__(self, url: str, timeout: float = 30.0):
        host_port, path = url.removeprefix("ws://").split("/", 1)
        host, port = host_port.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(request.encode())
        response = b""
        while b"\r\n\r\n" not in response:
            response += self.sock.recv(1)
        if b" 101 " not in response.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"websocket upgrade refused: {response[:200]!r}")

    def send(self, text: str) -> None:
        payload = text.encode()
        header = bytearray([0x81])
        length = len(payload)
        if length < 126:
            header.append(0x80 | length)
        elif length < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack("!H", length)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", length)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes(header) + mask + masked)

    def _exact(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise ConnectionError("websocket closed")
            data += chunk
        return data

    def recv(self) -> str:
        message = b""
        while True:
            first, second = self._exact(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack("!H", self._exact(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", self._exact(8))[0]
            payload = self._exact(length)
            opcode = first & 0x0F
            if opcode == 0x8:
                raise ConnectionError("websocket closed by the browser")
            if opcode in (0x9, 0xA):  # ping / pong: DevTools does not need answers here
                continue
            message += payload
            if first & 0x80:
                return message.decode()


class DevTools:
    """Send commands to one page target and keep every event seen."""

    def __init__(self, url: str):
        self.ws = WebSocket(url)
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        for event in self.events:
            if event.get("method") == method:
                return event
        while time.monotonic() < deadline:
            message = json.loads(self.ws.recv())
            self.events.append(message)
            if message.get("method") == method:
                return message
        raise TimeoutError(method)

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")


def _devtools_port(profile: Path, process: subprocess.Popen, timeout: float = 30.0) -> int:
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited early: {process.stderr.read().decode(errors='replace')[-2000:]}")
        if marker.exists() and marker.read_text().strip():
            return int(marker.read_text().split()[0])
        time.sleep(0.1)
    raise TimeoutError("chromium did not open its DevTools port")


def _page_socket(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
        targets = json.load(response)
    return next(t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page")


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    binary = find_chromium()
    if binary is None:
        pytest.skip("no chromium binary found (apt-get install -y chromium)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    process = subprocess.Popen([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        port = _devtools_port(profile, process)
        yield DevTools(_page_socket(port))
    finally:
        stop_process(process, timeout=10)


@pytest.fixture(scope="module")
def loaded_report(chromium, tmp_path_factory):
    comparison = poison(json.loads(FIXTURE.read_text()))
    comparison["flips"][0]["input"] += PAYLOADS[0]  # a customer comment ...
    comparison["flips"][1]["prediction"] = PAYLOADS[1]  # ... and a model output, verbatim
    chromium.call("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)
    for domain in ("Runtime", "Log", "Page"):
        chromium.call(f"{domain}.enable")
    open_report(chromium, comparison, tmp_path_factory.mktemp("browser-report"))
    return chromium


def open_report(devtools: DevTools, comparison: dict, out: Path) -> None:
    """Write the reports to ``out`` and load report.html from file://, forgetting earlier events."""
    write_reports(comparison, out)
    devtools.events.clear()
    devtools.call("Page.navigate", url=(out / "report.html").resolve().as_uri())
    devtools.wait_for("Page.loadEventFired")


def _console_errors(devtools: DevTools) -> list[str]:
    errors = []
    for event in devtools.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            errors.append(json.dumps(params["exceptionDetails"])[:500])
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append(json.dumps(params.get("args"))[:500])
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            errors.append(params["entry"].get("text", "")[:500])
    return errors


def test_payload_did_not_execute_and_no_console_errors(loaded_report):
    assert loaded_report.evaluate("window.__pwned === undefined") is True
    assert loaded_report.evaluate("document.querySelectorAll('#flip-rows img, main img').length") == 0
    assert _console_errors(loaded_report) == []


def test_sections_and_charts_render(loaded_report):
    counts = loaded_report.evaluate("""(() => ({
        sections: Array.from(document.querySelectorAll('main > section')).map(s => s.id),
        svgs: document.querySelectorAll('svg.chart').length,
        bars: document.querySelectorAll('svg.chart path, svg.chart rect').length,
        flipRows: document.querySelectorAll('#flip-rows tr').length,
        classRows: document.querySelectorAll('.kind-class tbody tr').length,
        width: document.querySelector('svg.chart').getBoundingClientRect().width,
    }))()""")
    assert counts["sections"] == ["verdict", "summary", "study", "learning-forgetting", "metrics", "breakdowns",
                                  "format-knowledge", "flips", "metadata"]
    # 1 learning-vs-forgetting + 2 subject + 2 instruction delta charts + 1 level chart
    assert counts["svgs"] == 6
    assert counts["bars"] > 50
    assert counts["flipRows"] == 5 and counts["classRows"] == 7
    assert counts["width"] > 300  # charts are laid out, not collapsed


def test_flip_search_and_class_sort_work(loaded_report):
    shown = loaded_report.evaluate("""(() => {
        const box = document.getElementById('flip-search');
        box.value = 'PITUITARY'; box.dispatchEvent(new Event('input'));
        const n = document.querySelectorAll('#flip-rows tr').length;
        box.value = ''; box.dispatchEvent(new Event('input'));
        return n; })()""")
    assert shown == 1
    order = loaded_report.evaluate("""(() => {
        const table = document.querySelector('.kind-class table');
        const header = table.tHead.rows[0].cells[1];  // n
        header.click();
        return Array.from(table.tBodies[0].rows).map(r => Number(r.cells[1].dataset.sort)); })()""")
    assert order == sorted(order) and order != []
    assert loaded_report.evaluate("window.__pwned === undefined") is True


def test_screenshot_of_fixture_report(loaded_report, tmp_path):
    """Runs last: the plain fixture (payloads only in a comment, a model output and a class name)."""
    open_report(loaded_report, json.loads(FIXTURE.read_text()), tmp_path)
    assert loaded_report.evaluate("window.__pwned === undefined") is True
    assert _console_errors(loaded_report) == []
    metrics = loaded_report.call("Page.getLayoutMetrics")
    size = metrics["cssContentSize"]
    shot = loaded_report.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                              clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
    data = base64.b64decode(shot["data"])
    assert data.startswith(b"\x89PNG") and len(data) > 20_000
    target = REPO / "reports" / "report_screenshot.png"
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(data)


#: Nothing may stick out of its card: wide tables scroll inside their .scroll box, SVG charts scale.
_OVERFLOW_JS = """(() => {
    const bad = [];
    document.querySelectorAll('main > section').forEach(section => {
        const card = section.getBoundingClientRect();
        section.querySelectorAll('*').forEach(el => {
            if (el.closest('.scroll') && !el.classList.contains('scroll')) { return; }
            if (el.closest('svg') && el.tagName.toLowerCase() !== 'svg') { return; }
            const box = el.getBoundingClientRect();
            if (box.width === 0 || box.height === 0) { return; }
            if (box.right > card.right + 1 || box.left < card.left - 1) {
                bad.push(`${section.id}: <${el.tagName.toLowerCase()} class="${el.className}"> sticks out ${Math.round(box.right - card.right)} px`);
            }
        });
    });
    return {bad: bad.slice(0, 20), page: document.documentElement.scrollWidth, viewport: window.innerWidth};
})()"""


@pytest.mark.parametrize("width", [1280, 900, 390])
def test_readable_at_three_widths_nothing_overflows_its_card(loaded_report, tmp_path, width):
    """Screenshots at a desktop, a split-screen laptop and a phone width; no card is overflowed."""
    loaded_report.call("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1,
                       mobile=width < 500)
    comparison = json.loads(FIXTURE.read_text())
    comparison["summary"] = [{"checkpoint": "mix_75_25", "significant_regressions": 0, "significant_improvements": 2}]
    open_report(loaded_report, comparison, tmp_path)
    layout = loaded_report.evaluate(_OVERFLOW_JS)
    assert layout["bad"] == [], layout["bad"]
    assert layout["page"] <= layout["viewport"], "the page scrolls sideways"
    size = loaded_report.call("Page.getLayoutMetrics")["cssContentSize"]
    shot = loaded_report.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                              clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
    target = REPO / "reports" / ("report_screenshot.png" if width == 1280 else f"report_screenshot_{width}.png")
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(base64.b64decode(shot["data"]))
    loaded_report.call("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)


_PHONE_JS = """(() => {
    const inView = el => { const b = el.getBoundingClientRect();
                           return b.width > 0 && b.left >= -1 && b.right <= window.innerWidth + 1; };
    const study = Array.from(document.querySelectorAll('table.study tbody td'));
    const general = study.filter(td => (td.dataset.label || '').startsWith('mmlu acc'));
    const messages = Array.from(document.querySelectorAll('#verdict table.checks td.message'));
    const notes = study.filter(td => td.classList.contains('note') && td.textContent.trim());
    const policy = document.querySelector('#verdict .path');
    return {
        generalCells: general.length, generalInView: general.filter(inView).length,
        messages: messages.length, messagesInView: messages.filter(inView).length,
        narrowestNote: Math.min(...notes.map(td => td.getBoundingClientRect().width)),
        policyInView: inView(policy), policyTitle: policy.title,
    };
})()"""


def test_a_phone_sees_the_forgetting_column_the_verdict_message_and_the_whole_policy_path(loaded_report, tmp_path):
    """At 390 px: study and verdict tables become one card per row, nothing hides behind a sideways scroll."""
    loaded_report.call("Emulation.setDeviceMetricsOverride", width=390, height=900, deviceScaleFactor=1, mobile=True)
    comparison = json.loads(FIXTURE.read_text())
    long_policy = "configs/release-gates/customer-feedback-router/" + "very-long-folder-name-" * 3 + "policy.yaml"
    comparison["verdict"]["policy"] = long_policy
    open_report(loaded_report, comparison, tmp_path)
    try:
        seen = loaded_report.evaluate(_PHONE_JS)
        layout = loaded_report.evaluate(_OVERFLOW_JS)
    finally:
        loaded_report.call("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1,
                           mobile=False)
    assert seen["generalCells"] == 3 and seen["generalInView"] == 3, seen  # forgetting, for every checkpoint
    assert seen["messages"] >= 1 and seen["messagesInView"] == seen["messages"], seen
    assert seen["narrowestNote"] > 150, seen  # not a word per line
    assert seen["policyInView"] and seen["policyTitle"] == long_policy, seen
    assert layout["bad"] == [] and layout["page"] <= layout["viewport"], layout

"""Loads rtsa's dashboard page in headless Chromium through the DevTools protocol, waits, reads
what the page shows from its DOM and takes a screenshot.

    python dashboard.py URL SCREENSHOT.png SECONDS

Prints one JSON object: the table rows (aggregation, key, window_start, count), the open-window
rows, the alert rows, the cards' texts and how many updates the page received. Chromium is
/usr/bin/chromium or $RTSA_CHROMIUM, started with a profile of its own and stopped at the end.
"""
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket  # websocket-client

READ_DOM = r"""
JSON.stringify({
  updated: document.body.dataset.updated || null,
  status: document.getElementById("status").textContent,
  connection: document.getElementById("conn").textContent,
  rate: document.getElementById("rate").textContent,
  events_total: document.getElementById("events-total").textContent,
  watermark: document.getElementById("watermark").textContent,
  watermark_lag: document.getElementById("watermark-lag").textContent,
  rows: [...document.querySelectorAll("table.records tr[data-aggregation]")].map((tr) => ({
    aggregation: tr.dataset.aggregation, key: tr.dataset.key,
    window_start: Number(tr.dataset.windowStart), count: Number(tr.dataset.count) })),
  so_far: [...document.querySelectorAll("table.so-far tr[data-key]")].map((tr) => ({
    aggregation: tr.closest("section").dataset.aggregation, key: tr.dataset.key, events: Number(tr.dataset.soFar) })),
  alerts: [...document.querySelectorAll("#alerts tr[data-alert-id]")].map((tr) => tr.dataset.alertId),
  charts: document.querySelectorAll(".uplot").length,
})
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DevTools:
    def __init__(self, ws_url):
        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})


def main():
    # Terminated (as benches/http_cost.py does when its run ends): close Chromium on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    url, screenshot, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    chromium = os.environ.get("RTSA_CHROMIUM", "/usr/bin/chromium")
    port = free_port()
    profile = tempfile.mkdtemp(prefix="rtsa-chromium-")
    browser = subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-allow-origins=*", f"--remote-debugging-port={port}", f"--user-data-dir={profile}",
         "--window-size=1400,1800", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        targets = None
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as r:
                    targets = [t for t in json.load(r) if t.get("type") == "page"]
                if targets:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        if not targets:
            raise SystemExit("chromium did not open its DevTools port")
        tools = DevTools(targets[0]["webSocketDebuggerUrl"])
        tools.call("Page.enable")
        tools.call("Emulation.setDeviceMetricsOverride", width=1400, height=1800, deviceScaleFactor=1, mobile=False)
        # The engine may still be starting (rtsa bench generates its events first).
        host, port_text = url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                socket.create_connection((host, int(port_text)), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        tools.call("Page.navigate", url=url)
        time.sleep(seconds)
        state = tools.call("Runtime.evaluate", expression=READ_DOM, returnByValue=True)["result"]["value"]
        shot = tools.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        with open(screenshot, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        print(state)
    finally:
        browser.terminate()
        try:
            browser.wait(timeout=10)
        except subprocess.TimeoutExpired:
            browser.kill()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()

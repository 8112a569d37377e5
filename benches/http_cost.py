#!/usr/bin/env python3
"""What the HTTP server and a connected dashboard cost the pipeline.

Runs `rtsa bench` in interleaved rounds of three: without the HTTP server; with it (`--http`)
and `/metrics` scraped every second; and with the dashboard page open in headless Chromium as
well (tests/browser/dashboard.py, which waits for the server and holds the page open for the
whole run). Chromium runs on the same two cores, so the third also pays for the browser.
Prints each round's events/s as `rtsa bench` reports them, the medians and the ratios.

    python3 benches/http_cost.py [--rtsa target/release/rtsa] [--events 5000000] [--workers 2] [--rounds 6]

Needs Chromium and websocket-client: `scripts/services.sh start` installs them, and
$RTSA_PYTHON (in target/services.env) is a Python that has them.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
PAGE = os.path.join(HERE, "..", "tests", "browser", "dashboard.py")


def bench(rtsa, events, workers, port=None, python=None):
    """One run: without HTTP (port None), with the server scraped every second (python None),
    or with the dashboard open in Chromium as well."""
    args = [rtsa, "bench", "--events", str(events), "--workers", str(workers)]
    env = dict(os.environ)
    page = None
    scraping = threading.Event()
    if port:
        args.append("--http")
        env["RTSA__HTTP__LISTEN"] = f"127.0.0.1:{port}"
        if python:
            shot = tempfile.NamedTemporaryFile(suffix=".png", delete=False).name
            # Chromium starts while rtsa bench generates its events, and opens the page as soon
            # as the server listens; it stays open for the whole run.
            page = subprocess.Popen([python, PAGE, f"http://127.0.0.1:{port}/", shot, "600"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def scrape():
            while not scraping.is_set():
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).read()
                except OSError:
                    pass
                time.sleep(1)

        threading.Thread(target=scrape, daemon=True).start()
    else:
        env["RTSA__HTTP__LISTEN"] = "off"
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout
    scraping.set()
    if page:
        page.terminate()
        page.wait()
    return json.loads(out.strip().splitlines()[-1])["events_per_sec"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rtsa", default="target/release/rtsa")
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", dest="pairs", type=int, default=6)
    parser.add_argument("--port", type=int, default=19899)
    args = parser.parse_args()
    python = os.environ.get("RTSA_PYTHON", sys.executable)
    variants = [("off", None, None), ("scraped", args.port, None), ("page", args.port, python)]
    results = {name: [] for name, _, _ in variants}
    print("round | http off (events/s) | http on, /metrics scraped every second | and the page open in Chromium | scraped/off | page/off")
    print("---|---|---|---|---|---")
    for round in range(args.pairs):
        # Rotate the order, so a drift of the machine favours none of them.
        order = variants[round % 3:] + variants[:round % 3]
        got = {name: bench(args.rtsa, args.events, args.workers, port, py) for name, port, py in order}
        for name in got:
            results[name].append(got[name])
        print(f"{round + 1} | {got['off']:,.0f} | {got['scraped']:,.0f} | {got['page']:,.0f} | "
              f"{got['scraped'] / got['off']:.3f} | {got['page'] / got['off']:.3f}", flush=True)
    med = {name: statistics.median(v) for name, v in results.items()}
    ratio = lambda name: statistics.median([b / a for a, b in zip(results["off"], results[name])])
    print(f"median | {med['off']:,.0f} | {med['scraped']:,.0f} | {med['page']:,.0f} | "
          f"{ratio('scraped'):.3f} | {ratio('page'):.3f}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""What the HTTP server and a connected dashboard cost the pipeline.

Runs `rtsa bench` in interleaved pairs: without the HTTP server, and with it (`--http`) while the
dashboard page is open in headless Chromium (tests/browser/dashboard.py, which waits for the
server and holds the page open for the whole run) and `/metrics` is scraped every second.
Prints each pair's events/s as `rtsa bench` reports them, the medians and the per-pair ratios.

    python3 benches/http_cost.py [--rtsa target/release/rtsa] [--events 5000000] [--workers 2] [--pairs 5]

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
    args = [rtsa, "bench", "--events", str(events), "--workers", str(workers)]
    env = dict(os.environ)
    page = None
    scraping = threading.Event()
    if port:
        args.append("--http")
        env["RTSA__HTTP__LISTEN"] = f"127.0.0.1:{port}"
        shot = tempfile.NamedTemporaryFile(suffix=".png", delete=False).name
        # The page stays open longer than the run: it connects once the server is up.
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
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--port", type=int, default=19899)
    args = parser.parse_args()
    python = os.environ.get("RTSA_PYTHON", sys.executable)
    off, on = [], []
    print("pair | http off (events/s) | http on, page open (events/s) | on/off")
    print("---|---|---|---")
    for pair in range(args.pairs):
        # Alternate which goes first, so a drift of the machine does not favour one.
        if pair % 2 == 0:
            a = bench(args.rtsa, args.events, args.workers)
            b = bench(args.rtsa, args.events, args.workers, args.port, python)
        else:
            b = bench(args.rtsa, args.events, args.workers, args.port, python)
            a = bench(args.rtsa, args.events, args.workers)
        off.append(a)
        on.append(b)
        print(f"{pair + 1} | {a:,.0f} | {b:,.0f} | {b / a:.3f}", flush=True)
    ratios = [b / a for a, b in zip(off, on)]
    print(f"median | {statistics.median(off):,.0f} | {statistics.median(on):,.0f} | "
          f"{statistics.median(ratios):.3f} (pair ratios {min(ratios):.3f}–{max(ratios):.3f})")


if __name__ == "__main__":
    main()

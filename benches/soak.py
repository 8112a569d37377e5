#!/usr/bin/env python3
"""Soak: the embedded default's aggregations and alert rules on a live generator for a long
time, with checkpoints in Redis, sampling the process's memory every minute.

Prints one line a sample: minutes, RSS (MB), events read, open windows, checkpoints, metrics
records (from the engine's /metrics), and at the end the RSS after warm-up (first sample past
--warmup minutes) against the last.

    python3 benches/soak.py [--rtsa target/release/rtsa] [--minutes 60] [--rate 20000] [--warmup 10] [--users 200000]

Needs a Redis: $RTSA_REDIS_URL (scripts/services.sh start writes it to target/services.env).
"""
import argparse
import os
import signal
import subprocess
import tempfile
import time
import urllib.request


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def scrape(port):
    values = {}
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return values
    for line in text.splitlines():
        if line.startswith("rtsa_") and "{" not in line:
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rtsa", default="target/release/rtsa")
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--rate", type=int, default=20000)
    parser.add_argument("--warmup", type=float, default=10)
    parser.add_argument("--port", type=int, default=19897)
    parser.add_argument("--workers", type=int, default=2)
    # With few users every user is active within any 30 s, so sessions never end and their
    # state grows for as long as the run: many users let sessions close as they do in life.
    parser.add_argument("--users", type=int, default=200000)
    args = parser.parse_args()
    out = tempfile.mkdtemp(prefix="rtsa-soak-")
    name = f"soak{os.getpid()}"
    config = os.path.join(out, "soak.yaml")
    with open(config, "w") as f:
        f.write(f"""
source: {{ kind: generator, rate: {args.rate}, users: {args.users}, start_ms: {int(time.time() * 1000)} }}
engine: {{ status_interval: 0s }}
aggregations:
  - {{ name: by_type_1m, window: {{ kind: tumbling, size: 1m }}, group_by: event_type }}
  - {{ name: by_type_5m_sliding, window: {{ kind: sliding, size: 5m, slide: 1m }}, group_by: event_type }}
  - {{ name: by_user_1m, window: {{ kind: tumbling, size: 1m }}, group_by: user_id }}
  - {{ name: by_user_sessions, window: {{ kind: session, gap: 30s }}, group_by: user_id }}
alerts:
  aggregation: by_type_1m
  conditions: {{ error_rate_threshold: 5.0, latency_threshold: 2000 }}
  severity_levels: {{ critical: {{ error_rate: 20.0, latency: 5000 }} }}
  latency_metric: latency_ms.p99
sinks:
  metrics: [ {{ kind: jsonl, path: {out}/metrics.jsonl }} ]
  alerts: [ {{ kind: jsonl, path: {out}/alerts.jsonl }} ]
  dead_letter: {{ kind: jsonl, path: {out}/dead_letter.jsonl }}
checkpoint: {{ store: redis, interval: 5s, name: {name} }}
http: {{ listen: "127.0.0.1:{args.port}" }}
""")
    engine = subprocess.Popen([args.rtsa, "run", "--fresh", "--workers", str(args.workers), "--config", config],
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(out, "stderr.log"), "w"))
    samples = []
    print("minute | RSS MB | events | open windows | checkpoints | metrics records", flush=True)
    print("---|---|---|---|---|---", flush=True)
    started = time.time()
    try:
        while time.time() - started < args.minutes * 60 and engine.poll() is None:
            time.sleep(60)
            minute = (time.time() - started) / 60
            m = scrape(args.port)
            rss = rss_mb(engine.pid)
            samples.append((minute, rss))
            print(f"{minute:.0f} | {rss:.0f} | {m.get('rtsa_events_in_total', 0):,.0f} | "
                  f"{m.get('rtsa_open_windows', 0):,.0f} | {m.get('rtsa_checkpoints_total', 0):,.0f} | "
                  f"{m.get('rtsa_metrics_records_total', 0):,.0f}", flush=True)
    finally:
        engine.send_signal(signal.SIGINT)
        engine.wait(timeout=120)
    after = [rss for minute, rss in samples if minute >= args.warmup]
    if after:
        print(f"RSS after warm-up ({args.warmup:.0f} min): first {after[0]:.0f} MB, last {after[-1]:.0f} MB, "
              f"max {max(after):.0f} MB; output in {out}")


if __name__ == "__main__":
    main()

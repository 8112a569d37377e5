#!/usr/bin/env python3
"""Time from a restart after kill -9 to the first new metrics record, with checkpoints in Redis.

Runs the embedded default's four aggregations over a generated file (by default event time at
100,000 events/s, so a checkpoint holds what a live run at that pace holds), with checkpoints
every second; kills the run with SIGKILL once a few checkpoints are complete, restarts it, and reports:
when the restarted process said it resumed (the checkpoint read and loaded), and when the first
record after the checkpoint reached metrics.jsonl. The second includes the wait for the next
window to close (a record is written only then), so it depends on --event-time-rate. Repeats a
few times.

    python3 benches/restart_to_first_record.py [--rtsa target/release/rtsa] [--events 3000000]

Needs a Redis: $RTSA_REDIS_URL (scripts/services.sh start writes it to target/services.env).
"""
import argparse, json, os, signal, subprocess, sys, tempfile, time

AGGREGATIONS = """
aggregations:
  - { name: by_type_1m, window: { kind: tumbling, size: 1m }, group_by: event_type }
  - { name: by_type_5m_sliding, window: { kind: sliding, size: 5m, slide: 1m }, group_by: event_type }
  - { name: by_user_1m, window: { kind: tumbling, size: 1m }, group_by: user_id }
  - { name: by_user_sessions, window: { kind: session, gap: 30s }, group_by: user_id }
"""


def redis_manifest(url, name):
    out = subprocess.run(["redis-cli", "-u", url, "GET", f"{{{name}}}:checkpoint:manifest"],
                         capture_output=True, text=True).stdout.strip()
    return json.loads(out) if out.startswith("{") else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rtsa", default="target/release/rtsa")
    parser.add_argument("--events", type=int, default=3_000_000)
    parser.add_argument("--event-time-rate", type=int, default=100_000,
                        help="events per second of event time (how much state a checkpoint holds, and how"
                             " often windows close: at 100,000 a 1-minute window holds 6 M events)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kill-after-checkpoints", type=int, default=3)
    args = parser.parse_args()
    url = os.environ.get("RTSA_REDIS_URL")
    if not url:
        sys.exit("set RTSA_REDIS_URL (source target/services.env after scripts/services.sh start)")
    work = tempfile.mkdtemp(prefix="rtsa-restart-")
    events = os.path.join(work, "events.jsonl")
    with open(events, "w") as f:
        subprocess.run([args.rtsa, "generate", "--count", str(args.events), "--start-ms", "1764230400000",
                        "--event-time-rate", str(args.event_time_rate)], stdout=f, check=True)
    name = f"restart-bench-{os.getpid()}"
    metrics = os.path.join(work, "metrics.jsonl")
    config = os.path.join(work, "config.yaml")
    with open(config, "w") as f:
        f.write(f"""
source: {{ kind: file, path: {events} }}
watermark: {{ max_out_of_orderness: 5s, idle_timeout: 10s, epoch: 1s }}
engine: {{ status_interval: 0s }}
{AGGREGATIONS}
sinks:
  metrics: [ {{ kind: jsonl, path: {metrics} }} ]
  alerts: []
  dead_letter: {{ kind: jsonl, path: {work}/dead.jsonl }}
checkpoint: {{ store: redis, url: "{url}", interval: 1s, name: {name} }}
""")
    print(f"{'run':>4} {'checkpoint bytes':>17} {'open windows':>13} {'to resumed ms':>14} {'to first record ms':>19}")
    for repeat in range(args.repeats):
        previous = redis_manifest(url, name)
        first = subprocess.Popen([args.rtsa, "run", "--fresh", "--workers", "2", "--config", config],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # --fresh deleted the manifest: count the checkpoints this run completes.
        seen, last_time = 0, previous["time"] if previous else None
        while seen < args.kill_after_checkpoints:
            m = redis_manifest(url, name)
            if m and m["time"] > 0 and m["time"] != last_time:
                last_time, seen = m["time"], seen + 1
            if first.poll() is not None:
                sys.exit("the run ended before it was killed: use more --events")
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.wait()
        m = redis_manifest(url, name)
        killed_size = os.path.getsize(metrics)
        started = time.monotonic()
        second = subprocess.Popen([args.rtsa, "run", "--workers", "2", "--config", config],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.set_blocking(second.stderr.fileno(), False)
        said, resumed_at, first_record_at, smallest = "", None, None, killed_size
        while first_record_at is None and second.poll() is None:
            said += (second.stderr.read() or b"").decode(errors="replace")
            if resumed_at is None and "resuming from checkpoint" in said:
                resumed_at = time.monotonic()
            size = os.path.getsize(metrics)
            smallest = min(smallest, size)
            if size > smallest and resumed_at is not None:
                first_record_at = time.monotonic()
            time.sleep(0.001)
        second.send_signal(signal.SIGKILL)
        second.wait()
        if resumed_at is None or first_record_at is None:
            sys.exit(f"the restarted run did not resume and write: {said}")
        print(f"{repeat + 1:>4} {m['bytes']:>17,} {m['open_windows']:>13,} {1000 * (resumed_at - started):>14.0f}"
              f" {1000 * (first_record_at - started):>19.0f}")
    keys = subprocess.run(["redis-cli", "-u", url, "--scan", "--pattern", f"{{{name}}}:*"],
                          capture_output=True, text=True).stdout.split()
    if keys:
        subprocess.run(["redis-cli", "-u", url, "DEL", *keys], capture_output=True)


if __name__ == "__main__":
    main()

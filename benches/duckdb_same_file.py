#!/usr/bin/env python3
"""DuckDB's batch query of rtsa's job on the same JSONL file: per event type and 1-minute
tumbling window, the count, error count, distinct users, exact latency percentiles (p50, p90,
p95, p99, nearest rank) and the value sum: the aggregates `rtsa run` computes for
`{name: by_type_1m, window: {kind: tumbling, size: 1m}, group_by: event_type}`.

    python3 benches/duckdb_same_file.py EVENTS.jsonl [--out result.csv] [--threads 2]

Prints the number of (window, key) rows and the seconds the query took. DuckDB has no notion of
lateness: it counts every event in its window, so on a file with late events its counts are
the on-time counts plus the late ones (rtsa writes those to the dead-letter sink instead).
Needs `pip install duckdb`.
"""
import argparse
import time

import duckdb

QUERY = """
SELECT event_type AS key,
       (timestamp // 60000) * 60000 AS window_start,
       count(*) AS count,
       count(*) FILTER (WHERE status = 'error') AS error_count,
       count(DISTINCT user_id) AS unique_users,
       quantile_disc(latency_ms, [0.5, 0.9, 0.95, 0.99]) AS latency_percentiles,
       sum(value) AS value_sum
FROM read_json(?, format = 'newline_delimited', ignore_errors = true,
               columns = {event_type: 'VARCHAR', user_id: 'VARCHAR', timestamp: 'BIGINT',
                          latency_ms: 'DOUBLE', value: 'DOUBLE', status: 'VARCHAR'})
WHERE event_type IS NOT NULL AND timestamp IS NOT NULL
GROUP BY ALL
ORDER BY window_start, key
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("events")
    parser.add_argument("--out", help="write the rows as CSV here")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    started = time.time()
    db = duckdb.connect()
    db.execute(f"SET threads = {args.threads}")
    rows = db.execute(QUERY, [args.events]).fetchall()
    seconds = time.time() - started
    if args.out:
        with open(args.out, "w") as f:
            f.write("key,window_start,count,error_count,unique_users,p50,p90,p95,p99,value_sum\n")
            for key, start, count, errors, users, p, value_sum in rows:
                p = p or [None] * 4
                f.write(f"{key},{start},{count},{errors},{users},{p[0]},{p[1]},{p[2]},{p[3]},{value_sum}\n")
    print(f"{len(rows)} rows in {seconds:.2f} s")


if __name__ == "__main__":
    main()

"""Parses an OpenMetrics text (rtsa's /metrics) with the reference Python client's strict parser
and prints {metric sample name: {labels as "k=v,k=v": value}} as JSON.

    python openmetrics.py < metrics.txt
"""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

out = {}
types = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    types[family.name] = family.type
    for sample in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
        out.setdefault(sample.name, {})[labels] = sample.value
print(json.dumps({"samples": out, "types": types}))

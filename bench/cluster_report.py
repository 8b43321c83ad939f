#!/usr/bin/env python3
"""The tables of docs/benchmarks.md "Cluster fan-out (issue 20)" from bench/cluster-fanout.sh's
results (pocket-agent-bench --json fanout lines, each with `case` local|remote and the Redis
figures the script added): one row per run, then remote against local for each flood (the
median of the runs of each case when REPEAT > 1).

    cluster_report.py results.jsonl
"""
import json
import statistics
import sys


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.startswith("{")]


def flood(r):
    if r["line_rate"]:
        return f"paced {r['line_rate']:,}/s × {r['lines']:,}"
    return f"unpaced × {r['lines']:,}"


def per_1000_lines(value, r):
    return value * 1000 / r["lines"]


def where(r):
    return "b (local)" if r["case"] == "local" else "a (remote)"


def run_row(r):
    lat, cpu = r["latency"], r["cpu_seconds"]
    total_cpu = cpu["node_a"] + cpu["node_b"] + cpu["redis"]
    per_delivery = total_cpu * 1e6 / r["delivered"] if r["delivered"] else 0
    growth = r["redis_used_memory_after"] - r["redis_used_memory_before"]
    stream = r.get("redis_stream_bytes")
    stream_kib = f"{per_1000_lines(stream, r) / 1024:,.0f}" if stream is not None else "—"
    return (
        f"| {flood(r)} | {where(r)} | {r['deliveries_per_s']:,.0f} "
        f"| {lat['p50_ms']} / {lat['p99_ms']} / {lat['p999_ms']} "
        f"| {r['lost']} / {r['reordered']} "
        f"| {cpu['node_b']:.2f} / {cpu['node_a']:.2f} / {cpu['redis']:.2f} "
        f"| {per_delivery:.2f} "
        f"| {per_1000_lines(cpu['redis'] * 1000, r):.0f} "
        f"| {r['redis_stream_entries']:,} "
        f"| {stream_kib} / {per_1000_lines(growth, r) / 1024:,.0f} |"
    )


def median(runs, get):
    return statistics.median(get(r) for r in runs)


def main():
    runs = [r for r in load(sys.argv[1]) if r.get("scenario") == "fanout" and "case" in r]
    if not runs:
        sys.exit("cluster_report.py: no fan-out results")
    first = runs[0]
    mode = "TLS" if first["tls"] else "plain"
    print(f"{first['subscribers']} subscribers, {mode}, {first['line_bytes']} B of text per line, "
          f"pocket-agent-bench --threads {first['threads']}; the flood runs on node b.\n")
    print("| flood | subscribers on | deliveries/s | latency p50 / p99 / p99.9 ms "
          "| lost / reordered | CPU s: node b / node a / redis | cluster CPU µs per delivery "
          "| Redis CPU ms per 1,000 lines | stream entries "
          "| Redis KiB per 1,000 lines: stream / used_memory growth |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(run_row(r))

    print("\n| flood | deliveries/s remote / local | added latency p50 | added latency p99 "
          "| Redis CPU ms per 1,000 lines, remote / local |")
    print("|---|---|---|---|---|")
    for name in dict.fromkeys(flood(r) for r in runs):
        local = [r for r in runs if flood(r) == name and r["case"] == "local"]
        remote = [r for r in runs if flood(r) == name and r["case"] == "remote"]
        if not local or not remote:
            continue
        rate = [median(c, lambda r: r["deliveries_per_s"]) for c in (remote, local)]
        p50 = [median(c, lambda r: r["latency"]["p50_ms"]) for c in (remote, local)]
        p99 = [median(c, lambda r: r["latency"]["p99_ms"]) for c in (remote, local)]
        redis = [median(c, lambda r: per_1000_lines(r["cpu_seconds"]["redis"] * 1000, r))
                 for c in (remote, local)]
        print(f"| {name} | {rate[0]:,.0f} / {rate[1]:,.0f} ({rate[0] / rate[1]:.2f}×) "
              f"| {p50[0] - p50[1]:+.2f} ms ({p50[0]} vs {p50[1]}) "
              f"| {p99[0] - p99[1]:+.2f} ms ({p99[0]} vs {p99[1]}) "
              f"| {redis[0]:.0f} / {redis[1]:.0f} |")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The tables of docs/benchmarks.md "Cluster fan-out (issue 20)" from bench/cluster-fanout.sh's
results (pocket-agent-bench --json fanout lines, each with `case` local|remote and the Redis
figures the script added): deliveries and latency per run, Redis's cost per run, then remote
against local for each flood (the median of each case's runs when REPEAT > 1).

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


def where(r):
    return "b (local)" if r["case"] == "local" else "a (remote)"


def per_kline(value, r):
    """`value` per 1,000 lines of the flood."""
    return value * 1000 / r["lines"]


def kib(value):
    return "—" if value is None else f"{value / 1024:,.0f}"


def delivery_row(r):
    lat, cpu = r["latency"], r["cpu_seconds"]
    total_cpu = cpu["node_a"] + cpu["node_b"] + cpu["redis"]
    per_delivery = total_cpu * 1e6 / r["delivered"] if r["delivered"] else 0
    return (f"| {flood(r)} | {where(r)} | {r['deliveries_per_s']:,.0f} "
            f"| {lat['p50_ms']:.1f} / {lat['p99_ms']:.1f} / {lat['p999_ms']:.1f} "
            f"| {r['lost']} / {r['reordered']} "
            f"| {cpu['node_b']:.2f} / {cpu['node_a']:.2f} / {cpu['redis']:.2f} "
            f"| {per_delivery:.1f} |")


def redis_row(r):
    cpu_ms = r["cpu_seconds"]["redis"] * 1000
    growth = r["redis_used_memory_after"] - r["redis_used_memory_before"]
    stream, entries = r["redis_stream_bytes"], r["redis_stream_entries"]
    # What a subscriber receives per line (mib_per_s is over span_seconds), beside what the
    # stream holds per entry.
    frame = r["mib_per_s"] * 1048576 * r["span_seconds"] / r["delivered"] if r["delivered"] else 0
    per_entry = f"{stream / entries:,.0f}" if stream and entries else "—"
    return (f"| {flood(r)} | {where(r)} | {per_kline(cpu_ms, r):.0f} "
            f"| {per_kline(r['redis_xadd_calls'], r):,.0f} / {per_kline(r['redis_xread_calls'], r):,.0f} "
            f"| {entries:,} | {frame:,.0f} / {per_entry} "
            f"| {kib(per_kline(stream, r) if stream else None)} / {kib(per_kline(growth, r))} "
            f"| {r['redis_reply_stream_entries'] or 0:,} / {kib(r['redis_reply_stream_bytes'])} |")


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
          "| lost / reordered | CPU s: node b / node a / redis | CPU µs per delivery, all three |")
    print("|---|---|---|---|---|---|---|")
    for r in runs:
        print(delivery_row(r))

    print("\n| flood | subscribers on | Redis CPU ms per 1,000 lines "
          "| XADD / XREAD per 1,000 lines | event stream entries | B per line: frame / stream entry "
          "| Redis KiB per 1,000 lines: event stream / used_memory growth "
          "| pa:reply:a entries / KiB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(redis_row(r))

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
        redis = [median(c, lambda r: per_kline(r["cpu_seconds"]["redis"] * 1000, r))
                 for c in (remote, local)]
        print(f"| {name} | {rate[0]:,.0f} / {rate[1]:,.0f} ({rate[0] / rate[1]:.2f}×) "
              f"| {p50[0] - p50[1]:+.1f} ms ({p50[0]:.1f} vs {p50[1]:.1f}) "
              f"| {p99[0] - p99[1]:+.1f} ms ({p99[0]:.1f} vs {p99[1]:.1f}) "
              f"| {redis[0]:.0f} / {redis[1]:.0f} |")


if __name__ == "__main__":
    main()

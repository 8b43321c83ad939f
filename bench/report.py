#!/usr/bin/env python3
"""Turns pocket-agent-bench --json output (one object per line) into the markdown results table
of docs/benchmarks.md: every figure beside the spec's claim and the target, with the size it was
measured at. A verdict is given only when the run had the target's size."""
import json
import sys


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.startswith("{")]


def mode(r):
    return "TLS" if r.get("tls") else "plain"


def verdict(ok, sized):
    if not sized:
        return "— (smaller run)"
    return "**met**" if ok else "**missed**"


def main():
    runs = load(sys.argv[1])
    rows = []

    def row(figure, claim, target, size, measured, ok, sized):
        rows.append((figure, claim, target, size, measured, verdict(ok, sized)))

    for r in runs:
        s, m = r["scenario"], mode(r)
        if s == "idle":
            n = r["connections"]
            kib_target = 100 if r["tls"] else 16
            row(f"idle {m} connections held, server RSS per connection", "100+ (~2 MB each)",
                f"10,000 at ≤ {kib_target} KiB", f"{n} conns",
                f"{n} held ({r['connect_failures']} failed), {r['rss_per_conn_kib']} KiB each",
                r["connect_failures"] == 0 and r["rss_per_conn_kib"] <= kib_target, n >= 10000)
            row(f"server CPU with {n} idle {m} connections", "< 5 % (100 conns)", "< 1 % (1,000)",
                f"{n} conns, {r['idle_seconds']} s", f"{r['idle_cpu_percent']} %",
                r["idle_cpu_percent"] < 1, n == 1000)
            if r["tls"]:
                cpu = r.get("server_cpu_ms_per_connect")
                extra = (f"; server CPU {cpu} ms per connection (≈ {1000 / cpu:,.0f}/s per core)"
                         if cpu else "")
                kind = (f"resumed, {r.get('tls_resumed', 0)} of {n} resumed"
                        if r.get("resume") else "full")
                row(f"TLS handshakes/s (connect + TLS + upgrade; {kind})", "—", "≥ 2,000",
                    f"{n} conns", f"{r['connects_per_s']:.0f}/s{extra}",
                    r["connects_per_s"] >= 2000, n >= 1000)
        elif s == "fanout":
            lat = r["latency"]
            size = f"{r['subscribers']} subs × {r['lines']} lines × {r['line_bytes']} B"
            if r["line_rate"] == 0:
                goal = 100000 if r["tls"] else 200000
                row(f"fan-out deliveries/s, {m}", "1,000+ msg/s", f"≥ {goal:,}", size,
                    f"{r['deliveries_per_s']:,.0f}/s ({r['mib_per_s']} MiB/s)"
                    + (f"; server CPU {r['server_cpu_us_per_delivery']} µs per delivery"
                       if "server_cpu_us_per_delivery" in r else ""),
                    r["deliveries_per_s"] >= goal and r["lost"] == 0,
                    r["subscribers"] >= 100 and r["line_bytes"] == 300 and r["lines"] >= 10000)
            else:
                row(f"line-to-client latency, {m}", "< 10 ms routing", "p99 < 5 ms",
                    size + f" at {r['line_rate']} lines/s",
                    f"p50 {lat['p50_ms']} / p99 {lat['p99_ms']} / p99.9 {lat['p999_ms']} / max {lat['max_ms']} ms",
                    lat["p99_ms"] < 5, r["subscribers"] >= 100 and r["line_rate"] >= 1000)
            row(f"fan-out lost / reordered lines, {m}", "—", "0 / 0", size,
                f"{r['lost']} / {r['reordered']}", r["lost"] == 0 and r["reordered"] == 0, True)
        elif s == "rpc":
            rtt = r["rtt"]
            # Results since --threads: the round trip counts from each request's scheduled send
            # time, and late_send_share says how many left > late_send_threshold_ms late.
            late = ""
            if "late_send_share" in r:
                late = (f", {100 * r['late_send_share']:.2f} % sent > "
                        f"{r.get('late_send_threshold_ms', 1):g} ms late"
                        f" ({r.get('threads', 1)} generator threads)")
            lost = f", {r['unanswered']} unanswered" if r.get("unanswered") else ""
            row(f"request round trip, {m}", "< 10 ms", "p99 < 1 ms at 5,000 req/s",
                f"{r['connections']} conns at {r['target_rate']:.0f} req/s",
                f"{r['achieved_rate']:.0f} req/s achieved, p50 {rtt['p50_ms']} / p99 {rtt['p99_ms']} / p99.9 {rtt['p999_ms']} ms, {r['errors']} errors{lost}{late}",
                rtt["p99_ms"] < 1 and r["errors"] == 0 and not r.get("unanswered"),
                r["connections"] >= 1000 and r["target_rate"] >= 5000)
        elif s == "history":
            worst = max(r[k]["p99_ms"] for k in r if k.startswith(("after_seq_", "since_")))
            parts = ", ".join(f"{k} {r[k]['p99_ms']}" for k in r
                              if k.startswith(("after_seq_", "since_")))
            row(f"get_messages 1,000-entry page, {m}", "—", "p99 < 20 ms from any point",
                f"{r['entries']:,} entries", f"worst p99 {worst} ms ({parts})", worst < 20,
                r["entries"] >= 1000000)
        elif s == "churn":
            c = r["cycle"]
            row(f"churn (connect, join, leave, close), {m}", "—", "no failures",
                f"{r['workers']} workers", f"{r['cycles_per_s']:.0f} cycles/s, {r['failures']} failures, cycle p99 {c['p99_ms']} ms",
                r["failures"] == 0, True)

    print("| figure | spec claim | target | run | measured | verdict |")
    print("|---|---|---|---|---|---|")
    for cells in rows:
        print("| " + " | ".join(str(c) for c in cells) + " |")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Checks pocket-agent-bench --json results (one object per line) for the smoke run of
bench/run-load.sh: every scenario named on the command line ran, and none had a connect failure,
an error, a failed cycle, or a lost or reordered line. Timings are printed, never judged.

    check-results.py results.jsonl idle fanout rpc history churn
"""
import json
import sys

# Fields that must be zero (when present), and one that must be true. rpc's late_sends /
# late_send_share (requests the generator sent late) are timings: printed, not judged.
ZERO = ("connect_failures", "errors", "failures", "lost", "reordered", "unanswered")
TRUE = ("in_order_and_complete",)


def main():
    path, wanted = sys.argv[1], sys.argv[2:]
    with open(path) as f:
        runs = [json.loads(line) for line in f if line.startswith("{")]
    problems = []
    seen = {r.get("scenario") for r in runs}
    for name in wanted:
        if name not in seen:
            problems.append(f"{name}: no result (the run failed; its error is in the output above)")
    for r in runs:
        name = r.get("scenario", "?")
        for key in ZERO:
            if key in r and r[key] != 0:
                problems.append(f"{name}: {key} = {r[key]} (first error: {r.get('first_error', '-')})")
        for key in TRUE:
            if key in r and r[key] is not True:
                problems.append(f"{name}: {key} = {r[key]}")
        if name == "fanout" and r.get("delivered", 0) == 0:
            problems.append("fanout: nothing was delivered")
        if name == "rpc" and r.get("requests", 0) == 0:
            problems.append("rpc: no request was answered")
        if name == "rpc" and "late_send_share" in r:
            print(f"check-results: rpc: {r['late_sends']} of {r['sent']} requests sent more than "
                  f"{r.get('late_send_threshold_ms', 1)} ms late (share {r['late_send_share']}), "
                  f"{r.get('threads', 1)} generator thread(s)")
        if name == "churn" and r.get("cycles", 0) == 0:
            problems.append("churn: no cycle completed")
    for p in problems:
        print("check-results: " + p, file=sys.stderr)
    if problems:
        return 1
    print(f"check-results: {len(runs)} scenario runs, no errors, nothing lost or reordered")
    return 0


if __name__ == "__main__":
    sys.exit(main())

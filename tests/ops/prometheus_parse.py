#!/usr/bin/env python3
"""Parses a Prometheus text exposition with the reference client library's parser
(prometheus_client.parser, Debian package python3-prometheus-client), a second opinion beside
our strict prometheus_lint.py.

Usage: python3 prometheus_parse.py FILE
Prints one line per metric family ("name type samples") and exits 0; exits 1 with the parser's
error on stderr when it cannot parse the file.
"""

import sys

from prometheus_client.parser import text_string_to_metric_families


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        text = f.read()
    try:
        for family in text_string_to_metric_families(text):
            print(f"{family.name} {family.type} {len(family.samples)}")
    except Exception as e:  # the parser raises ValueError and others on bad input
        print(f"prometheus_parse: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Strict checker of the Prometheus text exposition format 0.0.4 (standard library only).

Usage: python3 prometheus_lint.py < metrics.txt
       python3 prometheus_lint.py FILE...   (each file checked on its own)
Exit status 0 when every input is valid; otherwise 1, with a message on stderr naming the first
problem of each invalid input ("prometheus_lint: [FILE: ]line N: ...").

Beyond what a Prometheus server requires, it is deliberately strict (it checks our own output):
  * input is UTF-8 with "\\n" line ends (no "\\r"), and the last line ends with "\\n";
  * every metric has a "# HELP" and a "# TYPE" line before its first sample, each at most once,
    and all lines of a metric form one contiguous group;
  * no leading or trailing blanks on a line;
  * values are decimal floats or exactly "+Inf", "-Inf", "NaN"; timestamps are integers;
  * label names match [a-zA-Z_][a-zA-Z0-9_]* and do not start with "__"; label values use only
    the escapes \\\\, \\" and \\n; HELP text uses only \\\\ and \\n;
  * no two samples have the same name and label set, and no sample name belongs to two metrics;
  * counter values are >= 0 (not NaN);
  * histograms: samples are <name>_bucket (with an "le" label), <name>_sum and <name>_count; per
    label set the buckets appear in strictly increasing "le" order, the counts never decrease,
    the last bucket is le="+Inf" and equals <name>_count, and _sum and _count are present;
  * summaries: samples are <name> (with a "quantile" label in [0, 1]), <name>_sum, <name>_count.
"""

import math
import re
import sys

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
TIMESTAMP = re.compile(r"-?[0-9]+")
META = re.compile(r"#[ \t]+(HELP|TYPE)(?:[ \t]+(\S+)(?:[ \t](.*))?)?")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
BLANKS = " \t"


class LintError(Exception):
    pass


def parse_float(text, what):
    if text == "+Inf":
        return math.inf
    if text == "-Inf":
        return -math.inf
    if text == "NaN":
        return math.nan
    if not FLOAT.fullmatch(text):
        raise LintError(f"{what} {text!r} is not a number (+Inf, -Inf and NaN are spelled so)")
    return float(text)


def check_help_escapes(doc):
    i = 0
    while i < len(doc):
        if doc[i] == "\\":
            if i + 1 >= len(doc) or doc[i + 1] not in "\\n":
                raise LintError(f"invalid escape in HELP text at column {i + 1}: {doc[i:i + 2]!r}")
            i += 2
        else:
            i += 1


def parse_labels(line, pos):
    """Parses {name="value",...} starting at line[pos] == '{'; returns (labels dict, end pos)."""
    labels = {}
    pos += 1
    while True:
        while pos < len(line) and line[pos] in BLANKS:
            pos += 1
        if pos >= len(line):
            raise LintError("unterminated label set")
        if line[pos] == "}":
            return labels, pos + 1
        m = LABEL_NAME.match(line, pos)
        if not m:
            raise LintError(f"invalid label name at column {pos + 1}")
        name = m.group(0)
        if name.startswith("__"):
            raise LintError(f"label name {name!r} is reserved (starts with '__')")
        if name in labels:
            raise LintError(f"duplicate label name {name!r}")
        pos = m.end()
        while pos < len(line) and line[pos] in BLANKS:
            pos += 1
        if pos >= len(line) or line[pos] != "=":
            raise LintError(f"expected '=' after label name {name!r}")
        pos += 1
        while pos < len(line) and line[pos] in BLANKS:
            pos += 1
        if pos >= len(line) or line[pos] != '"':
            raise LintError(f"expected '\"' to open the value of label {name!r}")
        pos += 1
        value = []
        while True:
            if pos >= len(line):
                raise LintError(f"unterminated value of label {name!r}")
            c = line[pos]
            if c == "\\":
                nxt = line[pos + 1] if pos + 1 < len(line) else ""
                if nxt == "\\":
                    value.append("\\")
                elif nxt == '"':
                    value.append('"')
                elif nxt == "n":
                    value.append("\n")
                else:
                    raise LintError(
                        f"invalid escape in value of label {name!r}: {line[pos:pos + 2]!r}")
                pos += 2
            elif c == '"':
                pos += 1
                break
            else:
                value.append(c)
                pos += 1
        labels[name] = "".join(value)
        while pos < len(line) and line[pos] in BLANKS:
            pos += 1
        if pos >= len(line):
            raise LintError("unterminated label set")
        if line[pos] == ",":
            pos += 1
        elif line[pos] == "}":
            return labels, pos + 1
        else:
            raise LintError(f"expected ',' or '}}' after the value of label {name!r}")


def series_text(name, labels):
    if not labels:
        return name
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


class Family:
    def __init__(self, name):
        self.name = name
        self.help = None
        self.type = None
        self.has_samples = False
        self.closed = False  # a later metric's lines started

    def sample_kind(self, sample_name):
        """Which sample of this family sample_name is ('', '_bucket', ...), or None."""
        n = self.name
        if self.type == "histogram":
            suffixes = ("_bucket", "_sum", "_count")
        elif self.type == "summary":
            suffixes = ("", "_sum", "_count")
        else:
            suffixes = ("",)
        for s in suffixes:
            if sample_name == n + s:
                return s
        return None


class Linter:
    def __init__(self):
        self.families = {}
        self.current = None  # the family whose group the last line belonged to
        self.series = set()
        self.owner = {}  # sample name -> family name
        self.histograms = {}  # (family, labels without le) -> {"buckets": [...], "sum", "count"}

    def enter(self, name):
        fam = self.families.get(name)
        if fam is None:
            fam = self.families[name] = Family(name)
        if self.current != name:
            if fam.closed:
                raise LintError(f"lines of metric {name!r} are not one contiguous group")
            if self.current is not None:
                self.families[self.current].closed = True
            self.current = name
        return fam

    def meta(self, line):
        m = META.fullmatch(line)
        if not m:
            return  # a plain comment
        keyword, name, rest = m.group(1), m.group(2), m.group(3)
        if name is None:
            raise LintError(f"# {keyword} without a metric name")
        if not METRIC_NAME.fullmatch(name):
            raise LintError(f"invalid metric name {name!r}")
        fam = self.enter(name)
        if fam.has_samples:
            raise LintError(f"# {keyword} for {name!r} after its samples")
        if keyword == "HELP":
            if fam.help is not None:
                raise LintError(f"second # HELP for {name!r}")
            doc = rest if rest is not None else ""
            check_help_escapes(doc)
            fam.help = doc
        else:
            if fam.type is not None:
                raise LintError(f"second # TYPE for {name!r}")
            rest = rest.lstrip(BLANKS) if rest is not None else None
            if rest is None or rest not in TYPES:
                raise LintError(
                    f"# TYPE for {name!r} must be one of {', '.join(TYPES)}; got {rest!r}")
            fam.type = rest

    def sample(self, line):
        m = METRIC_NAME.match(line)
        if not m:
            raise LintError("a sample line must start with a metric name")
        name = m.group(0)
        pos = m.end()
        labels = {}
        if pos < len(line) and line[pos] == "{":
            labels, pos = parse_labels(line, pos)
        rest = line[pos:]
        if not rest or rest[0] not in BLANKS:
            raise LintError(f"expected a blank and a value after {name!r}")
        tokens = rest.split()
        if len(tokens) not in (1, 2) or rest != rest.rstrip(BLANKS):
            raise LintError("a sample is: name[{labels}] value [timestamp]")
        value = parse_float(tokens[0], "value")
        if len(tokens) == 2 and not TIMESTAMP.fullmatch(tokens[1]):
            raise LintError(f"timestamp {tokens[1]!r} is not an integer")

        fam = self.families.get(self.current) if self.current is not None else None
        kind = fam.sample_kind(name) if fam is not None else None
        if kind is None:
            owner = self.owner.get(name) or (name if name in self.families else None)
            if owner is not None and self.families[owner].closed:
                raise LintError(f"lines of metric {owner!r} are not one contiguous group")
            raise LintError(f"sample {name!r} has no # HELP and # TYPE lines right before it")
        if fam.help is None:
            raise LintError(f"metric {fam.name!r} has no # HELP line before its samples")
        if fam.type is None:
            raise LintError(f"metric {fam.name!r} has no # TYPE line before its samples")
        if self.owner.setdefault(name, fam.name) != fam.name:
            raise LintError(
                f"sample name {name!r} belongs to both {self.owner[name]!r} and {fam.name!r}")
        fam.has_samples = True

        key = (name, frozenset(labels.items()))
        if key in self.series:
            raise LintError(f"duplicate series {series_text(name, labels)}")
        self.series.add(key)

        if fam.type == "counter" and not value >= 0:
            raise LintError(f"counter {series_text(name, labels)} has a negative or NaN value")
        if fam.type == "histogram":
            self.histogram_sample(fam.name, kind, labels, value)
        elif fam.type == "summary":
            if kind == "":
                if "quantile" not in labels:
                    raise LintError(
                        f"summary sample {series_text(name, labels)} has no quantile label")
                q = parse_float(labels["quantile"], "quantile")
                if not 0 <= q <= 1:
                    raise LintError(f"quantile {labels['quantile']!r} is outside [0, 1]")
            elif "quantile" in labels:
                raise LintError(f"{series_text(name, labels)} must not have a quantile label")

    def histogram_sample(self, family, kind, labels, value):
        base = dict(labels)
        le = base.pop("le", None)
        group = self.histograms.setdefault(
            (family, frozenset(base.items())), {"buckets": [], "sum": None, "count": None})
        what = series_text(family + kind, labels)
        if kind == "_bucket":
            if le is None:
                raise LintError(f"histogram bucket {what} has no le label")
            bound = parse_float(le, "le")
            if math.isnan(bound):
                raise LintError(f"histogram bucket {what} has le=NaN")
            if not value >= 0 or math.isinf(value):
                raise LintError(f"histogram bucket {what} has a negative or non-finite count")
            group["buckets"].append((bound, value, what))
        else:
            if le is not None:
                raise LintError(f"{what} must not have an le label")
            if kind == "_count" and (not value >= 0 or math.isinf(value)):
                raise LintError(f"{what} is negative or not finite")
            group[kind[1:]] = value

    def finish(self):
        for (family, base), group in self.histograms.items():
            what = series_text(family, dict(base))
            buckets = group["buckets"]
            if not buckets:
                raise LintError(f"histogram {what} has no buckets")
            for (b0, c0, _), (b1, c1, w1) in zip(buckets, buckets[1:]):
                if not b0 < b1:
                    raise LintError(f"histogram buckets out of order at {w1}")
                if c1 < c0:
                    raise LintError(f"histogram buckets not cumulative at {w1} ({c1} < {c0})")
            last_bound, last_count, _ = buckets[-1]
            if last_bound != math.inf:
                raise LintError(f"histogram {what} does not end with an le=\"+Inf\" bucket")
            if group["count"] is None:
                raise LintError(f"histogram {what} has no {family}_count")
            if group["sum"] is None:
                raise LintError(f"histogram {what} has no {family}_sum")
            if group["count"] != last_count:
                raise LintError(
                    f"histogram {what}: _count {group['count']} != +Inf bucket {last_count}")


def lint(data):
    """Raises LintError for the first problem in data (bytes)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise LintError(f"input is not UTF-8 (byte {e.start})") from None
    if "\r" in text:
        raise LintError(f"line {text[:text.index(chr(13))].count(chr(10)) + 1}: carriage return")
    if text and not text.endswith("\n"):
        raise LintError("the last line does not end with a line feed")
    linter = Linter()
    for number, line in enumerate(text.split("\n")[:-1], start=1):
        try:
            if line == "":
                continue
            if line[0] in BLANKS or line[-1] in BLANKS:
                raise LintError("leading or trailing blank")
            if line.startswith("#"):
                linter.meta(line)
            else:
                linter.sample(line)
        except LintError as e:
            raise LintError(f"line {number}: {e}") from None
    linter.finish()


def main(paths):
    status = 0
    for path in paths or [None]:
        try:
            if path is None:
                lint(sys.stdin.buffer.read())
            else:
                with open(path, "rb") as f:
                    lint(f.read())
        except (LintError, OSError) as e:
            where = f"{path}: " if path is not None else ""
            print(f"prometheus_lint: {where}{e}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

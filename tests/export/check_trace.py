#!/usr/bin/python3
"""check_trace.py - validates a Chrome trace written by stall (Trace Event
Format, JSON object form) and checks what a test expects of it.

Always checked: the file is strict UTF-8 JSON with traceEvents,
displayTimeUnit and otherData; every event has the keys its phase needs;
events are sorted by ts within each (pid, tid); the complete events (X) of a
thread nest properly; every (pid, tid) with events has thread_name and its pid
process_name metadata. Timestamps are read as exact decimals.

Expectations (repeatable):
  --count NAME=PH:N     exactly N events of phase PH named NAME
  --parent CHILD=PARENT every X named CHILD sits directly inside an X named PARENT
  --truncated NAME=N    exactly N X events named NAME carry args.truncated
  --process TEXT        some process_name contains TEXT
  --counter NAME        some C event is named NAME
  --has-arg NAME=KEY    every X named NAME has args[KEY]
  --other KEY=VALUE     str(otherData[KEY]) == VALUE ("absent": no such key)
Prints the number of events per phase. Exit status 0 when all holds, else 1.
"""
import argparse
import collections
import decimal
import json
import sys

REQUIRED = {
    "X": ("name", "cat", "ts", "dur", "pid", "tid"),
    "i": ("name", "cat", "ts", "pid", "tid", "s"),
    "C": ("name", "ts", "pid", "args"),
    "M": ("name", "pid", "args"),
}


def fail(msg):
    print("check_trace: " + msg, file=sys.stderr)
    sys.exit(1)


def pair(text, sep, last=True):
    """Splits A<sep>B at the last sep (at the first one when last is False)."""
    if sep not in text:
        fail("bad expectation %r (want A%sB)" % (text, sep))
    return text.rsplit(sep, 1) if last else text.split(sep, 1)


def no_constant(name):
    fail("non-standard JSON constant " + name)


def check_structure(doc):
    for key in ("traceEvents", "displayTimeUnit", "otherData"):
        if key not in doc:
            fail("missing top-level key " + key)
    events = doc["traceEvents"]
    for i, e in enumerate(events):
        ph = e.get("ph")
        if ph not in REQUIRED:
            fail("event %d has unexpected phase %r" % (i, ph))
        for key in REQUIRED[ph]:
            if key not in e:
                fail("event %d (%s) lacks %r: %r" % (i, ph, key, e))
        if ph == "X" and e["dur"] < 0:
            fail("negative dur: %r" % e)
        if ph == "i" and e["s"] not in ("t", "p", "g"):
            fail("bad instant scope: %r" % e)
        if ph == "C" and not all(isinstance(v, (int, decimal.Decimal)) for v in e["args"].values()):
            fail("non-numeric counter: %r" % e)
        if ph == "M" and e["name"] in ("thread_name", "thread_sort_index") and "tid" not in e:
            fail("thread metadata without tid: %r" % e)
    return events


def check_threads(events):
    procs = {e["pid"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
    threads = {(e["pid"], e["tid"]) for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    per_thread = collections.defaultdict(list)
    for e in events:
        if e["ph"] != "M":
            per_thread[(e["pid"], e.get("tid", e["pid"]))].append(e)
    for (pid, tid), evs in per_thread.items():
        if pid not in procs:
            fail("pid %s has events but no process_name" % pid)
        if (pid, tid) not in threads:
            fail("thread %s/%s has events but no thread_name" % (pid, tid))
        for a, b in zip(evs, evs[1:]):
            if b["ts"] < a["ts"]:
                fail("thread %s/%s not sorted: %r after %r" % (pid, tid, b, a))
        stack = []  # open X events of this thread
        for e in evs:
            if e["ph"] != "X":
                continue
            while stack and stack[-1]["ts"] + stack[-1]["dur"] <= e["ts"]:
                stack.pop()
            if stack and e["ts"] + e["dur"] > stack[-1]["ts"] + stack[-1]["dur"]:
                fail("thread %s/%s: %r overlaps %r without nesting" % (pid, tid, e, stack[-1]))
            e["_parent"] = stack[-1]["name"] if stack else None
            stack.append(e)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--count", action="append", default=[])
    ap.add_argument("--parent", action="append", default=[])
    ap.add_argument("--truncated", action="append", default=[])
    ap.add_argument("--process", action="append", default=[])
    ap.add_argument("--counter", action="append", default=[])
    ap.add_argument("--has-arg", action="append", default=[])
    ap.add_argument("--other", action="append", default=[])
    a = ap.parse_args()
    with open(a.file, encoding="utf-8", errors="strict") as f:
        try:
            doc = json.load(f, parse_float=decimal.Decimal, parse_constant=no_constant)
        except ValueError as exc:
            fail("not JSON: %s" % exc)
    events = check_structure(doc)
    check_threads(events)

    for spec in a.count:
        name, rest = pair(spec, "=")
        ph, n = pair(rest, ":")
        got = sum(1 for e in events if e["ph"] == ph and e["name"] == name)
        if got != int(n):
            fail("%d %s events named %r, expected %s" % (got, ph, name, n))
    for spec in a.parent:
        child, parent = pair(spec, "=", last=False)
        kids = [e for e in events if e["ph"] == "X" and e["name"] == child]
        if not kids:
            fail("no X event named %r" % child)
        for e in kids:
            if e["_parent"] != parent:
                fail("%r is inside %r, expected %r" % (child, e["_parent"], parent))
    for spec in a.truncated:
        name, n = pair(spec, "=")
        got = sum(1 for e in events if e["ph"] == "X" and e["name"] == name
                  and e.get("args", {}).get("truncated") is True)
        if got != int(n):
            fail("%d truncated X events named %r, expected %s" % (got, name, n))
    for spec in a.has_arg:
        name, key = pair(spec, "=")
        kids = [e for e in events if e["ph"] == "X" and e["name"] == name]
        if not kids or not all(key in e.get("args", {}) for e in kids):
            fail("not every X named %r has args[%r]" % (name, key))
    names = [e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "process_name"]
    for text in a.process:
        if not any(text in n for n in names):
            fail("no process_name contains %r (have %r)" % (text, names))
    for name in a.counter:
        if not any(e["ph"] == "C" and e["name"] == name for e in events):
            fail("no counter named %r" % name)
    other = doc["otherData"]
    for spec in a.other:
        key, want = pair(spec, "=", last=False)
        got = str(other[key]) if key in other else "absent"
        if got != want:
            fail("otherData[%r] is %r, expected %r" % (key, got, want))

    by_phase = collections.Counter(e["ph"] for e in events)
    print(" ".join("%s=%d" % kv for kv in sorted(by_phase.items())))


if __name__ == "__main__":
    main()

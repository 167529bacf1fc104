"""What `stall run` costs a training run: the bundled example
(examples/train/misconfigured_loader.py) run plainly and under `stall run`,
interleaved (plain, stall, plain, stall, ...) so that drifts of this shared
machine hit both sides alike. The figure is the program's own training time
(the loop, as it prints it) and the whole wall time of the command; the
ratio is stall / plain per pair, and the median over pairs is reported.

    /usr/bin/python3 bench/bench_run.py BUILD [PAIRS] [-- EXTRA ARGS FOR THE EXAMPLE]
"""
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "/usr/bin/python3"
EXAMPLE = os.path.join(REPO, "examples", "train", "misconfigured_loader.py")


def one(cmd):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit("benchmark run failed: %s\n%s" % (" ".join(cmd), r.stderr[-2000:]))
    m = re.search(r"trained \d+ batches in ([0-9.]+) s", r.stdout)
    if not m:
        sys.exit("no training time in the output of %s:\n%s" % (" ".join(cmd), r.stdout))
    return float(m.group(1)), wall


def main():
    args = sys.argv[1:]
    extra = []
    if "--" in args:
        i = args.index("--")
        args, extra = args[:i], args[i + 1:]
    if not args:
        sys.exit(__doc__)
    build = args[0]
    pairs = int(args[1]) if len(args) > 1 else 5
    stall = os.path.join(build, "stall")
    prog = [PY, EXAMPLE, "--batches", "60"] + extra
    out = tempfile.mkdtemp(prefix="stall-bench-run-")
    one(prog)  # warm the page cache and the bytecode of both sides
    rows = []
    for k in range(pairs):
        p = one(prog)
        s = one([stall, "run", "--quiet", "--out", out, "--"] + prog)
        rows.append((p, s))
        print("pair %d: plain loop %.3f s wall %.3f s | stall run loop %.3f s wall %.3f s | loop ratio %.4f"
              % (k + 1, p[0], p[1], s[0], s[1], s[0] / p[0]), flush=True)
    loop = statistics.median(s[0] / p[0] for p, s in rows)
    wall = statistics.median(s[1] / p[1] for p, s in rows)
    print("median over %d pairs: training loop %+.2f%%, whole command %+.2f%% under stall run (goal <= +2%% loop)"
          % (pairs, 100 * (loop - 1), 100 * (wall - 1)))


if __name__ == "__main__":
    main()

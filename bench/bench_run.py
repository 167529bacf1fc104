"""What `stall run` costs a training run. First the bundled example
(examples/train/misconfigured_loader.py) run plainly and under `stall run`,
interleaved (plain, stall, plain, stall, ...) so that drifts of this shared
machine hit both sides alike. The figure is the program's own training time
(the loop, as it prints it) and the whole wall time of the command; the
ratio is stall / plain per pair, and the median over pairs is reported.
Then the hook's own cost per batch, which that noise hides: a DataLoader
over a trivial dataset (20000 samples, batch size 4, no model), its best
time per batch of 5 passes in-process, plain and under `stall run`,
alternated 5 times (wait, sampler, fetch and collate with CPU time, step:
the spans of a detailed run).

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


LOOP = """
import time
from torch.utils.data import DataLoader, Dataset
class D(Dataset):
    def __len__(self): return 20000
    def __getitem__(self, i): return i
if __name__ == "__main__":
    best = 1e9
    for rep in range(5):
        t = time.perf_counter()
        for b in DataLoader(D(), batch_size=4):
            pass
        best = min(best, time.perf_counter() - t)
    print("per batch us %.3f" % (best / 5000 * 1e6))
"""


def per_batch(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    m = re.search(r"per batch us ([0-9.]+)", r.stdout)
    if r.returncode != 0 or not m:
        sys.exit("per-batch run failed: %s\n%s" % (" ".join(cmd), r.stderr[-2000:]))
    return float(m.group(1))


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
    script = os.path.join(out, "loop.py")
    with open(script, "w") as f:
        f.write(LOOP)
    plain, under = [], []
    for k in range(5):
        plain.append(per_batch([PY, script]))
        under.append(per_batch([stall, "run", "--quiet", "--out", out, "--", PY, script]))
    p, u = statistics.median(plain), statistics.median(under)
    print("DataLoader loop, us per batch (median of 5 alternations, each the best of 5 passes): "
          "plain %.2f, under stall run %.2f: the hook adds %.2f us per batch" % (p, u, u - p))


if __name__ == "__main__":
    main()

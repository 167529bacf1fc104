"""bench_ops.py - the cost of stall's Python API on the hot path, against
torch.profiler.record_function, in the same run; and the end-to-end cost of a
DETAILED session on a small CPU training loop with a DataLoader.

1. `with profiler.profile_operation("op", BottleneckType.DATA_LOADING): pass`
   against `with torch.profiler.record_function("op"): pass` and against an
   empty `with` of a no-op context manager (the floor of a with block in
   Python); a `@profile_function()` call against a plain call of the same
   function. Best of 7 timeit runs each, interleaved, a session recording and
   its engine draining.
2. Training: the same loop (MLP, TensorDataset, DataLoader batch 64, 2
   epochs) timed with and without a DETAILED BottleneckProfiler session,
   runs interleaved (off, on, off, on, ...), median of each side.

Usage: PYTHONPATH=build/python /usr/bin/python3 bench/bench_ops.py [ROUNDS]
"""
import contextlib
import statistics
import sys
import time
import timeit

import torch
from torch.utils.data import DataLoader, TensorDataset

import stall
from stall import BottleneckProfiler, BottleneckProfilerConfig, BottleneckType, ProfilingLevel


def per_call_ns(stmt, glb, number=200000, repeat=7):
    return min(timeit.repeat(stmt, globals=glb, number=number, repeat=repeat)) / number * 1e9


def micro():
    prof = BottleneckProfiler(BottleneckProfilerConfig(profiling_level=ProfilingLevel.DETAILED, save_profiles=False))
    sid = prof.start_profiling_session("bench_ops")
    T = BottleneckType.DATA_LOADING

    @stall.profile_function()
    def f_profiled(x):
        return x

    def f_plain(x):
        return x

    nullctx = contextlib.nullcontext()
    glb = dict(prof=prof, T=T, torch=torch, f_profiled=f_profiled, f_plain=f_plain, nullctx=nullctx)
    rows = {}
    for _ in range(2):  # interleave the two sides twice, keep the best
        for key, stmt in [
            ("stall profile_operation", 'with prof.profile_operation("op", T): pass'),
            ("torch record_function", 'with torch.profiler.record_function("op"): pass'),
            ("empty with (nullcontext)", "with nullctx: pass"),
            ("@profile_function() call", "f_profiled(1)"),
            ("plain call", "f_plain(1)"),
        ]:
            ns = per_call_ns(stmt, glb, number=100000 if "torch" in key else 200000)
            rows[key] = min(ns, rows.get(key, ns))
    prof.stop_profiling_session()
    return rows


def train_once(profiled, loader, model, opt, loss_fn):
    prof = None
    if profiled:
        prof = BottleneckProfiler(BottleneckProfilerConfig(profiling_level=ProfilingLevel.DETAILED,
                                                           save_profiles=False))
        prof.start_profiling_session("train")
    t0 = time.perf_counter()
    for _epoch in range(2):
        for x, y in loader:
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
    dt = time.perf_counter() - t0
    if prof:
        prof.stop_profiling_session()
    return dt


def end_to_end(rounds):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    ds = TensorDataset(torch.randn(8192, 256), torch.randint(0, 10, (8192,)))
    loader = DataLoader(ds, batch_size=64, shuffle=True, num_workers=0)
    model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    train_once(False, loader, model, opt, loss_fn)  # warm up
    off, on = [], []
    for _ in range(rounds):
        off.append(train_once(False, loader, model, opt, loss_fn))
        on.append(train_once(True, loader, model, opt, loss_fn))
    return statistics.median(off), statistics.median(on)


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    rows = micro()
    print("per block / call, best of 7 (ns):")
    for k, v in rows.items():
        print(f"  {k:28s} {v:8.0f}")
    rf, po = rows["torch record_function"], rows["stall profile_operation"]
    print(f"  record_function / profile_operation = {rf / po:.1f}x")
    print(f"  profile_function overhead over a plain call = {rows['@profile_function() call'] - rows['plain call']:.0f} ns")
    off, on = end_to_end(rounds)
    print(f"training loop, median of {rounds} interleaved runs: without {off:.3f} s, with DETAILED session"
          f" {on:.3f} s, overhead {100 * (on / off - 1):+.2f}%")


if __name__ == "__main__":
    main()

"""api_demo.py - stall's Python API on a small PyTorch training loop: a
BottleneckProfiler session with nested profile_operation blocks, then the
per-operation table (count, total, self time, percentiles, share of the
session) and the findings, read from the summary.

The DataLoader here has a deliberately slow collate (5 ms a batch) and no
workers, so most of the time goes to loading data.

Usage: PYTHONPATH=build/python /usr/bin/python3 examples/python/api_demo.py
"""
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

import stall
from stall import BottleneckProfiler, BottleneckProfilerConfig, BottleneckType


def slow_collate(items):
    time.sleep(0.005)  # a collate that costs 5 ms a batch
    xs, ys = zip(*items)
    return torch.stack(xs), torch.stack(ys)


def main():
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(2048, 64), torch.randint(0, 10, (2048,)))
    loader = DataLoader(data, batch_size=32, num_workers=0, collate_fn=slow_collate)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()

    prof = BottleneckProfiler(BottleneckProfilerConfig(save_profiles=False))
    sid = prof.start_profiling_session("api_demo")
    it = iter(loader)
    while True:
        with prof.profile_operation("next_batch", BottleneckType.DATA_LOADING):
            batch = next(it, None)
        if batch is None:
            break
        x, y = batch
        with prof.profile_operation("train_step", BottleneckType.CPU_COMPUTATION):
            with prof.profile_operation("forward", BottleneckType.CPU_COMPUTATION):
                loss = loss_fn(model(x), y)
            with prof.profile_operation("backward_and_step", BottleneckType.CPU_COMPUTATION):
                opt.zero_grad()
                loss.backward()
                opt.step()
    prof.stop_profiling_session()

    s = prof.get_session_summary(sid)
    print(f"session {s['name']!r}: {s['duration']:.2f} s")
    print(f"  {'operation':20s} {'type':16s} {'count':>6s} {'total s':>8s} {'self s':>8s}"
          f" {'p50 ms':>7s} {'p95 ms':>7s} {'share':>6s}")
    for name, o in s["operations"].items():
        print(f"  {name:20s} {o['type']:16s} {o['count']:6d} {o['total_time']:8.3f} {o['self_time']:8.3f}"
              f" {1e3 * o['p50_time']:7.2f} {1e3 * o['p95_time']:7.2f} {o['share']:6.0%}")
    print("findings (first version: threshold rules; the full diagnosis comes later):")
    for f in s["bottlenecks"]:
        print(f"  {f['type']}: {f['message']}")
    seen = set()
    for sug in s["suggestions"]:
        if sug["suggestion"] not in seen:
            seen.add(sug["suggestion"])
            print(f"    - {sug['suggestion']}")


if __name__ == "__main__":
    main()

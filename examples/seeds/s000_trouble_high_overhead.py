"""Seed 000 ("Advanced Code Profiling and Optimization System"), section
"Troubleshooting / Common Issues / 1. High Profiling Overhead".

Reproduces the example exactly as the document writes it: when profiling
slows execution down, lower the level to BASIC and sample only 5% of
operations (sampling_rate=0.05).

Fills in a use of that config so the fix can be seen working: the same
small MLP training loop is timed bare and then under an AdvancedProfiler with
the config. Shows: both times and the overhead.
"""

import time

import torch
from torch import nn

from stall import AdvancedProfiler, ProfilingConfig, ProfilingLevel

# --- the document's example ---------------------------------------------
# Symptoms: Profiling significantly slows down execution
# Solution: Reduce profiling level or sampling rate
config = ProfilingConfig(
    level=ProfilingLevel.BASIC,
    sampling_rate=0.05  # Sample only 5% of operations
)
# --------------------------------------------------------------------------

assert config.level == ProfilingLevel.BASIC and config.sampling_rate == 0.05

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
criterion = nn.CrossEntropyLoss()
sgd = torch.optim.SGD(model.parameters(), lr=0.01)
xs = [torch.randn(64, 64) for _ in range(300)]
ys = [torch.randint(0, 10, (64,)) for _ in range(300)]


def train():
    for x, y in zip(xs, ys):
        sgd.zero_grad()
        criterion(model(x), y).backward()
        sgd.step()


train()  # warm up
t0 = time.perf_counter()
train()
bare = time.perf_counter() - t0

profiler = AdvancedProfiler(config)
t0 = time.perf_counter()
profiler.start_profiling()
train()
results = profiler.stop_profiling()
profiled = time.perf_counter() - t0

print(f"bare: {bare:.3f}s, profiled (BASIC, 5% sampling): {profiled:.3f}s, "
      f"overhead {100.0 * (profiled - bare) / bare:+.1f}%")
print("summary:", profiler.get_profiling_summary())

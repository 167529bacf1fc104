"""Seed 000 ("Advanced Code Profiling and Optimization System"), section
"Troubleshooting / Common Issues / 2. Memory Leaks in Profiling".

Reproduces the example exactly as the document writes it: when memory grows
during profiling, disable tracemalloc and bound the history
(max_samples=1000).

Fills in a use of that config: an AdvancedProfiler with it runs over a
loop long enough for many samples, and the process's RSS (psutil) is read
before and after. Shows: tracemalloc stays off, the RSS growth, the summary.
"""

import tracemalloc

import psutil
import torch
from torch import nn

from stall import AdvancedProfiler, ProfilingConfig

# --- the document's example ---------------------------------------------
# Symptoms: Memory usage grows during profiling
# Solution: Disable tracemalloc or reduce history size
config = ProfilingConfig(
    enable_tracemalloc=False,
    max_samples=1000  # Limit history size
)
# --------------------------------------------------------------------------

assert config.enable_tracemalloc is False and config.max_samples == 1000

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
criterion = nn.CrossEntropyLoss()
sgd = torch.optim.SGD(model.parameters(), lr=0.01)
proc = psutil.Process()

rss_before = proc.memory_info().rss
profiler = AdvancedProfiler(config)
profiler.start_profiling()
for _ in range(400):
    sgd.zero_grad()
    criterion(model(torch.randn(64, 64)), torch.randint(0, 10, (64,))).backward()
    sgd.step()
profiler.stop_profiling()
rss_after = proc.memory_info().rss

print("tracemalloc tracing:", tracemalloc.is_tracing())
print(f"RSS growth during profiling: {(rss_after - rss_before) / 2**20:.1f} MiB")
print("summary:", profiler.get_profiling_summary())

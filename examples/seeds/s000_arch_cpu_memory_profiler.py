"""Seed 000 ("Advanced Code Profiling and Optimization System"), section
"Architecture / Core Components / 3. Profiling Components / CPUMemoryProfiler".

Reproduces the CPUMemoryProfiler example exactly as the document writes it:
start_profiling(), code execution, stop_profiling() returning metrics, then
get_bottlenecks(). The document's module is `stall`.

Fills in "# ... code execution ..." with a real CPU- and memory-using
workload: a few training steps of a small MLP on random data plus a list of
allocated tensors. Shows: the measured metrics and the bottlenecks found.
"""

import torch
from torch import nn

from stall import CPUMemoryProfiler, ProfilingConfig, ProfilingLevel

torch.manual_seed(0)
config = ProfilingConfig(enabled=True, level=ProfilingLevel.DETAILED)

model = nn.Sequential(nn.Linear(128, 256), nn.ReLU(), nn.Linear(256, 10))
criterion = nn.CrossEntropyLoss()
sgd = torch.optim.SGD(model.parameters(), lr=0.01)

# --- the document's example ---------------------------------------------
profiler = CPUMemoryProfiler(config)
profiler.start_profiling()
# ... code execution ...
kept = []
for _ in range(40):
    x = torch.randn(256, 128)
    y = torch.randint(0, 10, (256,))
    sgd.zero_grad()
    loss = criterion(model(x), y)
    loss.backward()
    sgd.step()
    kept.append(torch.empty(64 * 1024))  # 256 KiB each: memory grows
metrics = profiler.stop_profiling()
bottlenecks = profiler.get_bottlenecks()
# --------------------------------------------------------------------------

print("execution_time (s):", metrics.execution_time)
print("cpu_time (s):", metrics.cpu_time)
print("cpu_usage (%):", metrics.cpu_usage)
print("memory_usage (GB):", metrics.memory_usage)
print("metrics:", metrics.to_dict())
print(f"bottlenecks ({len(bottlenecks)}):", bottlenecks)

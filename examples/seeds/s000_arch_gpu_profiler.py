"""Seed 000 ("Advanced Code Profiling and Optimization System"), section
"Architecture / Core Components / 3. Profiling Components / GPUProfiler".

Reproduces the GPUProfiler example exactly as the document writes it:
start_profiling(), GPU operations, stop_profiling() returning metrics, then
get_bottlenecks(). The document's module is `stall`.

Fills in "# ... GPU operations ..." with matrix products on the GPU when
torch sees one, else on the CPU: on a machine without a GPU the profiler must
still run and report the GPU figures as unknown rather than fail. Shows: the
metrics and bottlenecks.
"""

import torch

from stall import GPUProfiler, ProfilingConfig, ProfilingLevel

torch.manual_seed(0)
config = ProfilingConfig(enabled=True, level=ProfilingLevel.DETAILED)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

# --- the document's example ---------------------------------------------
profiler = GPUProfiler(config)
profiler.start_profiling()
# ... GPU operations ...
a = torch.randn(256, 256, device=device)
w = torch.randn(256, 256, device=device) / 16.0
for _ in range(60):
    a = torch.tanh(a @ w)
if device.type == "cuda":
    torch.cuda.synchronize()
metrics = profiler.stop_profiling()
bottlenecks = profiler.get_bottlenecks()
# --------------------------------------------------------------------------

print("device used for the operations:", device)
print("gpu_time (s):", metrics.gpu_time)
print("gpu_usage (%):", metrics.gpu_usage)
print("metrics:", metrics.to_dict())
print(f"bottlenecks ({len(bottlenecks)}):", bottlenecks)

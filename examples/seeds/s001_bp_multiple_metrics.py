"""Seed 001 ("Code Profiling and Bottleneck Detection System"), section
"Best Practices / 4. Monitor Multiple Metrics".

Reproduces the example exactly as the document writes it: enable memory,
GPU, CPU and I/O tracking on the config for a comprehensive analysis.

Fills in `config` (a BottleneckProfilerConfig with every tracking switched
off first, so the example's assignments visibly turn them on) and a use of
it: a session that writes and reads back a temporary file (I/O) and trains
an MLP (CPU, memory); on a machine without a GPU the GPU figures are unknown.
Shows: the switches and the summary.
"""

import os
import tempfile

import torch
from torch import nn

from stall import BottleneckProfiler, BottleneckProfilerConfig, BottleneckType

config = BottleneckProfilerConfig(enable_memory_tracking=False, enable_gpu_tracking=False,
                                  enable_cpu_tracking=False, enable_io_tracking=False)

# --- the document's example ---------------------------------------------
# Enable all tracking for comprehensive analysis
config.enable_memory_tracking = True
config.enable_gpu_tracking = True
config.enable_cpu_tracking = True
config.enable_io_tracking = True
# --------------------------------------------------------------------------

torch.manual_seed(0)
profiler = BottleneckProfiler(config)
profiler.start_profiling_session("multiple_metrics")
with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "data.pt")
    with profiler.profile_operation("write_and_read", BottleneckType.DATA_LOADING):
        torch.save(torch.randn(1024, 1024), path)
        data = torch.load(path)
model = nn.Sequential(nn.Linear(1024, 256), nn.ReLU(), nn.Linear(256, 10))
criterion = nn.CrossEntropyLoss()
sgd = torch.optim.SGD(model.parameters(), lr=0.01)
with profiler.profile_operation("training", BottleneckType.CPU_COMPUTATION):
    for i in range(0, 1024, 128):
        sgd.zero_grad()
        criterion(model(data[i:i + 128]), torch.randint(0, 10, (128,))).backward()
        sgd.step()
profiler.stop_profiling_session()
print("tracking:", {k: getattr(config, k) for k in ("enable_memory_tracking", "enable_gpu_tracking",
                                                    "enable_cpu_tracking", "enable_io_tracking")})
print("summary:", profiler.get_bottleneck_summary())

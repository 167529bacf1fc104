"""Seed 001 ("Code Profiling and Bottleneck Detection System"), section
"Quick Start / 1. Basic Usage".

Reproduces the Basic Usage example exactly as the document writes it: a
BottleneckProfilerConfig (DETAILED, real-time monitoring, no
auto-optimization), a BottleneckProfiler, a profiling session named
"my_training_run", one operation profiled with
`profile_operation("data_loading", BottleneckType.DATA_LOADING)`, the
session stopped and the bottleneck summary read.
`from advanced_bottleneck_profiler import ...` becomes `from stall import
...` (ProfilingLevel and BottleneckType, used but not imported by the
document, are imported too).

Fills in "# Your data loading code here" with real data loading: iterating
a DataLoader over a TensorDataset of random tensors. Shows: the session id,
the session and the summary.
"""

import torch
from torch.utils.data import DataLoader, TensorDataset

from stall import BottleneckProfiler, BottleneckProfilerConfig
from stall import BottleneckType, ProfilingLevel

torch.manual_seed(0)
data_loader = DataLoader(TensorDataset(torch.randn(4096, 128), torch.randint(0, 10, (4096,))),
                         batch_size=64, shuffle=True)

# --- the document's example ---------------------------------------------
# Create configuration
config = BottleneckProfilerConfig(
    profiling_level=ProfilingLevel.DETAILED,
    enable_real_time_monitoring=True,
    auto_optimize=False
)

# Create profiler
profiler = BottleneckProfiler(config)

# Start profiling session
session_id = profiler.start_profiling_session("my_training_run")

# Profile your operations
with profiler.profile_operation("data_loading", BottleneckType.DATA_LOADING):
    # Your data loading code here
    batches = sum(1 for _ in data_loader)

# Stop profiling and get results
session = profiler.stop_profiling_session()
summary = profiler.get_bottleneck_summary()
# --------------------------------------------------------------------------

print("session id:", session_id)
print("batches loaded:", batches)
print("session:", session)
print("summary:", summary)

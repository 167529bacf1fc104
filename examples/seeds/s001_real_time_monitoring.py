"""Seed 001 ("Code Profiling and Bottleneck Detection System"), section
"Real-Time Monitoring".

Reproduces the example exactly as the document writes it: start a
BottleneckProfiler session "real_time_monitoring", let the monitor watch
(memory above 80%, GPU memory above 90%, CPU patterns, I/O), read the
real-time status with get_bottleneck_summary() while the session runs, and
stop it.

Fills in `profiler` (a BottleneckProfiler with real-time monitoring and a
0.1 s sampling interval) and the workload the monitor watches: a couple of
seconds of MLP training on random data. Shows: the active bottleneck count
and the stopped session.
"""

import torch
from torch import nn

from stall import BottleneckProfiler, BottleneckProfilerConfig

torch.manual_seed(0)
profiler = BottleneckProfiler(BottleneckProfilerConfig(enable_real_time_monitoring=True,
                                                       sampling_interval=0.1))
model = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 10))
criterion = nn.CrossEntropyLoss()
sgd = torch.optim.SGD(model.parameters(), lr=0.01)

# --- the document's example ---------------------------------------------
# Start real-time monitoring
profiler.start_profiling_session("real_time_monitoring")

# Monitor automatically detects bottlenecks
# - Memory usage above 80%
# - GPU memory usage above 90%
# - CPU usage patterns
# - I/O bottlenecks
for _ in range(30):
    sgd.zero_grad()
    criterion(model(torch.randn(256, 256)), torch.randint(0, 10, (256,))).backward()
    sgd.step()

# Get real-time status
summary = profiler.get_bottleneck_summary()
print(f"Active bottlenecks: {len(summary.get('bottlenecks', []))}")

# Stop monitoring
session = profiler.stop_profiling_session()
# --------------------------------------------------------------------------

print("session:", session)

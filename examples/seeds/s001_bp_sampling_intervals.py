"""Seed 001 ("Code Profiling and Bottleneck Detection System"), section
"Best Practices / 2. Use Appropriate Sampling Intervals".

Reproduces the example exactly as the document writes it: set
`config.sampling_interval = 0.1` for real-time monitoring and
`config.sampling_interval = 1.0` for production profiling.

Fills in `config` (a BottleneckProfilerConfig) and a use of each setting: a
BottleneckProfiler session with real-time monitoring around the same ~2 s
of MLP training at each interval. Shows: both intervals and their summaries.
"""

import torch
from torch import nn

from stall import BottleneckProfiler, BottleneckProfilerConfig

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 10))
criterion = nn.CrossEntropyLoss()
sgd = torch.optim.SGD(model.parameters(), lr=0.01)


def workload():
    for _ in range(25):
        sgd.zero_grad()
        criterion(model(torch.randn(256, 256)), torch.randint(0, 10, (256,))).backward()
        sgd.step()


def run(config, name):
    profiler = BottleneckProfiler(config)
    profiler.start_profiling_session(name)
    workload()
    profiler.stop_profiling_session()
    print(f"{name}: sampling_interval={config.sampling_interval}s ->", profiler.get_bottleneck_summary())


config = BottleneckProfilerConfig(enable_real_time_monitoring=True)

# --- the document's example ---------------------------------------------
# For real-time monitoring
config.sampling_interval = 0.1  # 100ms
# --------------------------------------------------------------------------
run(config, "real_time")

# --- the document's example ---------------------------------------------
# For production profiling
config.sampling_interval = 1.0  # 1 second
# --------------------------------------------------------------------------
run(config, "production")

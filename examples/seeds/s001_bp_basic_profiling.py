"""Seed 001 ("Code Profiling and Bottleneck Detection System"), section
"Best Practices / 1. Start with Basic Profiling".

Reproduces the example exactly as the document writes it: a
BottleneckProfilerConfig at ProfilingLevel.BASIC and a BottleneckProfiler
built from it.

Fills in a use of that profiler: a session around a DataLoader loop and MLP
training steps on random data, each profiled as an operation. Shows: the
level and the bottleneck summary.
"""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from stall import BottleneckProfiler, BottleneckProfilerConfig, BottleneckType, ProfilingLevel

# --- the document's example ---------------------------------------------
config = BottleneckProfilerConfig(profiling_level=ProfilingLevel.BASIC)
profiler = BottleneckProfiler(config)
# --------------------------------------------------------------------------

torch.manual_seed(0)
data_loader = DataLoader(TensorDataset(torch.randn(2048, 64), torch.randint(0, 10, (2048,))),
                         batch_size=32, shuffle=True)
model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
criterion = nn.CrossEntropyLoss()
sgd = torch.optim.SGD(model.parameters(), lr=0.05)

profiler.start_profiling_session("basic_profiling")
for x, y in data_loader:
    with profiler.profile_operation("train_step", BottleneckType.CPU_COMPUTATION):
        sgd.zero_grad()
        criterion(model(x), y).backward()
        sgd.step()
session = profiler.stop_profiling_session()
print("profiling level:", config.profiling_level)
print("summary:", profiler.get_bottleneck_summary())

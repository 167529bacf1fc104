"""Seed 001 ("Code Profiling and Bottleneck Detection System"), section
"Integration with Existing Code / Automatic Profiling".

Reproduces the example exactly as the document writes it: a
BottleneckProfilerConfig with auto_optimize=True and a BottleneckProfiler
built from it ("The profiler will automatically suggest and apply
optimizations").

Fills in a use of that profiler: a session around a DataLoader loop and MLP
training on random data. Shows: auto_optimize is on and the bottleneck
summary of the session.
"""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from stall import BottleneckProfiler, BottleneckProfilerConfig, BottleneckType

torch.manual_seed(0)

# --- the document's example ---------------------------------------------
# Enable auto-optimize for automatic improvements
config = BottleneckProfilerConfig(auto_optimize=True)
profiler = BottleneckProfiler(config)

# The profiler will automatically suggest and apply optimizations
# --------------------------------------------------------------------------

assert config.auto_optimize is True

data_loader = DataLoader(TensorDataset(torch.randn(2048, 64), torch.randint(0, 10, (2048,))),
                         batch_size=32, shuffle=True)
model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
criterion = nn.CrossEntropyLoss()
sgd = torch.optim.SGD(model.parameters(), lr=0.05)

profiler.start_profiling_session("automatic_profiling")
for x, y in data_loader:
    with profiler.profile_operation("train_step", BottleneckType.CPU_COMPUTATION):
        sgd.zero_grad()
        criterion(model(x), y).backward()
        sgd.step()
session = profiler.stop_profiling_session()
print("auto_optimize:", config.auto_optimize)
print("summary:", profiler.get_bottleneck_summary())

"""Seed 001 ("Code Profiling and Bottleneck Detection System"), section
"Advanced Features / Export and Import".

Reproduces the example exactly as the document writes it:
save_profiling_results("my_profile.pt") then
load_profiling_results("my_profile.pt") (the file lands in the current
directory).

Fills in `profiler`: a BottleneckProfiler whose session profiled MLP
training; the results are loaded back into a fresh BottleneckProfiler so the
round trip is visible. Shows: the file size and the summary before and after
the round trip.
"""

import os

import torch
from torch import nn

from stall import BottleneckProfiler, BottleneckProfilerConfig, BottleneckType

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
criterion = nn.CrossEntropyLoss()
sgd = torch.optim.SGD(model.parameters(), lr=0.05)

profiler = BottleneckProfiler(BottleneckProfilerConfig())
profiler.start_profiling_session("export_import")
for _ in range(100):
    with profiler.profile_operation("train_step", BottleneckType.CPU_COMPUTATION):
        sgd.zero_grad()
        criterion(model(torch.randn(64, 64)), torch.randint(0, 10, (64,))).backward()
        sgd.step()
profiler.stop_profiling_session()
before = profiler.get_bottleneck_summary()

# --- the document's example ---------------------------------------------
# Save profiling results
profiler.save_profiling_results("my_profile.pt")

# Load previous results
profiler.load_profiling_results("my_profile.pt")
# --------------------------------------------------------------------------

fresh = BottleneckProfiler(BottleneckProfilerConfig())
fresh.load_profiling_results("my_profile.pt")
after = fresh.get_bottleneck_summary()
print("my_profile.pt:", os.path.getsize("my_profile.pt"), "bytes")
print("summary before save:", before)
print("summary after load: ", after)

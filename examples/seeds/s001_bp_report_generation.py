"""Seed 001 ("Code Profiling and Bottleneck Detection System"), section
"Best Practices / 5. Regular Report Generation".

Reproduces the example exactly as the document writes it: after a profiling
session, `if config.save_profiles: profiler.generate_optimization_report()`
(save_profiles defaults to True; the report goes under profile_output_dir,
"bottleneck_profiles" in the current directory).

Fills in `config` and `profiler` (a BottleneckProfilerConfig and a
BottleneckProfiler) and the session: a DataLoader loop and MLP training on
random data. Shows: the report's return value (the path of the session's
HTML page, the same page `stall run` writes) and the files written (the
page and its report.json).
"""

import os

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from stall import BottleneckProfiler, BottleneckProfilerConfig, BottleneckType

torch.manual_seed(0)
config = BottleneckProfilerConfig()
profiler = BottleneckProfiler(config)
data_loader = DataLoader(TensorDataset(torch.randn(2048, 64), torch.randint(0, 10, (2048,))),
                         batch_size=32, shuffle=True)
model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
criterion = nn.CrossEntropyLoss()
sgd = torch.optim.SGD(model.parameters(), lr=0.05)

profiler.start_profiling_session("report_generation")
with profiler.profile_operation("data_loading", BottleneckType.DATA_LOADING):
    batches = list(data_loader)
for x, y in batches:
    with profiler.profile_operation("train_step", BottleneckType.CPU_COMPUTATION):
        sgd.zero_grad()
        criterion(model(x), y).backward()
        sgd.step()
profiler.stop_profiling_session()

report = None
# --- the document's example ---------------------------------------------
# Generate reports after each profiling session
if config.save_profiles:
    report = profiler.generate_optimization_report()
# --------------------------------------------------------------------------

print("report:", report)
for root, _, files in os.walk(config.profile_output_dir):
    for name in files:
        print("written:", os.path.join(root, name))
